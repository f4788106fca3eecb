// Statistics of a randomized campaign: treated vs control rates and means with confidence
// intervals and p-values, and the ranking metrics of uplift modelling (uplift@k, uplift by
// score bin, Qini curve against random targeting). Plain double arithmetic, no dependencies.
//
// Methods (what the reports state):
//   * rates (participation, conversion): absolute lift p_t - p_c with the Newcombe hybrid
//     score interval (Newcombe 1998, method 10: from the two Wilson intervals; good coverage
//     down to small counts) or the Wald interval; relative lift p_t / p_c - 1 with the Katz
//     log interval; two-sided p-value of the pooled two-proportion z-test; incremental
//     conversions = (p_t - p_c) * n_t with the same interval scaled.
//   * means (revenue per user): difference of means with the Welch normal interval and its
//     z p-value.
//   * bootstrap (optional): percentile interval of the difference of means, resampling each
//     arm with replacement, deterministic from a seed.
//   * Qini curve (Radcliffe 2007): users sorted by score (descending); at the top k,
//     Q(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k) (incremental outcomes); random targeting is
//     the straight line k/N * Q(N); the Qini area is the area between the curve and that
//     line over the fraction targeted (trapezoids), in incremental outcomes.
//   * uplift@k: mean outcome of treated minus control users among the top k fraction of all
//     users by score (scikit-uplift's "overall" strategy).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace portrait::campaign {

/// z such that P(|Z| <= z) = level for a standard normal Z (level in (0, 1)).
double normal_quantile_two_sided(double level);
/// Two-sided p-value of a standard normal statistic.
double normal_p_two_sided(double z);

struct Interval {
  double lo = 0, hi = 0;
};

/// Wilson score interval of x successes in n trials (n > 0).
Interval wilson_interval(int64_t x, int64_t n, double level = 0.95);

/// Treated vs control comparison of a rate.
struct RateLift {
  int64_t x_t = 0, n_t = 0, x_c = 0, n_c = 0;
  double rate_t = 0, rate_c = 0;
  double abs_lift = 0, abs_lo = 0, abs_hi = 0;   ///< p_t - p_c and its interval
  double rel_lift = 0, rel_lo = 0, rel_hi = 0;   ///< p_t / p_c - 1 (NaN when undefined)
  double z = 0, p_value = 1;                     ///< pooled two-proportion z-test, two-sided
  double incremental = 0, inc_lo = 0, inc_hi = 0;  ///< (p_t - p_c) * n_t
  bool defined = false;                          ///< both arms non-empty
};

/// `method`: "newcombe" (default) or "wald".
RateLift rate_lift(int64_t x_t, int64_t n_t, int64_t x_c, int64_t n_c, double level = 0.95,
                   const std::string& method = "newcombe");

/// Running sums of one arm's per-user values (revenue per user).
struct MeanAcc {
  int64_t n = 0;
  double sum = 0, sum2 = 0;
  void add(double y) {
    ++n;
    sum += y;
    sum2 += y * y;
  }
  double mean() const { return n ? sum / double(n) : 0.0; }
  /// Unbiased variance (0 for n < 2).
  double var() const;
};

struct MeanLift {
  int64_t n_t = 0, n_c = 0;
  double mean_t = 0, mean_c = 0;
  double diff = 0, lo = 0, hi = 0;    ///< mean_t - mean_c, Welch normal interval
  double rel = 0, rel_lo = 0, rel_hi = 0;  ///< mean_t / mean_c - 1 (delta method on the log)
  double z = 0, p_value = 1;
  double incremental = 0, inc_lo = 0, inc_hi = 0;  ///< diff * n_t
  bool defined = false;
};

MeanLift mean_lift(const MeanAcc& t, const MeanAcc& c, double level = 0.95);

/// Percentile bootstrap interval of mean(y_t) - mean(y_c): `resamples` draws of each arm with
/// replacement, seeded. Empty arms give {NaN, NaN}.
Interval bootstrap_diff(const std::vector<double>& y_t, const std::vector<double>& y_c, int resamples,
                        uint64_t seed, double level = 0.95);

/// Holm step-down adjustment of a family of p-values (same order as given).
std::vector<double> holm_adjust(const std::vector<double>& p);

// ---- Ranking metrics -------------------------------------------------------------------------

/// One user of a ranked, randomized audience.
struct RankedOutcome {
  double score = 0;     ///< higher = targeted first
  bool treated = false;
  double y = 0;         ///< outcome (0/1 conversion, or revenue)
  uint64_t tie = 0;     ///< tie-break among equal scores (e.g. a hash of the user id)
};

/// Sorts by score descending, then `tie` ascending (the order every metric below uses).
void sort_by_score(std::vector<RankedOutcome>& v);

/// Uplift among the top `fraction` (0, 1] of users of a sorted vector: mean y of treated minus
/// mean y of control there (NaN when one arm is empty there).
double uplift_at(const std::vector<RankedOutcome>& sorted, double fraction);

struct UpliftBin {
  int bin = 0;           ///< 1 = the highest scores
  int64_t n_t = 0, n_c = 0;
  double y_t = 0, y_c = 0;   ///< outcome sums
  double rate_t = 0, rate_c = 0, uplift = 0, lo = 0, hi = 0;  ///< lo/hi: rate interval
};

/// Users of a sorted vector cut into `bins` bins of (nearly) equal size by rank. For binary
/// outcomes lo/hi are the Newcombe interval of the bin's uplift, else Welch.
std::vector<UpliftBin> uplift_by_bin(const std::vector<RankedOutcome>& sorted, int bins, double level = 0.95,
                                     bool binary = true);

struct QiniPoint {
  double fraction = 0;  ///< of users targeted (by rank)
  int64_t users = 0;
  double qini = 0;      ///< incremental outcomes among the targeted
  double random = 0;    ///< random targeting: fraction * qini(all)
};

struct QiniCurve {
  std::vector<QiniPoint> points;  ///< starts at (0, 0), ends at fraction 1
  double area = 0;                ///< area between the curve and the random line (over fraction)
  double area_per_user = 0;       ///< area / users
};

/// Qini curve of a sorted vector evaluated at `points` equally spaced fractions (plus 0).
QiniCurve qini_curve(const std::vector<RankedOutcome>& sorted, int points = 100);

}  // namespace portrait::campaign
