// campaign/evaluate.h: rows read as prep reads them, unassigned users' events quarantined (not
// lost), per-arm / per-segment outcomes, and intervals that cover a planted effect.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "campaign/evaluate.h"
#include "campaign/plan.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/rng.h"
#include "data/prep.h"

using namespace portrait;
using namespace portrait::campaign;
namespace fs = std::filesystem;

namespace {

const char* kKey = "test-key-0123456789-abcdefghij";
const int64_t kStart = 1717200000;  // 2024-06-01T00:00:00Z

fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("portrait_campaign_eval_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string raw_id(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "R%06d", i);
  return b;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::ifstream in(p);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// N users in 4 segments, half held out; conversion 0.10 in control and 0.10 + effect[s] under
// treatment; clicks 0.2 (+0.1 treated). Plus rows the evaluator must set apart.
struct World {
  fs::path dir;
  int n = 0;
  double effect[4] = {0.05, 0.0, -0.03, 0.02};
  int64_t unknown_rows = 0, invalid_rows = 0, before = 0, after = 0, duplicates = 0;
  EvaluateParams eval;
};

World make_world(const std::string& name, int n, uint64_t seed) {
  World w;
  w.dir = tmpdir(name);
  w.n = n;
  Rng r(seed);
  std::vector<ScoredUser> users;
  for (int i = 0; i < n; ++i)
    users.push_back({data::pseudonymize(kKey, raw_id(i)), r.uniform(), std::to_string(i % 4)});
  PlanParams pp;
  pp.campaign_id = "test";
  pp.dir = (w.dir / "campaign").string();
  pp.start = std::to_string(kStart);
  pp.control_fraction = 0.5;
  pp.targeting = "random";
  pp.seed = seed;
  Plan plan = run_plan(pp, users).plan;
  std::map<std::string, bool> treated;
  for (auto& a : plan.rows) treated[a.user_id] = a.treated;
  std::ofstream ev(w.dir / "events.csv");
  ev << "user_id,timestamp,event_type,item_id,category,price,rating,review_text\n";
  for (int i = 0; i < n; ++i) {
    const std::string id = raw_id(i);
    const bool t = treated[data::pseudonymize(kKey, id)];
    const int s = i % 4;
    const int64_t ts = kStart + 3600 + int64_t(r.below(13 * 86400));
    ev << id << "," << ts << ",view,I1,c,10.00,,\n";
    if (r.bernoulli(0.2 + (t ? 0.1 : 0.0))) ev << id << "," << ts + 1 << ",click,I1,c,10.00,,\n";
    if (r.bernoulli(0.10 + (t ? w.effect[s] : 0.0))) {
      ev << id << "," << ts + 2 << ",buy,I1,c,10.00,,\n";
      if (r.bernoulli(0.05)) {  // an exact duplicate row: counted once
        ev << id << "," << ts + 2 << ",buy,I1,c,10.00,,\n";
        ++w.duplicates;
      }
    }
    if (r.bernoulli(0.1)) {  // outside the window: not counted
      ev << id << "," << kStart - 86400 << ",purchase,I2,c,5,,\n";
      ++w.before;
    }
    if (r.bernoulli(0.1)) {
      ev << id << "," << kStart + 15 * 86400 << ",purchase,I2,c,5,,\n";
      ++w.after;
    }
  }
  for (int k = 0; k < 5; ++k) {  // users who are not in the assignment
    ev << "STRANGER" << k << "," << kStart + 7200 << ",purchase,I3,c,99.5,,\"call me 138-1234-5678\"\n";
    ++w.unknown_rows;
  }
  ev << raw_id(1) << ",yesterday,view,I1,c,1,,\n";  // rows prep rejects
  ev << raw_id(2) << "," << kStart + 10 << ",wishlist_add,I1,c,1,,\n";
  ev << raw_id(3) << "," << kStart + 10 << ",view,I1\n";
  w.invalid_rows = 3;
  ev.close();
  w.eval.campaign_dir = pp.dir;
  w.eval.input = {(w.dir / "events.csv").string()};
  w.eval.output_dir = (w.dir / "eval").string();
  w.eval.hash_key = kKey;
  w.eval.progress = false;
  w.eval.attribution_days = 14;
  return w;
}

}  // namespace

TEST(CampaignEvaluate, QuarantinesEventsOfUnassignedUsersWithoutLosingThem) {
  World w = make_world("quarantine", 2000, 1);
  EvaluateSummary s = run_evaluate(w.eval);
  EXPECT_EQ(s.quarantine.at("not_in_assignment"), w.unknown_rows);
  EXPECT_EQ(s.quarantine.at("bad_timestamp"), 1);
  EXPECT_EQ(s.quarantine.at("unknown_event_type"), 1);
  EXPECT_EQ(s.quarantine.at("malformed_row"), 1);
  EXPECT_EQ(s.quarantine.at("duplicate"), w.duplicates);
  EXPECT_EQ(s.before_start, w.before);
  EXPECT_EQ(s.after_window, w.after);
  EXPECT_EQ(s.quarantined, w.unknown_rows + w.invalid_rows + w.duplicates);
  auto q = read_jsonl(fs::path(w.eval.output_dir) / "quarantine.jsonl");
  ASSERT_EQ(int64_t(q.size()), s.quarantined);
  int strangers = 0;
  for (auto& j : q) {
    EXPECT_TRUE(j.contains("file") && j.contains("line") && j.contains("reason"));
    if (j["reason"] != "not_in_assignment") continue;
    // Kept with every field, the user pseudonymized as prep does, the review PII-masked.
    const auto& f = j["fields"];
    EXPECT_EQ(f["user"], "u:" + data::pseudonymize(kKey, "STRANGER" + std::to_string(strangers)));
    EXPECT_EQ(f["event_type"], "purchase");
    EXPECT_EQ(f["item"], "I3");
    EXPECT_EQ(f["price"], "99.5");
    EXPECT_EQ(f["review"], "call me <phone>");
    ++strangers;
  }
  EXPECT_EQ(strangers, 5);
  // Every row is accounted for.
  EXPECT_EQ(s.rows, s.in_window + s.before_start + s.after_window + s.quarantined);
  // Outputs.
  for (const char* f : {"evaluation.json", "arms.csv", "lift.csv", "uplift_deciles.csv", "qini.csv", "uplift_at_k.csv"})
    EXPECT_TRUE(fs::exists(fs::path(w.eval.output_dir) / f)) << f;
  auto j = nlohmann::json::parse(read_file(fs::path(w.eval.output_dir) / "evaluation.json"));
  EXPECT_EQ(j["format"], "portrait-campaign-evaluation");
  EXPECT_EQ(j["campaign_id"], "test");
  EXPECT_EQ(j["arms"]["treatment"]["users"].get<int64_t>() + j["arms"]["control"]["users"].get<int64_t>(), 2000);
  EXPECT_EQ(j["segments"].size(), 4u);
  EXPECT_TRUE(j["methods"]["rates"].get<std::string>().find("Newcombe") != std::string::npos);
  // Too many invalid rows: the run fails, after writing the quarantine.
  w.eval.data.max_reject_fraction = 0.0001;
  EXPECT_THROW(run_evaluate(w.eval), DataError);
  // Wrong key: no event matches the assignment, every in-window event is quarantined.
  w.eval.data.max_reject_fraction = 0.05;
  w.eval.hash_key = "another-key-0123456789-abcdef";
  EvaluateSummary wrong = run_evaluate(w.eval);
  EXPECT_EQ(wrong.in_window, 0);
  EXPECT_GT(wrong.quarantine.at("not_in_assignment"), 2000);
}

TEST(CampaignEvaluate, LiftIntervalsCoverThePlantedEffect) {
  World w = make_world("coverage", 40000, 7);
  EvaluateSummary s = run_evaluate(w.eval);
  const GroupResult& ov = s.overall();
  EXPECT_EQ(ov.t.users + ov.c.users, 40000);
  const double truth = (0.05 + 0.0 - 0.03 + 0.02) / 4;
  EXPECT_LE(ov.conversion.abs_lo, truth);
  EXPECT_GE(ov.conversion.abs_hi, truth);
  EXPECT_LT(ov.conversion.p_value, 0.05);  // 0.01 on 20k vs 20k users
  EXPECT_LE(ov.participation.abs_lo, 0.1);
  EXPECT_GE(ov.participation.abs_hi, 0.1);
  int covered = 0;
  for (int seg = 0; seg < 4; ++seg) {
    const GroupResult* g = s.find("segment", std::to_string(seg));
    ASSERT_NE(g, nullptr);
    covered += g->conversion.abs_lo <= w.effect[seg] && w.effect[seg] <= g->conversion.abs_hi;
  }
  EXPECT_GE(covered, 3);
  // Segment 0 (+5 points) is detected, with its revenue per user (10 per purchase).
  const GroupResult* g0 = s.find("segment", "0");
  EXPECT_LT(g0->conversion.p_value, 0.001);
  EXPECT_TRUE(s.has_prices);
  EXPECT_NEAR(g0->revenue.diff, 10 * g0->conversion.abs_lift, 1.0);
  // Scores are noise here: the Qini area is small next to the incremental conversions.
  EXPECT_TRUE(s.has_scores);
  EXPECT_EQ(s.uplift_bins.size(), 10u);
  EXPECT_LT(std::fabs(s.qini.area), 0.25 * std::fabs(s.qini.points.back().qini) + 20);
}
