#include "campaign/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "core/rng.h"

namespace portrait::campaign {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

double normal_p_two_sided(double z) { return std::erfc(std::fabs(z) / std::sqrt(2.0)); }

double normal_quantile_two_sided(double level) {
  if (!(level > 0 && level < 1)) throw std::invalid_argument("confidence level must be in (0, 1)");
  // Bisection on the two-sided tail: P(|Z| > z) = 1 - level. 200 halvings reach double precision.
  const double tail = 1.0 - level;
  double lo = 0, hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (normal_p_two_sided(mid) > tail) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

Interval wilson_interval(int64_t x, int64_t n, double level) {
  if (n <= 0) return {kNaN, kNaN};
  const double z = normal_quantile_two_sided(level);
  const double N = double(n), p = double(x) / N, z2 = z * z;
  const double centre = (p + z2 / (2 * N)) / (1 + z2 / N);
  const double half = z / (1 + z2 / N) * std::sqrt(p * (1 - p) / N + z2 / (4 * N * N));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

RateLift rate_lift(int64_t x_t, int64_t n_t, int64_t x_c, int64_t n_c, double level, const std::string& method) {
  RateLift r;
  r.x_t = x_t, r.n_t = n_t, r.x_c = x_c, r.n_c = n_c;
  if (n_t <= 0 || n_c <= 0) {
    r.rate_t = n_t > 0 ? double(x_t) / double(n_t) : kNaN;
    r.rate_c = n_c > 0 ? double(x_c) / double(n_c) : kNaN;
    r.abs_lift = r.abs_lo = r.abs_hi = r.rel_lift = r.rel_lo = r.rel_hi = kNaN;
    r.z = kNaN;
    r.p_value = kNaN;
    r.incremental = r.inc_lo = r.inc_hi = kNaN;
    return r;
  }
  r.defined = true;
  const double z = normal_quantile_two_sided(level);
  const double p1 = double(x_t) / double(n_t), p2 = double(x_c) / double(n_c);
  r.rate_t = p1;
  r.rate_c = p2;
  r.abs_lift = p1 - p2;
  if (method == "wald") {
    const double se = std::sqrt(p1 * (1 - p1) / double(n_t) + p2 * (1 - p2) / double(n_c));
    r.abs_lo = r.abs_lift - z * se;
    r.abs_hi = r.abs_lift + z * se;
  } else if (method == "newcombe") {
    const Interval w1 = wilson_interval(x_t, n_t, level), w2 = wilson_interval(x_c, n_c, level);
    r.abs_lo = r.abs_lift - std::sqrt((p1 - w1.lo) * (p1 - w1.lo) + (w2.hi - p2) * (w2.hi - p2));
    r.abs_hi = r.abs_lift + std::sqrt((w1.hi - p1) * (w1.hi - p1) + (p2 - w2.lo) * (p2 - w2.lo));
  } else {
    throw std::invalid_argument("rate interval method must be newcombe or wald, not '" + method + "'");
  }
  // Pooled z-test.
  const double pp = double(x_t + x_c) / double(n_t + n_c);
  const double se0 = std::sqrt(pp * (1 - pp) * (1.0 / double(n_t) + 1.0 / double(n_c)));
  if (se0 > 0) {
    r.z = r.abs_lift / se0;
    r.p_value = normal_p_two_sided(r.z);
  } else {
    r.z = 0;
    r.p_value = 1;
  }
  // Relative lift, Katz log interval (undefined without successes in both arms).
  if (x_t > 0 && x_c > 0) {
    const double rr = p1 / p2;
    const double se = std::sqrt(1.0 / double(x_t) - 1.0 / double(n_t) + 1.0 / double(x_c) - 1.0 / double(n_c));
    r.rel_lift = rr - 1;
    r.rel_lo = rr * std::exp(-z * se) - 1;
    r.rel_hi = rr * std::exp(z * se) - 1;
  } else {
    r.rel_lift = x_c > 0 ? p1 / p2 - 1 : kNaN;
    r.rel_lo = r.rel_hi = kNaN;
  }
  r.incremental = r.abs_lift * double(n_t);
  r.inc_lo = r.abs_lo * double(n_t);
  r.inc_hi = r.abs_hi * double(n_t);
  return r;
}

double MeanAcc::var() const {
  if (n < 2) return 0;
  const double m = mean();
  return std::max(0.0, (sum2 - double(n) * m * m) / double(n - 1));
}

MeanLift mean_lift(const MeanAcc& t, const MeanAcc& c, double level) {
  MeanLift r;
  r.n_t = t.n;
  r.n_c = c.n;
  r.mean_t = t.n ? t.mean() : kNaN;
  r.mean_c = c.n ? c.mean() : kNaN;
  if (t.n < 1 || c.n < 1) {
    r.diff = r.lo = r.hi = r.rel = r.rel_lo = r.rel_hi = r.z = r.p_value = kNaN;
    r.incremental = r.inc_lo = r.inc_hi = kNaN;
    return r;
  }
  r.defined = true;
  const double z = normal_quantile_two_sided(level);
  const double vt = t.var() / double(t.n), vc = c.var() / double(c.n);
  const double se = std::sqrt(vt + vc);
  r.diff = r.mean_t - r.mean_c;
  r.lo = r.diff - z * se;
  r.hi = r.diff + z * se;
  if (se > 0) {
    r.z = r.diff / se;
    r.p_value = normal_p_two_sided(r.z);
  } else {
    r.z = 0;
    r.p_value = r.diff == 0 ? 1.0 : 0.0;
  }
  if (r.mean_t > 0 && r.mean_c > 0) {
    const double rr = r.mean_t / r.mean_c;
    const double sl = std::sqrt(vt / (r.mean_t * r.mean_t) + vc / (r.mean_c * r.mean_c));
    r.rel = rr - 1;
    r.rel_lo = rr * std::exp(-z * sl) - 1;
    r.rel_hi = rr * std::exp(z * sl) - 1;
  } else {
    r.rel = r.rel_lo = r.rel_hi = kNaN;
  }
  r.incremental = r.diff * double(t.n);
  r.inc_lo = r.lo * double(t.n);
  r.inc_hi = r.hi * double(t.n);
  return r;
}

Interval bootstrap_diff(const std::vector<double>& y_t, const std::vector<double>& y_c, int resamples,
                        uint64_t seed, double level) {
  if (y_t.empty() || y_c.empty() || resamples < 1) return {kNaN, kNaN};
  Rng r(mix64(seed, 0xb0075ULL));
  std::vector<double> d(static_cast<size_t>(resamples));
  for (int b = 0; b < resamples; ++b) {
    double st = 0, sc = 0;
    for (size_t i = 0; i < y_t.size(); ++i) st += y_t[r.below(y_t.size())];
    for (size_t i = 0; i < y_c.size(); ++i) sc += y_c[r.below(y_c.size())];
    d[size_t(b)] = st / double(y_t.size()) - sc / double(y_c.size());
  }
  std::sort(d.begin(), d.end());
  auto q = [&](double a) {
    const double pos = a * double(resamples - 1);
    const size_t i = size_t(std::floor(pos));
    const double f = pos - double(i);
    return i + 1 < d.size() ? d[i] * (1 - f) + d[i + 1] * f : d[i];
  };
  const double a = (1 - level) / 2;
  return {q(a), q(1 - a)};
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  const size_t m = p.size();
  std::vector<size_t> ord(m);
  std::iota(ord.begin(), ord.end(), size_t{0});
  // NaN p-values (undefined tests) stay NaN and do not count in the family.
  ord.erase(std::remove_if(ord.begin(), ord.end(), [&](size_t i) { return std::isnan(p[i]); }), ord.end());
  std::stable_sort(ord.begin(), ord.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  std::vector<double> out(m, kNaN);
  double running = 0;
  const size_t k = ord.size();
  for (size_t r = 0; r < k; ++r) {
    running = std::max(running, std::min(1.0, double(k - r) * p[ord[r]]));
    out[ord[r]] = running;
  }
  return out;
}

void sort_by_score(std::vector<RankedOutcome>& v) {
  std::sort(v.begin(), v.end(), [](const RankedOutcome& a, const RankedOutcome& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.tie < b.tie;
  });
}

double uplift_at(const std::vector<RankedOutcome>& s, double fraction) {
  if (s.empty() || !(fraction > 0)) return kNaN;
  const size_t k = std::min(s.size(), size_t(std::ceil(std::min(fraction, 1.0) * double(s.size()) - 1e-9)));
  double yt = 0, yc = 0;
  int64_t nt = 0, nc = 0;
  for (size_t i = 0; i < k; ++i) {
    if (s[i].treated) {
      ++nt;
      yt += s[i].y;
    } else {
      ++nc;
      yc += s[i].y;
    }
  }
  if (!nt || !nc) return kNaN;
  return yt / double(nt) - yc / double(nc);
}

std::vector<UpliftBin> uplift_by_bin(const std::vector<RankedOutcome>& s, int bins, double level, bool binary) {
  std::vector<UpliftBin> out;
  if (bins < 1 || s.empty()) return out;
  const size_t N = s.size();
  std::vector<MeanAcc> at(static_cast<size_t>(bins)), ac(static_cast<size_t>(bins));
  out.resize(size_t(bins));
  for (size_t i = 0; i < N; ++i) {
    const size_t b = std::min(size_t(bins - 1), i * size_t(bins) / N);
    (s[i].treated ? at : ac)[b].add(s[i].y);
  }
  for (int b = 0; b < bins; ++b) {
    UpliftBin& u = out[size_t(b)];
    const MeanAcc &t = at[size_t(b)], &c = ac[size_t(b)];
    u.bin = b + 1;
    u.n_t = t.n;
    u.n_c = c.n;
    u.y_t = t.sum;
    u.y_c = c.sum;
    if (binary) {
      RateLift r = rate_lift(int64_t(std::llround(t.sum)), t.n, int64_t(std::llround(c.sum)), c.n, level);
      u.rate_t = r.rate_t, u.rate_c = r.rate_c, u.uplift = r.abs_lift, u.lo = r.abs_lo, u.hi = r.abs_hi;
    } else {
      MeanLift r = mean_lift(t, c, level);
      u.rate_t = r.mean_t, u.rate_c = r.mean_c, u.uplift = r.diff, u.lo = r.lo, u.hi = r.hi;
    }
  }
  return out;
}

QiniCurve qini_curve(const std::vector<RankedOutcome>& s, int points) {
  QiniCurve q;
  const size_t N = s.size();
  if (N == 0 || points < 1) return q;
  // Prefix sums at every rank, then sampled at the grid.
  double yt = 0, yc = 0;
  int64_t nt = 0, nc = 0;
  auto qini_now = [&] { return nc > 0 ? yt - yc * double(nt) / double(nc) : yt; };
  std::vector<double> at_rank(N + 1, 0.0);
  for (size_t i = 0; i < N; ++i) {
    if (s[i].treated) {
      ++nt;
      yt += s[i].y;
    } else {
      ++nc;
      yc += s[i].y;
    }
    at_rank[i + 1] = qini_now();
  }
  const double total = at_rank[N];
  q.points.push_back({0.0, 0, 0.0, 0.0});
  for (int k = 1; k <= points; ++k) {
    const size_t n = std::min(N, size_t(std::llround(double(k) * double(N) / double(points))));
    const double f = double(n) / double(N);
    q.points.push_back({f, int64_t(n), at_rank[n], f * total});
  }
  for (size_t i = 1; i < q.points.size(); ++i) {
    const QiniPoint &a = q.points[i - 1], &b = q.points[i];
    q.area += 0.5 * (b.fraction - a.fraction) * ((a.qini - a.random) + (b.qini - b.random));
  }
  q.area_per_user = q.area / double(N);
  return q;
}

}  // namespace portrait::campaign
