// campaign/simulate.h: a synthetic campaign with planted truth, evaluated end to end through the
// files (users.csv -> plan -> events.csv -> evaluate): the evaluator sets apart exactly the rows
// the generator planted, and its intervals cover the planted effects.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "campaign/evaluate.h"
#include "campaign/simulate.h"
#include "core/fs.h"

using namespace portrait;
using namespace portrait::campaign;
namespace fs = std::filesystem;

namespace {
const char* kKey = "test-key-0123456789-abcdefghij";
fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("portrait_campaign_sim_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}
}  // namespace

TEST(CampaignSimulate, EvaluatorRecoversThePlantedTruth) {
  SimulateParams sp;
  sp.output_dir = tmpdir("truth").string();
  sp.users = 30000;
  sp.seed = 3;
  sp.hash_key = kKey;
  sp.plan.campaign_id = "sim";
  sp.plan.start = "2024-06-01";
  sp.plan.control_fraction = 0.3;
  sp.plan.budget_users = 14000;  // top 20k of 30k by score: 14k treated, 6k control
  SimulateSummary s = run_simulate(sp);
  EXPECT_EQ(s.audience, 20000);
  ASSERT_EQ(s.segments.size(), 8u);
  for (auto& st : s.segments)
    if (st.log_odds == 0) EXPECT_EQ(st.mean_effect, 0.0);
    else EXPECT_EQ(st.mean_effect > 0, st.log_odds > 0);
  // The truth file holds each audience user's effect.
  const std::string truth = read_file(fs::path(sp.output_dir) / "truth.csv");
  EXPECT_EQ(int64_t(std::count(truth.begin(), truth.end(), '\n')), s.audience + 1);

  EvaluateParams ep;
  ep.campaign_dir = s.campaign_dir;
  ep.input = {s.events};
  ep.output_dir = (fs::path(sp.output_dir) / "eval").string();
  ep.hash_key = kKey;
  ep.progress = false;
  EvaluateSummary e = run_evaluate(ep);
  for (auto& [reason, n] : s.expected_quarantine) EXPECT_EQ(e.quarantine.at(reason), n) << reason;
  EXPECT_EQ(e.before_start, s.before_start);
  EXPECT_EQ(e.after_window, s.after_window);
  EXPECT_EQ(e.rows, s.rows);
  const GroupResult& ov = e.overall();
  EXPECT_EQ(ov.t.users, 14000);
  EXPECT_LE(ov.conversion.abs_lo, s.overall_effect);
  EXPECT_GE(ov.conversion.abs_hi, s.overall_effect);
  int covered = 0;
  for (auto& st : s.segments) {
    const GroupResult* g = e.find("segment", st.segment);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->t.users + g->c.users, st.users);
    covered += g->conversion.abs_lo <= st.mean_effect && st.mean_effect <= g->conversion.abs_hi;
  }
  EXPECT_GE(covered, 6);  // 8 intervals at 95%: P(>= 6 cover) = 0.994
  // The scores carry the baseline propensity, not the effect: uplift by decile is defined for
  // every decile and the Qini curve ends at the incremental conversions.
  ASSERT_EQ(e.uplift_bins.size(), 10u);
  EXPECT_NEAR(e.qini.points.back().qini, ov.conversion.incremental, 1e-6);

  // Same seed, same files: the simulation is deterministic and re-planning is a no-op.
  const std::string events = read_file(s.events);
  SimulateSummary again = run_simulate(sp);
  EXPECT_EQ(read_file(again.events), events);
}
