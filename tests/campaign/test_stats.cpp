// campaign/stats.h against published values (Newcombe 1998, Wilson) and by simulation.
#include <gtest/gtest.h>

#include <cmath>

#include "campaign/stats.h"
#include "core/rng.h"

using namespace portrait;
using namespace portrait::campaign;

TEST(CampaignStats, NormalQuantile) {
  EXPECT_NEAR(normal_quantile_two_sided(0.95), 1.959964, 1e-6);
  EXPECT_NEAR(normal_quantile_two_sided(0.99), 2.575829, 1e-6);
  EXPECT_NEAR(normal_p_two_sided(1.959964), 0.05, 1e-6);
}

TEST(CampaignStats, WilsonIntervalMatchesPublishedValues) {
  // Newcombe (1998), Statistics in Medicine 17:857, table I.
  Interval a = wilson_interval(81, 263);
  EXPECT_NEAR(a.lo, 0.2553, 1e-4);
  EXPECT_NEAR(a.hi, 0.3662, 1e-4);
  Interval b = wilson_interval(0, 20);
  EXPECT_NEAR(b.lo, 0.0, 1e-12);
  EXPECT_NEAR(b.hi, 0.1611, 1e-4);
}

TEST(CampaignStats, NewcombeDifferenceMatchesPublishedExample) {
  // Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, method 10.
  RateLift r = rate_lift(56, 70, 48, 80);
  EXPECT_NEAR(r.abs_lift, 0.2, 1e-12);
  EXPECT_NEAR(r.abs_lo, 0.0524, 1e-4);
  EXPECT_NEAR(r.abs_hi, 0.3339, 1e-4);
  // Pooled z-test: z = 0.2 / sqrt(p(1-p)(1/70 + 1/80)), p = 104/150.
  const double pp = 104.0 / 150.0, z = 0.2 / std::sqrt(pp * (1 - pp) * (1.0 / 70 + 1.0 / 80));
  EXPECT_NEAR(r.z, z, 1e-12);
  EXPECT_NEAR(r.p_value, std::erfc(z / std::sqrt(2.0)), 1e-12);
  EXPECT_NEAR(r.incremental, 0.2 * 70, 1e-9);
  // Relative lift and its Katz interval contain the point estimate.
  EXPECT_NEAR(r.rel_lift, 0.8 / 0.6 - 1, 1e-12);
  EXPECT_LT(r.rel_lo, r.rel_lift);
  EXPECT_GT(r.rel_hi, r.rel_lift);
  // Wald: 0.2 +- 1.96 * sqrt(.8*.2/70 + .6*.4/80).
  RateLift w = rate_lift(56, 70, 48, 80, 0.95, "wald");
  const double se = std::sqrt(0.8 * 0.2 / 70 + 0.6 * 0.4 / 80);
  EXPECT_NEAR(w.abs_lo, 0.2 - 1.959964 * se, 1e-6);
  EXPECT_THROW(rate_lift(1, 2, 1, 2, 0.95, "exact"), std::invalid_argument);
  EXPECT_FALSE(rate_lift(1, 2, 0, 0).defined);
}

TEST(CampaignStats, NewcombeIntervalCoversTheTrueDifferenceAtItsLevel) {
  Rng r(11);
  const double p1 = 0.13, p0 = 0.10;
  int covered = 0, covered_zero = 0, trials = 3000;
  for (int t = 0; t < trials; ++t) {
    int64_t x1 = 0, x0 = 0, z1 = 0, z0 = 0;
    for (int i = 0; i < 400; ++i) {
      x1 += r.bernoulli(p1);
      x0 += r.bernoulli(p0);
      z1 += r.bernoulli(p0);
      z0 += r.bernoulli(p0);
    }
    RateLift a = rate_lift(x1, 400, x0, 400);
    covered += a.abs_lo <= p1 - p0 && p1 - p0 <= a.abs_hi;
    covered_zero += rate_lift(z1, 400, z0, 400).p_value >= 0.05;
  }
  EXPECT_NEAR(double(covered) / trials, 0.95, 0.015);
  EXPECT_NEAR(double(covered_zero) / trials, 0.95, 0.015);  // false-positive rate of the z-test ~ 5%
}

TEST(CampaignStats, MeanLiftAndBootstrapAgreeOnLargeSamples) {
  Rng r(5);
  MeanAcc t, c;
  std::vector<double> yt, yc;
  for (int i = 0; i < 4000; ++i) {
    double a = r.bernoulli(0.2) ? std::exp(3 + r.normal()) : 0.0, b = r.bernoulli(0.15) ? std::exp(3 + r.normal()) : 0.0;
    t.add(a);
    c.add(b);
    yt.push_back(a);
    yc.push_back(b);
  }
  MeanLift m = mean_lift(t, c);
  ASSERT_TRUE(m.defined);
  EXPECT_NEAR(m.diff, t.mean() - c.mean(), 1e-9);
  Interval b = bootstrap_diff(yt, yc, 400, 3);
  EXPECT_NEAR(b.lo, m.lo, 0.25 * (m.hi - m.lo));
  EXPECT_NEAR(b.hi, m.hi, 0.25 * (m.hi - m.lo));
  // Deterministic from the seed.
  Interval b2 = bootstrap_diff(yt, yc, 400, 3);
  EXPECT_EQ(b.lo, b2.lo);
  EXPECT_EQ(b.hi, b2.hi);
}

TEST(CampaignStats, HolmAdjustment) {
  auto h = holm_adjust({0.01, 0.04, 0.03, NAN});
  EXPECT_NEAR(h[0], 0.03, 1e-12);
  EXPECT_NEAR(h[1], 0.06, 1e-12);
  EXPECT_NEAR(h[2], 0.06, 1e-12);
  EXPECT_TRUE(std::isnan(h[3]));
}

TEST(CampaignStats, QiniCurveAndUpliftOfAHandComputedExample) {
  // 8 users by score: T1 C0 T1 C1 | T0 C0 T0 C1
  std::vector<RankedOutcome> v = {{8, true, 1, 0},  {7, false, 0, 0}, {6, true, 1, 0},  {5, false, 1, 0},
                                  {4, true, 0, 0},  {3, false, 0, 0}, {2, true, 0, 0},  {1, false, 1, 0}};
  std::reverse(v.begin(), v.end());
  sort_by_score(v);
  EXPECT_EQ(v[0].score, 8);
  EXPECT_NEAR(uplift_at(v, 0.5), 1.0 - 0.5, 1e-12);   // top 4: T 2/2, C 1/2
  EXPECT_NEAR(uplift_at(v, 1.0), 0.5 - 0.5, 1e-12);   // all: T 2/4, C 2/4
  QiniCurve q = qini_curve(v, 4);
  ASSERT_EQ(q.points.size(), 5u);
  // k=2: Y_t=1, Y_c=0 -> 1; k=4: 2 - 1*2/2 = 1; k=6: 2 - 1*3/3 = 1; k=8: 2 - 2*4/4 = 0.
  EXPECT_NEAR(q.points[1].qini, 1, 1e-12);
  EXPECT_NEAR(q.points[2].qini, 1, 1e-12);
  EXPECT_NEAR(q.points[3].qini, 1, 1e-12);
  EXPECT_NEAR(q.points[4].qini, 0, 1e-12);
  EXPECT_NEAR(q.points[4].random, 0, 1e-12);
  // Area: trapezoids of width 0.25 over (0,1,1,1,0) = 0.125 + 0.25 + 0.25 + 0.125.
  EXPECT_NEAR(q.area, 0.75, 1e-12);
  auto bins = uplift_by_bin(v, 2);
  ASSERT_EQ(bins.size(), 2u);
  EXPECT_NEAR(bins[0].uplift, 0.5, 1e-12);
  EXPECT_NEAR(bins[1].uplift, -0.5, 1e-12);
}
