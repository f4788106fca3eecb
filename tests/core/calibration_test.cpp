// core/calibration.h: isotonic, Platt and temperature calibration, checked against the
// generator's true probabilities (ECE with 15 bins), and the AUC they must leave unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/calibration.h"
#include "core/error.h"
#include "core/rng.h"

using namespace portrait;
using namespace portrait::calib;

namespace {

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// True purchase probabilities p = sigmoid(l), l ~ N(logit 0.08, 1.2); labels ~ Bernoulli(p);
// the head's score distorts the log-odds: sigmoid(scale * l + shift) (over-confident and
// biased, as a head trained on sampled negatives is).
struct Sample {
  std::vector<double> truth, score;
  std::vector<int> label;
};
Sample draw(int n, uint64_t seed, double scale, double shift) {
  Rng r(seed);
  Sample s;
  for (int i = 0; i < n; ++i) {
    const double l = std::log(0.08 / 0.92) + 1.2 * r.normal();
    const double p = sigmoid(l);
    s.truth.push_back(p);
    s.label.push_back(r.bernoulli(p) ? 1 : 0);
    s.score.push_back(sigmoid(scale * l + shift));
  }
  return s;
}

}  // namespace

TEST(Calibration, IsotonicAndPlattReachTheTrueProbabilities) {
  const Sample cal = draw(50000, 1, 1.8, 0.7), test = draw(200000, 2, 1.8, 0.7);
  const double ece0 = reliability(test.score, test.truth).ece;
  const double auc0 = roc_auc(test.score, test.label);
  EXPECT_GT(ece0, 0.03);
  std::printf("uncalibrated: ECE %.4f (15 bins, against the true probabilities), AUC %.4f\n", ece0, auc0);
  for (const char* m : {"isotonic", "platt"}) {
    const Calibrator c = fit_calibrator(m, cal.score, cal.label);
    const std::vector<double> p = c.apply(test.score);
    const Reliability rel = reliability(p, test.truth);
    std::printf("%-12s ECE %.4f (%.1fx lower), MCE %.4f, AUC %.4f\n", m, rel.ece, ece0 / rel.ece, rel.mce,
                roc_auc(p, test.label));
    EXPECT_LE(rel.ece, 0.01) << m;
    EXPECT_LE(4 * rel.ece, ece0) << m;
    EXPECT_NEAR(roc_auc(p, test.label), auc0, std::string(m) == "platt" ? 1e-12 : 0.005) << m;
    // Expected buyers match the true expectation.
    double e = 0, t = 0;
    for (size_t i = 0; i < p.size(); ++i) e += p[i], t += test.truth[i];
    EXPECT_NEAR(e / t, 1.0, 0.02) << m;
    // The fitted map survives a JSON round trip.
    const Calibrator back = Calibrator::from_json(c.to_json());
    for (double x : {0.0, 0.01, 0.2, 0.5, 0.93, 1.0}) EXPECT_DOUBLE_EQ(back.apply(x), c.apply(x)) << m;
  }
  // Platt recovers the distortion it models: a = 1 / 1.8, b = -0.7 / 1.8.
  const Calibrator platt = fit_calibrator("platt", cal.score, cal.label);
  EXPECT_NEAR(platt.a, 1 / 1.8, 0.03);
  EXPECT_NEAR(platt.b, -0.7 / 1.8, 0.05);
}

TEST(Calibration, TemperatureFixesOverConfidence) {
  const Sample cal = draw(50000, 3, 2.0, 0.0), test = draw(200000, 4, 2.0, 0.0);
  const Calibrator c = fit_calibrator("temperature", cal.score, cal.label);
  EXPECT_NEAR(c.temperature, 2.0, 0.1);
  const double ece0 = reliability(test.score, test.truth).ece;
  const double ece1 = reliability(c.apply(test.score), test.truth).ece;
  std::printf("temperature T = %.3f: ECE %.4f -> %.4f\n", c.temperature, ece0, ece1);
  EXPECT_LE(ece1, 0.01);
  EXPECT_LE(4 * ece1, ece0);
  EXPECT_NEAR(roc_auc(c.apply(test.score), test.label), roc_auc(test.score, test.label), 1e-12);
}

TEST(Calibration, PoolAdjacentViolatorsOnAHandExample) {
  const Calibrator c = fit_calibrator("isotonic", {0.1, 0.2, 0.3, 0.4}, {1, 0, 0, 1});
  ASSERT_EQ(c.value.size(), 2u);
  EXPECT_NEAR(c.value[0], 1.0 / 3, 1e-12);
  EXPECT_NEAR(c.value[1], 1.0, 1e-12);
  EXPECT_NEAR(c.apply(0.05), 1.0 / 3, 1e-12);   // clipped below
  EXPECT_NEAR(c.apply(0.25), 1.0 / 3, 1e-12);   // inside the first block
  EXPECT_NEAR(c.apply(0.35), 2.0 / 3, 1e-12);   // interpolated between the blocks
  EXPECT_NEAR(c.apply(0.9), 1.0, 1e-12);        // clipped above
  EXPECT_THROW(fit_calibrator("isotonic", {0.1, 0.2}, {0, 0}), DataError);
  EXPECT_THROW(fit_calibrator("isotonic", {0.1, 1.5}, {0, 1}), DataError);
  EXPECT_THROW(fit_calibrator("beta", {0.1, 0.5}, {0, 1}), ConfigError);
}

TEST(Calibration, ReliabilityTableAndAuc) {
  // Two bins used of 15: predictions 0.05 (labels 0, 1) and 0.95 (labels 1, 1).
  const Reliability r = reliability({0.05, 0.05, 0.95, 0.95}, {0, 1, 1, 1});
  ASSERT_EQ(r.bins.size(), 15u);
  EXPECT_EQ(r.bins[0].n, 2);
  EXPECT_EQ(r.bins[14].n, 2);
  EXPECT_NEAR(r.bins[0].observed, 0.5, 1e-12);
  EXPECT_NEAR(r.ece, 0.5 * 0.45 + 0.5 * 0.05, 1e-12);
  EXPECT_NEAR(r.mce, 0.45, 1e-12);
  // scikit-learn's roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75; a tie counts 1/2.
  EXPECT_NEAR(roc_auc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75, 1e-12);
  EXPECT_NEAR(roc_auc({0.5, 0.5}, {0, 1}), 0.5, 1e-12);
}

TEST(Calibration, HeadsWithEnoughSamplesGetTheirOwnMapTheRestThePooledOne) {
  // Head 0 is padding (skipped); head 1 is distorted one way, head 2 the other way; head 3 has
  // too few positives for a map of its own.
  const Sample a = draw(40000, 5, 2.0, 0.5), b = draw(40000, 6, 0.6, -0.4), c = draw(300, 7, 1.0, 0.0);
  std::vector<std::vector<double>> p = {{0.5, 0.5}, a.score, b.score, c.score};
  std::vector<std::vector<int>> y = {{0, 1}, a.label, b.label, c.label};
  int64_t c_pos = 0;
  for (int v : c.label) c_pos += v;
  ASSERT_LT(c_pos, 50);
  const HeadCalibration h = fit_head_calibration("platt", "per_head", p, y, 50, {0});
  ASSERT_EQ(h.heads.size(), 4u);
  EXPECT_FALSE(h.heads[0].has_value());
  ASSERT_TRUE(h.heads[1].has_value());
  ASSERT_TRUE(h.heads[2].has_value());
  EXPECT_FALSE(h.heads[3].has_value());
  EXPECT_EQ(h.own_maps(), 2);
  // Each own map undoes its head's distortion, which one pooled map cannot do for both.
  EXPECT_NEAR(h.heads[1]->a, 1 / 2.0, 0.03);
  EXPECT_NEAR(h.heads[2]->a, 1 / 0.6, 0.1);
  const Sample ta = draw(100000, 8, 2.0, 0.5), tb = draw(100000, 9, 0.6, -0.4);
  auto ece_of = [&](const Sample& t, int64_t head, const HeadCalibration& cal) {
    std::vector<double> q(t.score.size());
    for (size_t i = 0; i < q.size(); ++i) q[i] = cal.apply(head, t.score[i]);
    return reliability(q, t.truth).ece;
  };
  const HeadCalibration pooled = fit_head_calibration("platt", "pooled", p, y, 50, {0});
  EXPECT_EQ(pooled.own_maps(), 0);
  for (auto [t, head] : {std::pair{&ta, int64_t(1)}, std::pair{&tb, int64_t(2)}}) {
    EXPECT_LE(ece_of(*t, head, h), 0.01) << head;
    EXPECT_LT(ece_of(*t, head, h), ece_of(*t, head, pooled)) << head;
  }
  EXPECT_DOUBLE_EQ(h.apply(3, 0.3), h.pooled.apply(0.3));  // the fallback
  // JSON round trip, format tag checked.
  const HeadCalibration back = HeadCalibration::from_json(h.to_json());
  EXPECT_EQ(back.own_maps(), 2);
  for (int64_t head = 0; head < 4; ++head)
    for (double x : {0.001, 0.2, 0.7}) EXPECT_DOUBLE_EQ(back.apply(head, x), h.apply(head, x)) << head;
  nlohmann::json bad = h.to_json();
  bad["format"] = "something-else";
  EXPECT_THROW(HeadCalibration::from_json(bad), DataError);
  bad = h.to_json();
  bad["format_version"] = 99;
  EXPECT_THROW(HeadCalibration::from_json(bad), DataError);
  // method none: the identity, nothing fitted.
  const HeadCalibration none = fit_head_calibration("none", "per_head", p, y, 50, {0});
  EXPECT_FALSE(none.enabled());
  EXPECT_DOUBLE_EQ(none.apply(1, 0.42), 0.42);
  EXPECT_FALSE(HeadCalibration::from_json(none.to_json()).enabled());
}

TEST(Calibration, PlattNeverReversesAHeadThatRanksBackwards) {
  // The score is the truth mirrored: a free Platt fit would take a < 0 and reverse the ranking.
  Sample s = draw(20000, 10, 1.0, 0.0);
  for (auto& v : s.score) v = 1 - v;
  const Calibrator c = fit_calibrator("platt", s.score, s.label);
  EXPECT_NEAR(c.a, 1e-3, 1e-12);
  EXPECT_LT(c.apply(0.1), c.apply(0.9));  // increasing
  // ... and nearly the base rate everywhere (the head carries no usable signal).
  double base = 0;
  for (int y : s.label) base += y;
  base /= double(s.label.size());
  EXPECT_NEAR(c.apply(0.5), base, 0.01);
}
