// Attribute prediction (kNN, logistic head, trees on tags) against the majority class: see
// attributes.h.
#include "tags/attributes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <random>

#include "core/error.h"
#include "data/io.h"
#include "kernels/topk.h"

namespace portrait::tags {

namespace {

uint64_t fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ (seed * 0x9E3779B97F4A7C15ull);
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;  // finalizer: the low bits of FNV alone are poorly mixed
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

double macro_f1_of(const std::vector<int>& t, const std::vector<int>& p, const std::vector<size_t>& idx, int C) {
  std::vector<double> tp(size_t(C), 0), fp(size_t(C), 0), fn(size_t(C), 0);
  for (size_t i : idx) {
    if (t[i] == p[i]) ++tp[size_t(t[i])];
    else {
      ++fp[size_t(p[i])];
      ++fn[size_t(t[i])];
    }
  }
  double sum = 0;
  int classes = 0;
  for (int c = 0; c < C; ++c) {
    const size_t k = size_t(c);
    if (tp[k] + fp[k] + fn[k] == 0) continue;  // neither true nor predicted: not counted
    ++classes;
    sum += 2 * tp[k] / (2 * tp[k] + fp[k] + fn[k]);
  }
  return classes ? sum / classes : 0.0;
}

double accuracy_of(const std::vector<int>& t, const std::vector<int>& p, const std::vector<size_t>& idx) {
  double ok = 0;
  for (size_t i : idx) ok += t[i] == p[i];
  return idx.empty() ? 0.0 : ok / double(idx.size());
}

// Inner validation split of the training rows (a different hash stream than the test split).
void inner_split(const std::vector<size_t>& train, const std::vector<std::string>& ids, uint64_t seed,
                 std::vector<size_t>& fit, std::vector<size_t>& val) {
  for (size_t i : train) (held_out(ids[i], seed + 0x5eed, 0.2) ? val : fit).push_back(i);
}

// Labels of `rows` in the order of rows (predictors return per-test-row predictions).
std::vector<int> gather(const std::vector<int>& y, const std::vector<size_t>& rows) {
  std::vector<int> out;
  for (size_t i : rows) out.push_back(y[i]);
  return out;
}

double val_score(const std::vector<int>& y, const std::vector<size_t>& val, const std::vector<int>& pred, int C) {
  std::vector<size_t> idx(val.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  return macro_f1_of(gather(y, val), pred, idx, C);
}

}  // namespace

AttributeTable read_attribute_table(const std::string& path, const std::string& id_column) {
  std::ifstream in(path);
  if (!in) throw DataError("attribute table " + path + ": cannot be read");
  std::string line;
  if (!std::getline(in, line)) throw DataError("attribute table " + path + ": empty");
  const char sep = line.find('\t') != std::string::npos ? '\t' : ',';
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  data::split_csv(line, sep, f, scratch);
  std::vector<std::string> header;
  for (auto v : f) {
    std::string h(v);
    if (auto c = h.find(':'); c != std::string::npos) h.resize(c);  // RecBole "age:token"
    header.push_back(h);
  }
  auto id_it = std::find(header.begin(), header.end(), id_column);
  if (id_it == header.end()) throw DataError("attribute table " + path + ": no column '" + id_column + "'");
  const size_t id_col = size_t(id_it - header.begin());
  AttributeTable t;
  for (size_t c = 0; c < header.size(); ++c)
    if (c != id_col) t.names.push_back(header[c]);
  t.values.resize(t.names.size());
  int64_t lineno = 1;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (!data::split_csv(line, sep, f, scratch) || f.size() != header.size())
      throw DataError(fmt::format("attribute table {}:{}: {} fields, the header has {}", path, lineno, f.size(),
                                  header.size()));
    t.user_id.emplace_back(f[id_col]);
    for (size_t c = 0, a = 0; c < header.size(); ++c)
      if (c != id_col) t.values[a++].emplace_back(f[c]);
  }
  return t;
}

std::vector<std::string> band(const std::vector<std::string>& values, const std::vector<double>& edges,
                              const std::string& what) {
  std::vector<std::string> out;
  auto num = [](double e) { return fmt::format("{:g}", e); };
  for (const auto& v : values) {
    if (v.empty()) {
      out.emplace_back();
      continue;
    }
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end) throw DataError(what + ": '" + v + "' is not a number");
    size_t b = 0;
    while (b < edges.size() && x >= edges[b]) ++b;
    if (b == 0) out.push_back("<" + num(edges[0]));
    else if (b == edges.size()) out.push_back(">=" + num(edges.back()));
    else out.push_back(num(edges[b - 1]) + "-" + num(edges[b]));
  }
  return out;
}

bool held_out(const std::string& id, uint64_t seed, double fraction) {
  return double(fnv1a(id, seed) >> 11) * 0x1.0p-53 < fraction;
}

Metrics evaluate(const std::vector<int>& truth, const std::vector<int>& pred, int C, int draws, uint64_t seed) {
  Metrics m;
  std::vector<size_t> idx(truth.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  m.accuracy = accuracy_of(truth, pred, idx);
  m.macro_f1 = macro_f1_of(truth, pred, idx, C);
  std::mt19937_64 rng(seed);
  std::vector<double> acc, f1;
  std::vector<size_t> b(truth.size());
  for (int r = 0; r < draws && !truth.empty(); ++r) {
    for (auto& v : b) v = size_t(rng() % truth.size());
    acc.push_back(accuracy_of(truth, pred, b));
    f1.push_back(macro_f1_of(truth, pred, b, C));
  }
  auto pct = [](std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[size_t(std::floor(q * double(v.size() - 1)))];
  };
  m.accuracy_lo = pct(acc, 0.025);
  m.accuracy_hi = pct(acc, 0.975);
  m.macro_f1_lo = pct(f1, 0.025);
  m.macro_f1_hi = pct(f1, 0.975);
  return m;
}

Metrics paired_difference(const std::vector<int>& truth, const std::vector<int>& a, const std::vector<int>& b,
                          int C, int draws, uint64_t seed) {
  Metrics m;
  std::vector<size_t> idx(truth.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  m.accuracy = accuracy_of(truth, a, idx) - accuracy_of(truth, b, idx);
  m.macro_f1 = macro_f1_of(truth, a, idx, C) - macro_f1_of(truth, b, idx, C);
  std::mt19937_64 rng(seed);
  std::vector<double> acc, f1;
  std::vector<size_t> r(truth.size());
  for (int k = 0; k < draws && !truth.empty(); ++k) {
    for (auto& v : r) v = size_t(rng() % truth.size());
    acc.push_back(accuracy_of(truth, a, r) - accuracy_of(truth, b, r));
    f1.push_back(macro_f1_of(truth, a, r, C) - macro_f1_of(truth, b, r, C));
  }
  std::sort(acc.begin(), acc.end());
  std::sort(f1.begin(), f1.end());
  auto q = [](const std::vector<double>& v, double p) { return v.empty() ? 0.0 : v[size_t(std::floor(p * double(v.size() - 1)))]; };
  m.accuracy_lo = q(acc, 0.025);
  m.accuracy_hi = q(acc, 0.975);
  m.macro_f1_lo = q(f1, 0.025);
  m.macro_f1_hi = q(f1, 0.975);
  return m;
}

std::vector<int> predict_majority(const std::vector<int>& y, const std::vector<size_t>& train, size_t n_test, int C) {
  std::vector<int64_t> cnt(size_t(C), 0);
  for (size_t i : train) ++cnt[size_t(y[i])];
  const int best = int(std::max_element(cnt.begin(), cnt.end()) - cnt.begin());
  return std::vector<int>(n_test, best);
}

std::vector<int> predict_knn(const std::vector<float>& x, int d, const std::vector<int>& y,
                             const std::vector<size_t>& train, const std::vector<size_t>& test, int C, int k,
                             std::vector<double>* confidence) {
  std::vector<float> db, q;
  for (size_t i : train) db.insert(db.end(), x.begin() + long(i * size_t(d)), x.begin() + long((i + 1) * size_t(d)));
  for (size_t i : test) q.insert(q.end(), x.begin() + long(i * size_t(d)), x.begin() + long((i + 1) * size_t(d)));
  kernels::TopKParams tp;
  tp.k = std::min<int>(k, kernels::kTopKMax);
  tp.metric = kernels::Metric::kCosine;
  tp.num_threads = 1;
  std::vector<float> s(test.size() * size_t(tp.k));
  std::vector<int64_t> id(s.size());
  kernels::topk_cpu(q.data(), int64_t(test.size()), db.data(), int64_t(train.size()), d, tp, s.data(), id.data());
  std::vector<int> out;
  std::vector<double> votes(static_cast<size_t>(C));
  for (size_t r = 0; r < test.size(); ++r) {
    std::fill(votes.begin(), votes.end(), 0.0);
    for (int j = 0; j < tp.k; ++j) {
      const int64_t nb = id[r * size_t(tp.k) + size_t(j)];
      if (nb < 0) continue;
      // Votes weighted by 1 + cosine (in [0, 2]: a near neighbour counts more, none negative).
      votes[size_t(y[train[size_t(nb)]])] += 1.0 + double(s[r * size_t(tp.k) + size_t(j)]);
    }
    const int best = int(std::max_element(votes.begin(), votes.end()) - votes.begin());
    out.push_back(best);
    if (confidence) {
      const double sum = std::accumulate(votes.begin(), votes.end(), 0.0);
      confidence->push_back(sum > 0 ? votes[size_t(best)] / sum : 0.0);
    }
  }
  return out;
}

std::vector<int> predict_logistic(const std::vector<float>& x, int d, const std::vector<int>& y,
                                  const std::vector<size_t>& train, const std::vector<size_t>& test, int C,
                                  double l2, int iterations, std::vector<double>* confidence) {
  const size_t D = size_t(d) + 1, K = size_t(C);  // + bias
  std::vector<double> w(K * D, 0.0), g(K * D), p(K);
  const double lr = 1.0, n = double(std::max<size_t>(train.size(), 1));
  auto row = [&](size_t i, size_t j) { return j < size_t(d) ? double(x[i * size_t(d) + j]) : 1.0; };
  for (int it = 0; it < iterations; ++it) {
    std::fill(g.begin(), g.end(), 0.0);
    for (size_t i : train) {
      double mx = -1e300;
      for (size_t c = 0; c < K; ++c) {
        double z = 0;
        for (size_t j = 0; j < D; ++j) z += w[c * D + j] * row(i, j);
        p[c] = z;
        mx = std::max(mx, z);
      }
      double sum = 0;
      for (auto& v : p) sum += (v = std::exp(v - mx));
      for (size_t c = 0; c < K; ++c) {
        const double err = p[c] / sum - (size_t(y[i]) == c ? 1.0 : 0.0);
        for (size_t j = 0; j < D; ++j) g[c * D + j] += err * row(i, j);
      }
    }
    for (size_t c = 0; c < K; ++c)
      for (size_t j = 0; j < D; ++j) {
        const double reg = j < size_t(d) ? l2 * w[c * D + j] : 0.0;  // the bias is not penalised
        w[c * D + j] -= lr * (g[c * D + j] / n + reg);
      }
  }
  std::vector<int> out;
  for (size_t i : test) {
    size_t best = 0;
    double bz = -1e300;
    for (size_t c = 0; c < K; ++c) {
      double z = 0;
      for (size_t j = 0; j < D; ++j) z += w[c * D + j] * row(i, j);
      p[c] = z;
      if (z > bz) bz = z, best = c;
    }
    out.push_back(int(best));
    if (confidence) {  // the softmax probability of the predicted class
      double sum = 0;
      for (size_t c = 0; c < K; ++c) sum += std::exp(p[c] - bz);
      confidence->push_back(1.0 / sum);
    }
  }
  return out;
}

std::vector<int> predict_tree(const std::vector<Feature>& f, const std::vector<int>& y, const std::vector<size_t>& train,
                              const std::vector<size_t>& test, int C, const RuleParams& p,
                              std::vector<double>* confidence) {
  std::vector<uint32_t> rows(train.begin(), train.end());
  std::vector<std::vector<TreeLeaf>> trees;
  std::vector<char> pos(y.size(), 0);
  for (int c = 0; c < C; ++c) {
    for (size_t i = 0; i < y.size(); ++i) pos[i] = y[i] == c;
    trees.push_back(fit_binary_tree(f, pos, rows, p));
  }
  std::vector<int> out;
  for (size_t i : test) {
    int best = 0;
    double br = -1, sum = 0;
    for (int c = 0; c < C; ++c)
      for (const auto& l : trees[size_t(c)])
        if (satisfies(l.conditions, f, i)) {
          sum += l.rate;
          if (l.rate > br) br = l.rate, best = c;
          break;
        }
    out.push_back(best);
    if (confidence) confidence->push_back(sum > 0 ? br / sum : 0.0);  // its share of the leaf rates
  }
  return out;
}

AttributeResult compare_predictors(const std::string& attribute, const std::vector<std::string>& label,
                                   const std::vector<std::string>& ids, const std::vector<float>& x, int d,
                                   const std::vector<Feature>& features, double test_fraction, uint64_t seed) {
  AttributeResult r;
  r.attribute = attribute;
  std::map<std::string, int> cls;
  for (const auto& v : label)
    if (!v.empty()) cls.emplace(v, 0);
  for (auto& [v, i] : cls) {
    i = int(r.classes.size());
    r.classes.push_back(v);
  }
  const int C = int(r.classes.size());
  if (C < 2) throw DataError("attribute '" + attribute + "': fewer than two values among labelled users");
  std::vector<int> y(label.size(), -1);
  std::vector<size_t> train, test;
  for (size_t i = 0; i < label.size(); ++i) {
    if (label[i].empty()) continue;
    y[i] = cls[label[i]];
    (held_out(ids[i], seed, test_fraction) ? test : train).push_back(i);
  }
  r.train = int64_t(train.size());
  r.test = int64_t(test.size());
  const auto truth = gather(y, test);
  std::vector<size_t> fit, val;
  inner_split(train, ids, seed, fit, val);
  double best = -1;
  for (int k : {5, 10, 20, 40}) {
    const double sc = val_score(y, val, predict_knn(x, d, y, fit, val, C, k), C);
    if (sc > best) best = sc, r.knn_k = k;
  }
  best = -1;
  for (double l2 : {1e-4, 1e-3, 1e-2, 1e-1}) {
    const double sc = val_score(y, val, predict_logistic(x, d, y, fit, val, C, l2), C);
    if (sc > best) best = sc, r.logistic_l2 = l2;
  }
  RuleParams tp;
  tp.min_leaf = 10;
  const auto p_maj = predict_majority(y, train, test.size(), C), p_knn = predict_knn(x, d, y, train, test, C, r.knn_k),
             p_log = predict_logistic(x, d, y, train, test, C, r.logistic_l2),
             p_tree = predict_tree(features, y, train, test, C, tp);
  r.majority = evaluate(truth, p_maj, C);
  r.knn = evaluate(truth, p_knn, C);
  r.logistic = evaluate(truth, p_log, C);
  r.tree = evaluate(truth, p_tree, C);
  r.knn_vs_majority = paired_difference(truth, p_knn, p_maj, C);
  r.logistic_vs_majority = paired_difference(truth, p_log, p_maj, C);
  r.tree_vs_majority = paired_difference(truth, p_tree, p_maj, C);
  r.logistic_vs_knn = paired_difference(truth, p_log, p_knn, C);
  r.tree_vs_knn = paired_difference(truth, p_tree, p_knn, C);
  // Unlabelled users: the predictor with the best inner-validation macro-F1 (never the test
  // part), refitted on every labelled user.
  std::vector<size_t> labelled = train, unlabelled;
  labelled.insert(labelled.end(), test.begin(), test.end());
  for (size_t i = 0; i < label.size(); ++i)
    if (label[i].empty()) unlabelled.push_back(i);
  if (!unlabelled.empty()) {
    const double v_knn = val_score(y, val, predict_knn(x, d, y, fit, val, C, r.knn_k), C);
    const double v_log = val_score(y, val, predict_logistic(x, d, y, fit, val, C, r.logistic_l2), C);
    const double v_tree = val_score(y, val, predict_tree(features, y, fit, val, C, tp), C);
    std::vector<int> pred;
    if (v_tree >= v_knn && v_tree >= v_log) {
      r.chosen = "tree";
      pred = predict_tree(features, y, labelled, unlabelled, C, tp, &r.confidence);
    } else if (v_log >= v_knn) {
      r.chosen = "logistic";
      pred = predict_logistic(x, d, y, labelled, unlabelled, C, r.logistic_l2, 300, &r.confidence);
    } else {
      r.chosen = "knn";
      pred = predict_knn(x, d, y, labelled, unlabelled, C, r.knn_k, &r.confidence);
    }
    r.unlabelled = unlabelled;
    for (int c : pred) r.predicted.push_back(r.classes[size_t(c)]);
  }
  return r;
}

}  // namespace portrait::tags
