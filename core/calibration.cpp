#include "core/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

#include "core/error.h"

namespace portrait::calib {

namespace {

constexpr double kEps = 1e-12;
constexpr double kMinPlattSlope = 1e-3;
double clip01(double p) { return std::clamp(p, kEps, 1 - kEps); }
double logit(double p) {
  p = clip01(p);
  return std::log(p / (1 - p));
}
double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }
/// log(1 + exp(x)) without overflow.
double softplus(double x) { return x > 30 ? x : (x < -30 ? std::exp(x) : std::log1p(std::exp(x))); }

void check_inputs(const std::vector<double>& s, const std::vector<int>& y) {
  if (s.size() != y.size()) throw std::invalid_argument("calibration: scores and labels differ in length");
  if (s.empty()) throw DataError("calibration: no calibration samples");
  int64_t pos = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!std::isfinite(s[i]) || s[i] < 0 || s[i] > 1)
      throw DataError(fmt::format("calibration: score {} at sample {} is not a probability in [0, 1]", s[i], i));
    if (y[i] != 0 && y[i] != 1) throw DataError(fmt::format("calibration: label {} at sample {} is not 0/1", y[i], i));
    pos += y[i];
  }
  if (pos == 0 || pos == int64_t(s.size()))
    throw DataError("calibration: the calibration labels are all " + std::string(pos ? "1" : "0") +
                    "; both classes are needed");
}

/// NLL of sigmoid(a z + b) (b fixed at 0 when `with_bias` is false).
double nll(const std::vector<double>& z, const std::vector<int>& y, double a, double b) {
  double s = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    const double t = a * z[i] + b;
    s += softplus(t) - (y[i] ? t : 0.0);
  }
  return s;
}

/// Newton's method with backtracking for the (one- or two-parameter) logistic fit on z.
void fit_logistic(const std::vector<double>& z, const std::vector<int>& y, bool with_bias, double& a, double& b) {
  a = 1;
  b = 0;
  double f = nll(z, y, a, b);
  for (int it = 0; it < 100; ++it) {
    double ga = 0, gb = 0, haa = 0, hab = 0, hbb = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      const double p = sigmoid(a * z[i] + b), r = p - y[i], w = p * (1 - p);
      ga += r * z[i];
      gb += r;
      haa += w * z[i] * z[i];
      hab += w * z[i];
      hbb += w;
    }
    double da, db = 0;
    if (with_bias) {
      haa += 1e-9;
      hbb += 1e-9;
      const double det = haa * hbb - hab * hab;
      if (!(det > 0)) break;
      da = (hbb * ga - hab * gb) / det;
      db = (haa * gb - hab * ga) / det;
    } else {
      if (!(haa > 0)) break;
      da = ga / (haa + 1e-9);
    }
    double step = 1, fn = f;
    for (int k = 0; k < 50; ++k, step *= 0.5) {
      fn = nll(z, y, a - step * da, b - step * db);
      if (fn <= f) break;
    }
    if (fn > f) break;
    a -= step * da;
    b -= step * db;
    const bool done = f - fn < 1e-12 * std::max(1.0, f) && std::fabs(step * da) < 1e-10 && std::fabs(step * db) < 1e-10;
    f = fn;
    if (done) break;
  }
}

/// The intercept b minimising the NLL of sigmoid(a z + b) for a fixed slope a (Newton).
double fit_intercept(const std::vector<double>& z, const std::vector<int>& y, double a) {
  double b = 0;
  for (int it = 0; it < 100; ++it) {
    double g = 0, h = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      const double p = sigmoid(a * z[i] + b);
      g += p - y[i];
      h += p * (1 - p);
    }
    if (!(h > 0)) break;
    const double step = std::clamp(g / h, -5.0, 5.0);
    b -= step;
    if (std::fabs(step) < 1e-12) break;
  }
  return b;
}

}  // namespace

double Calibrator::apply(double s) const {
  if (method == "identity") return s;
  if (method == "platt") return sigmoid(a * logit(s) + b);
  if (method == "temperature") return sigmoid(logit(s) / temperature);
  if (method == "isotonic") {
    if (value.empty()) return s;
    // The last block whose start is <= s.
    const size_t k = size_t(std::upper_bound(x_lo.begin(), x_lo.end(), s) - x_lo.begin());
    if (k == 0) return value.front();
    const size_t i = k - 1;
    if (s <= x_hi[i] || i + 1 == value.size()) return value[i];
    const double t = (s - x_hi[i]) / (x_lo[i + 1] - x_hi[i]);
    return value[i] + t * (value[i + 1] - value[i]);
  }
  throw std::invalid_argument("calibrator method '" + method + "' is unknown");
}

std::vector<double> Calibrator::apply(const std::vector<double>& s) const {
  std::vector<double> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = apply(s[i]);
  return out;
}

nlohmann::json Calibrator::to_json() const {
  nlohmann::json j = {{"method", method}, {"samples", samples}};
  if (method == "platt") j["a"] = a, j["b"] = b;
  if (method == "temperature") j["temperature"] = temperature;
  if (method == "isotonic") j["x_lo"] = x_lo, j["x_hi"] = x_hi, j["value"] = value;
  return j;
}

Calibrator Calibrator::from_json(const nlohmann::json& j) {
  Calibrator c;
  c.method = j.at("method").get<std::string>();
  c.samples = j.value("samples", int64_t(0));
  if (c.method == "platt") c.a = j.at("a").get<double>(), c.b = j.at("b").get<double>();
  else if (c.method == "temperature") c.temperature = j.at("temperature").get<double>();
  else if (c.method == "isotonic") {
    c.x_lo = j.at("x_lo").get<std::vector<double>>();
    c.x_hi = j.at("x_hi").get<std::vector<double>>();
    c.value = j.at("value").get<std::vector<double>>();
    if (c.x_lo.size() != c.value.size() || c.x_hi.size() != c.value.size())
      throw DataError("isotonic calibrator: x_lo, x_hi and value differ in length");
  } else if (c.method != "identity") {
    throw DataError("calibrator method '" + c.method + "' is not identity, isotonic, platt or temperature");
  }
  return c;
}

Calibrator fit_calibrator(const std::string& method, const std::vector<double>& s, const std::vector<int>& y) {
  check_inputs(s, y);
  Calibrator c;
  c.method = method;
  c.samples = int64_t(s.size());
  if (method == "platt" || method == "temperature") {
    std::vector<double> z(s.size());
    for (size_t i = 0; i < s.size(); ++i) z[i] = logit(s[i]);
    double a, b;
    fit_logistic(z, y, method == "platt", a, b);
    if (method == "platt") {
      // A head that ranks its validation labels backwards (or not at all) would get a
      // decreasing map, which reverses its audience; keep the map increasing with the smallest
      // slope and refit the intercept: nearly the base rate, the ranking kept.
      if (a < kMinPlattSlope) {
        a = kMinPlattSlope;
        b = fit_intercept(z, y, a);
      }
      c.a = a;
      c.b = b;
    } else {
      if (!(a > 0))
        throw DataError("temperature calibration: the scores rank the labels backwards (fitted 1/T <= 0)");
      c.temperature = 1 / a;
    }
    return c;
  }
  if (method != "isotonic")
    throw ConfigError("calibration method '" + method + "' must be isotonic, platt or temperature");
  // Pool-adjacent-violators over the distinct scores (ties are one point with their weight).
  std::vector<size_t> ord(s.size());
  std::iota(ord.begin(), ord.end(), size_t{0});
  std::sort(ord.begin(), ord.end(), [&](size_t i, size_t j) { return s[i] < s[j]; });
  struct Block {
    double lo, hi, sum, w;
  };
  std::vector<Block> st;
  for (size_t k = 0; k < ord.size();) {
    const double x = s[ord[k]];
    double sum = 0, w = 0;
    for (; k < ord.size() && s[ord[k]] == x; ++k) {
      sum += y[ord[k]];
      w += 1;
    }
    st.push_back({x, x, sum, w});
    while (st.size() >= 2 && st[st.size() - 2].sum / st[st.size() - 2].w >= st.back().sum / st.back().w) {
      Block top = st.back();
      st.pop_back();
      st.back().hi = top.hi;
      st.back().sum += top.sum;
      st.back().w += top.w;
    }
  }
  for (auto& bl : st) {
    c.x_lo.push_back(bl.lo);
    c.x_hi.push_back(bl.hi);
    c.value.push_back(bl.sum / bl.w);
  }
  return c;
}

double HeadCalibration::apply(int64_t c, double p) const {
  if (!enabled()) return p;
  if (c >= 0 && size_t(c) < heads.size() && heads[size_t(c)]) return heads[size_t(c)]->apply(p);
  return pooled.apply(p);
}

int64_t HeadCalibration::own_maps() const {
  return int64_t(std::count_if(heads.begin(), heads.end(), [](const auto& h) { return h.has_value(); }));
}

nlohmann::json HeadCalibration::to_json() const {
  nlohmann::json hs = nlohmann::json::array();
  for (const auto& h : heads) hs.push_back(h ? h->to_json() : nlohmann::json(nullptr));
  return {{"format", kCalibrationFormat}, {"format_version", kCalibrationFormatVersion},
          {"method", method},             {"scope", scope},
          {"fitted_on", fitted_on},       {"pooled", enabled() ? pooled.to_json() : nlohmann::json(nullptr)},
          {"heads", hs}};
}

HeadCalibration HeadCalibration::from_json(const nlohmann::json& j) {
  try {
    if (!j.is_object() || j.value("format", std::string()) != kCalibrationFormat)
      throw DataError(std::string("not a ") + kCalibrationFormat + " record");
    if (j.at("format_version").get<int>() != kCalibrationFormatVersion)
      throw DataError(fmt::format("{} format_version {} is not supported (this build reads {})", kCalibrationFormat,
                                  j.at("format_version").get<int>(), kCalibrationFormatVersion));
    HeadCalibration h;
    h.method = j.at("method").get<std::string>();
    h.scope = j.value("scope", std::string("per_head"));
    h.fitted_on = j.value("fitted_on", std::string());
    if (h.method != "none" && h.method != "isotonic" && h.method != "platt" && h.method != "temperature")
      throw DataError("calibration method '" + h.method + "' is not none, isotonic, platt or temperature");
    if (h.enabled()) h.pooled = Calibrator::from_json(j.at("pooled"));
    for (const auto& x : j.at("heads")) {
      if (x.is_null()) h.heads.emplace_back();
      else h.heads.emplace_back(Calibrator::from_json(x));
    }
    return h;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(std::string("malformed calibration record: ") + e.what());
  }
}

HeadCalibration fit_head_calibration(const std::string& method, const std::string& scope,
                                     const std::vector<std::vector<double>>& probs,
                                     const std::vector<std::vector<int>>& labels, int64_t min_class,
                                     const std::vector<int64_t>& skip) {
  if (probs.size() != labels.size()) throw std::invalid_argument("fit_head_calibration: probs and labels differ");
  if (scope != "per_head" && scope != "pooled")
    throw ConfigError("calibration scope '" + scope + "' must be per_head or pooled");
  HeadCalibration h;
  h.method = method;
  h.scope = scope;
  h.heads.resize(probs.size());
  if (method == "none") return h;
  std::vector<double> all_p;
  std::vector<int> all_y;
  auto skipped = [&](size_t c) { return std::find(skip.begin(), skip.end(), int64_t(c)) != skip.end(); };
  for (size_t c = 0; c < probs.size(); ++c) {
    if (skipped(c)) continue;
    all_p.insert(all_p.end(), probs[c].begin(), probs[c].end());
    all_y.insert(all_y.end(), labels[c].begin(), labels[c].end());
  }
  h.pooled = fit_calibrator(method, all_p, all_y);
  if (scope == "pooled") return h;
  for (size_t c = 0; c < probs.size(); ++c) {
    if (skipped(c)) continue;
    const int64_t pos = std::accumulate(labels[c].begin(), labels[c].end(), int64_t{0});
    const int64_t neg = int64_t(labels[c].size()) - pos;
    if (pos < std::max<int64_t>(min_class, 1) || neg < std::max<int64_t>(min_class, 1)) continue;
    try {
      h.heads[c] = fit_calibrator(method, probs[c], labels[c]);
    } catch (const DataError&) {
      // e.g. temperature scaling of a head that ranks backwards: the pooled map serves it
    }
  }
  return h;
}

Reliability reliability(const std::vector<double>& pred, const std::vector<double>& truth, int bins) {
  if (pred.size() != truth.size()) throw std::invalid_argument("reliability: predictions and truth differ in length");
  if (bins < 1) throw std::invalid_argument("reliability: bins must be >= 1");
  Reliability r;
  r.bins.resize(static_cast<size_t>(bins));
  std::vector<double> sp(static_cast<size_t>(bins), 0.0), st(static_cast<size_t>(bins), 0.0);
  for (int b = 0; b < bins; ++b) {
    r.bins[size_t(b)].lo = double(b) / bins;
    r.bins[size_t(b)].hi = double(b + 1) / bins;
  }
  for (size_t i = 0; i < pred.size(); ++i) {
    const double p = std::clamp(pred[i], 0.0, 1.0);
    const size_t b = std::min(size_t(bins - 1), size_t(p * bins));
    ++r.bins[b].n;
    sp[b] += pred[i];
    st[b] += truth[i];
  }
  const double N = double(std::max<size_t>(pred.size(), 1));
  for (int b = 0; b < bins; ++b) {
    ReliabilityBin& x = r.bins[size_t(b)];
    if (!x.n) continue;
    x.mean_predicted = sp[size_t(b)] / double(x.n);
    x.observed = st[size_t(b)] / double(x.n);
    r.ece += double(x.n) / N * std::fabs(x.gap());
    r.mce = std::max(r.mce, std::fabs(x.gap()));
  }
  return r;
}

double roc_auc(const std::vector<double>& s, const std::vector<int>& y) {
  if (s.size() != y.size()) throw std::invalid_argument("roc_auc: scores and labels differ in length");
  std::vector<size_t> ord(s.size());
  std::iota(ord.begin(), ord.end(), size_t{0});
  std::sort(ord.begin(), ord.end(), [&](size_t i, size_t j) { return s[i] < s[j]; });
  double rank_sum = 0;
  int64_t pos = 0;
  for (size_t k = 0; k < ord.size();) {
    size_t e = k;
    while (e < ord.size() && s[ord[e]] == s[ord[k]]) ++e;
    const double mid = 0.5 * double(k + 1 + e);  // mean of ranks k+1 .. e
    for (size_t t = k; t < e; ++t)
      if (y[ord[t]]) {
        rank_sum += mid;
        ++pos;
      }
    k = e;
  }
  const int64_t neg = int64_t(s.size()) - pos;
  if (!pos || !neg) return NAN;
  return (rank_sum - double(pos) * double(pos + 1) / 2) / (double(pos) * double(neg));
}

double log_loss(const std::vector<double>& p, const std::vector<int>& y, double eps) {
  if (p.size() != y.size() || p.empty()) throw std::invalid_argument("log_loss: sizes");
  double s = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(p[i], eps, 1 - eps);
    s -= y[i] ? std::log(q) : std::log(1 - q);
  }
  return s / double(p.size());
}

}  // namespace portrait::calib
