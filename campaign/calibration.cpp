#include "campaign/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

#include "core/error.h"

namespace portrait::campaign {

namespace {

constexpr double kEps = 1e-12;
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

double log_loss(const std::vector<double>& p, const std::vector<int>& y) {
  if (p.size() != y.size() || p.empty()) throw std::invalid_argument("log_loss: sizes");
  double s = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(p[i], 1e-15, 1 - 1e-15);
    s -= y[i] ? std::log(q) : std::log(1 - q);
  }
  return s / double(p.size());
}

}  // namespace portrait::campaign
