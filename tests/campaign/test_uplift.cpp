// campaign/logistic.h and campaign/uplift.h: the response model recovers known coefficients,
// and uplift learners fitted on a finished synthetic campaign target the users the campaign
// moves better than the propensity the campaign was planned by (measured against the planted
// truth, not against the estimates the learners were fitted on).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "campaign/evaluate.h"
#include "campaign/logistic.h"
#include "campaign/simulate.h"
#include "campaign/uplift.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/rng.h"

using namespace portrait;
using namespace portrait::campaign;
namespace stdfs = std::filesystem;

namespace {
const char* kKey = "test-key-0123456789-abcdefghij";
stdfs::path tmpdir(const std::string& name) {
  auto d = stdfs::temp_directory_path() / ("portrait_campaign_uplift_" + name + "_" + std::to_string(::getpid()));
  stdfs::remove_all(d);
  return d;
}

/// A finished synthetic campaign: simulate + evaluate, once per test binary.
struct Finished {
  SimulateSummary sim;
  std::string dir, eval_dir;
};
const Finished& finished() {
  static const Finished f = [] {
    Finished x;
    SimulateParams sp;
    x.dir = tmpdir("campaign").string();
    sp.output_dir = x.dir;
    sp.users = 40000;
    sp.seed = 11;
    sp.hash_key = kKey;
    sp.plan.campaign_id = "sim";
    sp.plan.start = "2024-06-01";
    sp.plan.control_fraction = 0.3;
    x.sim = run_simulate(sp);
    EvaluateParams ep;
    ep.campaign_dir = x.sim.campaign_dir;
    ep.input = {x.sim.events};
    x.eval_dir = (stdfs::path(x.dir) / "eval").string();
    ep.output_dir = x.eval_dir;
    ep.hash_key = kKey;
    ep.progress = false;
    run_evaluate(ep);
    return x;
  }();
  return f;
}

UpliftParams params(const std::string& out) {
  const Finished& f = finished();
  UpliftParams p;
  p.campaign_dir = f.sim.campaign_dir;
  p.outcomes = f.eval_dir;
  p.features = (stdfs::path(f.dir) / "features.csv").string();
  p.truth = (stdfs::path(f.dir) / "truth.csv").string();
  p.output_dir = out;
  p.bootstrap = 50;
  return p;
}
}  // namespace

TEST(Logistic, RecoversKnownCoefficientsAndWeightsActLikeRepeatedRows) {
  const int64_t n = 20000, D = 3;
  const double w_true[3] = {1.0, -2.0, 0.5}, b_true = -0.7;
  std::vector<float> x(static_cast<size_t>(n * D));
  std::vector<double> y(static_cast<size_t>(n));
  Rng r(5);
  for (int64_t i = 0; i < n; ++i) {
    double z = b_true;
    for (int64_t j = 0; j < D; ++j) {
      x[size_t(i * D + j)] = float(r.normal());
      z += w_true[j] * x[size_t(i * D + j)];
    }
    y[size_t(i)] = r.bernoulli(1.0 / (1.0 + std::exp(-z))) ? 1.0 : 0.0;
  }
  LogisticParams lp;
  lp.l2 = 0;
  LogisticModel m = fit_logistic(x, D, y, {}, lp);
  EXPECT_TRUE(m.converged);
  // Weights are on standardised features: back to raw units (sd ~ 1, mean ~ 0 here).
  for (int64_t j = 0; j < D; ++j) EXPECT_NEAR(m.w[size_t(j)] / m.sd[size_t(j)], w_true[j], 0.08) << j;
  const float zero[3] = {0, 0, 0};
  EXPECT_NEAR(std::log(m.predict(zero) / (1 - m.predict(zero))), b_true, 0.08);

  // Weight 2 on a row = the row twice.
  std::vector<float> x2(x.begin(), x.begin() + 300 * D);
  std::vector<double> y2(y.begin(), y.begin() + 300), w2(300, 1.0);
  std::vector<float> x3 = x2;
  std::vector<double> y3 = y2;
  for (int i = 0; i < 100; ++i) {
    w2[size_t(i)] = 2.0;
    x3.insert(x3.end(), x2.begin() + i * D, x2.begin() + (i + 1) * D);
    y3.push_back(y2[size_t(i)]);
  }
  LogisticModel a = fit_logistic(x2, D, y2, w2, {}), b = fit_logistic(x3, D, y3, {}, {});
  for (size_t j = 0; j < size_t(D); ++j) EXPECT_NEAR(a.w[j] / a.sd[j], b.w[j] / b.sd[j], 1e-6);
  EXPECT_THROW(fit_logistic(x2, D, y3, {}, {}), std::invalid_argument);
}

TEST(Uplift, LearnersTargetThePlantedEffectsBetterThanPropensityAndRandom) {
  const auto out = tmpdir("fit");
  UpliftParams p = params(out.string());
  const Features f = read_features_csv(p.features);
  EXPECT_EQ(f.dim, 16);
  EXPECT_EQ(int64_t(f.ids.size()), 40000);
  UpliftSummary s = run_uplift(p, f);
  EXPECT_EQ(s.with_features, s.audience);
  EXPECT_EQ(s.train_users + s.holdout_users, s.audience);
  EXPECT_NEAR(double(s.holdout_users) / double(s.audience), 0.3, 0.02);
  std::map<std::string, const RankingResult*> r;
  for (auto& x : s.rankings) r[x.name] = &x;
  ASSERT_EQ(r.size(), 4u);
  // Truth: treating the top 30% chosen by either learner gains more conversions than by the
  // campaign's propensity score, which gains more than random (segments with zero and
  // negative effects rank high by propensity).
  for (const char* l : {"t_learner", "class_transformation"}) {
    EXPECT_GT(r[l]->true_incremental_at_budget, 1.3 * r["propensity"]->true_incremental_at_budget) << l;
    EXPECT_GT(r[l]->qini.area, r["propensity"]->qini.area) << l;
  }
  EXPECT_GT(r["propensity"]->true_incremental_at_budget, r["random"]->true_incremental_at_budget);
  // Bootstrap intervals bracket the point estimate.
  const RankingResult& t = *r["t_learner"];
  EXPECT_LE(t.area_lo_vs_propensity, t.area_diff_vs_propensity);
  EXPECT_GE(t.area_hi_vs_propensity, t.area_diff_vs_propensity);

  for (const char* n : {"uplift_model.json", "uplift_eval.json", "qini_uplift.csv", "uplift_scores.csv"})
    EXPECT_TRUE(stdfs::exists(out / n)) << n;
  const auto model = nlohmann::json::parse(read_file(out / "uplift_model.json"));
  EXPECT_EQ(model["format"], kUpliftModelFormat);
  EXPECT_EQ(model["format_version"], kUpliftModelFormatVersion);
  EXPECT_EQ(model["features"]["sha256"], f.sha256);
  const std::string scores = read_file(out / "uplift_scores.csv");
  EXPECT_EQ(int64_t(std::count(scores.begin(), scores.end(), '\n')), 40001);  // every user with features
  // The scores are a plan input: the next campaign targets by predicted uplift.
  EXPECT_EQ(read_scored_users(out / "uplift_scores.csv").size(), 40000u);

  // Deterministic given the seed.
  const auto out2 = tmpdir("fit2");
  run_uplift(params(out2.string()), f);
  EXPECT_EQ(read_file(out2 / "uplift_scores.csv"), scores);
  EXPECT_EQ(read_file(out2 / "uplift_eval.json"), read_file(out / "uplift_eval.json"));
}

TEST(Uplift, OutcomesOfAnotherCampaignAreRefusedNamingTheFileAndLine) {
  const auto out = tmpdir("foreign");
  UpliftParams p = params(out.string());
  const auto bad = out.parent_path() / ("foreign_outcomes_" + std::to_string(::getpid()) + ".csv");
  write_file_atomic(bad, "user_id,arm,converted\nsomebody-else,treatment,1\n");
  p.outcomes = bad.string();
  try {
    run_uplift(p, read_features_csv(p.features));
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(bad.string() + " line 2"), std::string::npos) << m;
  }
  stdfs::remove(bad);
}

TEST(Uplift, FeaturesOfOtherUsersAreRefusedNotSilentlySkipped) {
  const auto out = tmpdir("missing");
  UpliftParams p = params(out.string());
  Features f = read_features_csv(p.features);
  f.ids.resize(f.ids.size() / 2);  // half the population: ~half the audience has no features
  f.x.resize(f.ids.size() * size_t(f.dim));
  EXPECT_THROW(run_uplift(p, f), DataError);
  p.max_missing_fraction = 0.9;  // explicitly tolerated: the rest is fitted
  UpliftSummary s = run_uplift(p, f);
  EXPECT_LT(s.with_features, s.audience);
}
