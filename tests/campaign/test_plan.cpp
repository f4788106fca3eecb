// campaign/plan.h: stratified randomized control groups, budgets, targeting, the assignment
// directory and the refusal to re-draw a planned campaign.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "campaign/plan.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/rng.h"

using namespace portrait;
using namespace portrait::campaign;
namespace fs = std::filesystem;

namespace {

fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("portrait_campaign_plan_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<ScoredUser> users(int n, int segments, uint64_t seed = 3) {
  Rng r(seed);
  std::vector<ScoredUser> u;
  for (int i = 0; i < n; ++i) {
    char b[32];
    std::snprintf(b, sizeof b, "%016llx", (unsigned long long)mix64(seed, uint64_t(i)));
    u.push_back({b, r.uniform(), std::to_string(r.below(uint64_t(segments)))});
  }
  return u;
}

PlanParams params(const fs::path& dir) {
  PlanParams p;
  p.campaign_id = "spring-2024";
  p.dir = dir.string();
  p.start = "2024-06-01";
  p.control_fraction = 0.2;
  p.seed = 9;
  return p;
}

}  // namespace

TEST(CampaignPlan, ArmsAreBalancedWithinEveryStratum) {
  auto p = params(tmpdir("balance"));
  Plan plan = make_plan(p, users(10007, 5));
  EXPECT_EQ(plan.rows.size(), 10007u);
  EXPECT_EQ(plan.strata.size(), 5u * 10u);  // segment x score decile
  // Total control exact (systematic allocation), each stratum within one user of its share.
  EXPECT_NEAR(double(plan.control), 0.2 * 10007, 1.0);
  std::map<std::string, std::pair<int, int>> seen;
  for (auto& a : plan.rows) (a.treated ? seen[a.stratum].first : seen[a.stratum].second)++;
  for (auto& [name, c] : plan.strata) {
    const double n = double(c.treatment + c.control);
    EXPECT_LE(std::fabs(double(c.control) - 0.2 * n), 1.0) << name;
    EXPECT_EQ(seen[name].first, c.treatment);
    EXPECT_EQ(seen[name].second, c.control);
  }
  // Score bins are deciles of the audience: the mean score falls with the bin, in both arms.
  std::map<int, std::pair<double, int>> by_bin[2];
  for (auto& a : plan.rows) {
    auto& b = by_bin[a.treated][a.score_bin];
    b.first += a.score;
    b.second++;
  }
  for (int arm = 0; arm < 2; ++arm) {
    ASSERT_EQ(by_bin[arm].size(), 10u);
    double prev = 2;
    for (auto& [bin, s] : by_bin[arm]) {
      EXPECT_LT(s.first / s.second, prev) << "bin " << bin;
      prev = s.first / s.second;
    }
  }
  // Treated and control score means agree (randomization inside strata).
  double st = 0, sc = 0;
  for (auto& a : plan.rows) (a.treated ? st : sc) += a.score;
  EXPECT_NEAR(st / double(plan.treatment), sc / double(plan.control), 0.01);
}

TEST(CampaignPlan, DeterministicFromSeedAndIndependentOfInputOrder) {
  auto p = params(tmpdir("determinism"));
  auto u = users(3000, 3);
  const std::string a = assignment_csv(make_plan(p, u));
  std::reverse(u.begin(), u.end());
  std::swap(u[0], u[1500]);
  EXPECT_EQ(assignment_csv(make_plan(p, u)), a);
  p.seed = 10;
  EXPECT_NE(assignment_csv(make_plan(p, u)), a);
}

TEST(CampaignPlan, BudgetAndTargetingRules) {
  auto p = params(tmpdir("budget"));
  auto u = users(5000, 4);
  p.budget_users = 1000;  // treated users; the control group comes on top
  Plan top = make_plan(p, u);
  EXPECT_EQ(top.rows.size(), 1250u);
  EXPECT_EQ(top.treatment, 1000);
  EXPECT_EQ(top.control, 250);
  // top_score: the audience is the 1250 best scores.
  std::vector<double> s;
  for (auto& x : u) s.push_back(x.score);
  std::sort(s.rbegin(), s.rend());
  double min_in = 2;
  for (auto& a : top.rows) min_in = std::min(min_in, a.score);
  EXPECT_EQ(min_in, s[1249]);
  for (size_t i = 1; i < top.rows.size(); ++i) EXPECT_GE(top.rows[i - 1].score, top.rows[i].score);
  // The treated arm is the budget exactly, whatever the rounding of the fraction.
  p.control_fraction = 0.1;
  p.budget_users = 500;
  Plan exact = make_plan(p, u);
  EXPECT_EQ(exact.treatment, 500);
  EXPECT_EQ(exact.rows.size(), 556u);  // ceil(500 / 0.9)
  p.control_fraction = 0.2;
  p.budget_users = 1000;
  // Budget by cost.
  p.budget_users = 0;
  p.budget_cost = 500;
  p.cost_per_user = 0.5;
  EXPECT_EQ(make_plan(p, u).treatment, 1000);
  p.budget_cost = 0;
  p.budget_users = 1000;
  // random: the audience is not the top scores.
  p.targeting = "random";
  Plan rnd = make_plan(p, u);
  double mean = 0;
  for (auto& a : rnd.rows) mean += a.score;
  EXPECT_NEAR(mean / double(rnd.rows.size()), 0.5, 0.05);
  // segment filter: only the listed segments.
  p.targeting = "segment";
  p.segments = {"1", "3"};
  Plan seg = make_plan(p, u);
  for (auto& a : seg.rows) EXPECT_TRUE(a.segment == "1" || a.segment == "3");
  EXPECT_EQ(seg.treatment, 1000);
  p.segments.clear();
  EXPECT_THROW(make_plan(p, u), ConfigError);
  // Errors: duplicate ids, bad control fraction, bad id.
  p.targeting = "top_score";
  auto dup = u;
  dup.push_back(u[7]);
  EXPECT_THROW(make_plan(p, dup), DataError);
  p.control_fraction = 1.0;
  EXPECT_THROW(make_plan(p, u), ConfigError);
  p.control_fraction = 0.2;
  p.campaign_id = "a/b";
  EXPECT_THROW(make_plan(p, u), ConfigError);
}

TEST(CampaignPlan, SecondPlanOfTheSameCampaignIsIdenticalOrRefused) {
  const fs::path dir = tmpdir("replan") / "spring";
  auto p = params(dir);
  auto u = users(2000, 3);
  PlanResult first = run_plan(p, u, "abc");
  EXPECT_FALSE(first.unchanged);
  for (const char* f : {"assignment.csv", "activation.csv", "campaign.json"}) EXPECT_TRUE(fs::exists(dir / f)) << f;
  const std::string before = read_file(dir / "assignment.csv"), meta = read_file(dir / "campaign.json");
  auto j = nlohmann::json::parse(meta);
  EXPECT_EQ(j["format"], kAssignmentFormat);
  EXPECT_EQ(j["format_version"], kAssignmentFormatVersion);
  EXPECT_EQ(j["campaign_id"], "spring-2024");
  EXPECT_EQ(j["assignment_sha256"], sha256_hex(before));
  // Same plan again (input in another order): identical, nothing rewritten.
  std::reverse(u.begin(), u.end());
  PlanResult again = run_plan(p, u);
  EXPECT_TRUE(again.unchanged);
  EXPECT_EQ(read_file(dir / "campaign.json"), meta);
  // Another seed, budget or user set for the same campaign: refused, files untouched.
  p.seed = 10;
  EXPECT_THROW(run_plan(p, u), DataError);
  p.seed = 9;
  u.pop_back();
  EXPECT_THROW(run_plan(p, u), DataError);
  EXPECT_EQ(read_file(dir / "assignment.csv"), before);
  // Another campaign id in the same directory: refused.
  auto q = params(dir);
  q.campaign_id = "summer-2024";
  EXPECT_THROW(run_plan(q, users(2000, 3)), DataError);
  // The activation file is the treatment arm.
  LoadedCampaign c = load_campaign(dir);
  EXPECT_EQ(c.campaign_id, "spring-2024");
  EXPECT_EQ(c.planned_start, "2024-06-01T00:00:00Z");
  EXPECT_EQ(c.rows.size(), 2000u);
  int64_t treated = 0;
  for (auto& a : c.rows) treated += a.treated;
  const std::string act = read_file(dir / "activation.csv");
  EXPECT_EQ(int64_t(std::count(act.begin(), act.end(), '\n')), treated + 1);
  // A damaged assignment is detected on load and on re-plan.
  std::ofstream(dir / "assignment.csv", std::ios::app) << "x,control,s,1,1,0.5,9999,2024-06-01T00:00:00Z\n";
  EXPECT_THROW(load_campaign(dir), DataError);
  EXPECT_THROW(run_plan(params(dir), users(2000, 3)), DataError);
}

TEST(CampaignPlan, ReadsScoredUsersCsv) {
  const fs::path dir = tmpdir("read");
  std::ofstream(dir / "users.csv") << "user_id,probability,segment\nu1,0.5,2\nu2,,1\n\"u,3\",0.25,\n";
  auto u = read_scored_users(dir / "users.csv", "user_id", "probability", "segment");
  ASSERT_EQ(u.size(), 3u);
  EXPECT_EQ(u[0].id, "u1");
  EXPECT_EQ(u[0].score, 0.5);
  EXPECT_TRUE(std::isnan(u[1].score));
  EXPECT_EQ(u[2].id, "u,3");
  EXPECT_EQ(u[2].segment, "");
  EXPECT_THROW(read_scored_users(dir / "users.csv", "uid"), DataError);
  std::ofstream(dir / "bad.csv") << "user_id,score\nu1,high\n";
  EXPECT_THROW(read_scored_users(dir / "bad.csv"), DataError);
}
