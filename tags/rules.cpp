// One-vs-rest CART trees over the readable tags and the rules they give: see rules.h.
#include "tags/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace portrait::tags {

namespace {

double round4(double v) { return std::round(v * 1e4) / 1e4; }

void add_numeric(std::vector<Feature>& out, const Table& t, const char* col, const char* name = nullptr) {
  if (!t.has(col)) return;
  const Column& c = t.at(col);
  Feature f;
  f.name = name ? name : col;
  if (c.kind == Column::Kind::kInt)
    for (auto v : c.i) f.x.push_back(double(v));
  else
    f.x = c.f;
  out.push_back(std::move(f));
}

void add_categorical(std::vector<Feature>& out, const Table& t, const char* col) {
  if (!t.has(col)) return;
  const Column& c = t.at(col);
  Feature f;
  f.name = col;
  f.categorical = true;
  std::map<std::string, int> idx;  // levels in sorted order: deterministic codes
  for (const auto& s : c.s) idx.emplace(s, 0);
  for (auto& [s, i] : idx) {
    i = int(f.levels.size());
    f.levels.push_back(s);
  }
  for (const auto& s : c.s) f.code.push_back(idx[s]);
  out.push_back(std::move(f));
}

struct Split {
  int feature = -1;
  double threshold = 0;  // numeric: left = x <= threshold
  int level = -1;        // categorical: left = code == level
  double impurity = 0;   // weighted Gini of the two children
};

double gini_w(double n, double pos) {  // n * Gini impurity of a node with `pos` positives
  if (n <= 0) return 0;
  const double p = pos / n;
  return n * 2.0 * p * (1.0 - p);
}

class Tree {
 public:
  Tree(const std::vector<Feature>& f, const std::vector<char>& y, const RuleParams& p) : f_(f), y_(y), p_(p) {}

  /// Leaves (their merged path conditions) of a tree grown on `rows`.
  std::vector<std::vector<Condition>> grow(std::vector<uint32_t> rows) {
    leaves_.clear();
    grow(rows, 0, {});
    return leaves_;
  }

 private:
  void grow(const std::vector<uint32_t>& rows, int depth, std::vector<Condition> path) {
    double pos = 0;
    for (auto r : rows) pos += y_[r];
    const double n = double(rows.size());
    Split best;
    best.impurity = gini_w(n, pos) - 1e-9;  // a split must strictly improve
    if (depth < p_.max_depth && pos > 0 && pos < n && rows.size() >= size_t(2 * p_.min_leaf))
      for (size_t j = 0; j < f_.size(); ++j) find_split(int(j), rows, pos, best);
    if (best.feature < 0) {
      leaves_.push_back(path);
      return;
    }
    const Feature& f = f_[size_t(best.feature)];
    std::vector<uint32_t> left, right;
    for (auto r : rows) {
      const bool l = f.categorical ? f.code[r] == best.level : f.x[r] <= best.threshold;
      (l ? left : right).push_back(r);
    }
    Condition cl, cr;
    cl.feature = cr.feature = f.name;
    cl.index = cr.index = best.feature;
    if (f.categorical) {
      cl.op = "=";
      cr.op = "!=";
      cl.level = cr.level = f.levels[size_t(best.level)];
    } else {
      cl.op = "<=";
      cr.op = ">";
      cl.threshold = cr.threshold = best.threshold;
    }
    auto pl = path, pr = path;
    pl.push_back(cl);
    pr.push_back(cr);
    grow(left, depth + 1, std::move(pl));
    grow(right, depth + 1, std::move(pr));
  }

  void find_split(int j, const std::vector<uint32_t>& rows, double pos, Split& best) const {
    const Feature& f = f_[size_t(j)];
    const double n = double(rows.size());
    const double min_leaf = double(std::max(1, p_.min_leaf));
    if (f.categorical) {
      std::vector<double> cnt(f.levels.size(), 0), cpos(f.levels.size(), 0);
      for (auto r : rows) {
        cnt[size_t(f.code[r])] += 1;
        cpos[size_t(f.code[r])] += y_[r];
      }
      for (size_t l = 0; l < cnt.size(); ++l) {
        if (cnt[l] < min_leaf || n - cnt[l] < min_leaf) continue;
        const double imp = gini_w(cnt[l], cpos[l]) + gini_w(n - cnt[l], pos - cpos[l]);
        if (imp < best.impurity) best = {j, 0, int(l), imp};
      }
      return;
    }
    std::vector<std::pair<double, char>> v;
    v.reserve(rows.size());
    for (auto r : rows) v.push_back({f.x[r], y_[r]});
    std::sort(v.begin(), v.end());
    double lpos = 0;
    for (size_t i = 0; i + 1 < v.size(); ++i) {
      lpos += v[i].second;
      if (v[i].first == v[i + 1].first) continue;
      const double nl = double(i + 1);
      if (nl < min_leaf || n - nl < min_leaf) continue;
      const double imp = gini_w(nl, lpos) + gini_w(n - nl, pos - lpos);
      if (imp < best.impurity) best = {j, v[i].first, -1, imp};
    }
  }

  const std::vector<Feature>& f_;
  const std::vector<char>& y_;
  const RuleParams& p_;
  std::vector<std::vector<Condition>> leaves_;
};

// One condition per feature and direction: the tightest bound, "=" over "!=".
std::vector<Condition> merge(const std::vector<Condition>& path) {
  std::vector<Condition> out;
  for (const auto& c : path) {
    bool done = false;
    for (auto& o : out) {
      if (o.feature != c.feature) continue;
      if (c.op == "<=" && o.op == "<=") o.threshold = std::min(o.threshold, c.threshold), done = true;
      if (c.op == ">" && o.op == ">") o.threshold = std::max(o.threshold, c.threshold), done = true;
      if (o.op == "=" && c.op == "!=") done = true;  // implied by the equality
      if (c.op == "=" && o.op == "!=") o = c, done = true;
      if (done) break;
    }
    if (!done) out.push_back(c);
  }
  // Drop "!=" conditions an "=" on the same feature implies.
  std::vector<Condition> kept;
  for (const auto& c : out) {
    bool implied = false;
    if (c.op == "!=")
      for (const auto& o : out) implied = implied || (o.feature == c.feature && o.op == "=");
    if (!implied) kept.push_back(c);
  }
  return kept;
}

std::string fmt_value(double v) { return fmt::format("{:.4g}", v); }

}  // namespace

int Feature::code_of(const std::string& level) const {
  for (size_t l = 0; l < levels.size(); ++l)
    if (levels[l] == level) return int(l);
  return -1;
}

std::vector<Feature> rule_features(const Table& t, const ActivityTable& a) {
  std::vector<Feature> out;
  for (const char* c : {"r_score", "f_score", "m_score", "purchases", "events", "monetary", "days_since_last_event",
                        "days_since_last_purchase", "price_index", "top_category_1_share", "preferred_hour"})
    add_numeric(out, t, c);
  for (const char* c : {"rfm_segment", "lifecycle", "price_sensitivity", "top_category_1", "preferred_weekday"})
    add_categorical(out, t, c);
  for (size_t c = 2; c < a.categories.size(); ++c) {  // 0 <pad>, 1 <oov>
    Feature f;
    f.name = "share of " + a.categories[c];
    f.x.reserve(a.users.size());
    for (const auto& u : a.users) {
      int64_t n = 0;
      auto it = std::lower_bound(u.category_events.begin(), u.category_events.end(), std::pair<int32_t, int64_t>{int32_t(c), 0});
      if (it != u.category_events.end() && it->first == int32_t(c)) n = it->second;
      f.x.push_back(u.events ? round4(double(n) / double(u.events)) : 0.0);
    }
    out.push_back(std::move(f));
  }
  return out;
}

bool satisfies(const std::vector<Condition>& cs, const std::vector<Feature>& fs, size_t i) {
  for (const auto& c : cs) {
    const Feature& f = fs[size_t(c.index)];
    if (f.categorical) {
      if ((f.code[i] == f.code_of(c.level)) != (c.op == "=")) return false;
    } else if ((f.x[i] <= c.threshold) != (c.op == "<=")) {
      return false;
    }
  }
  return true;
}

std::vector<TreeLeaf> fit_binary_tree(const std::vector<Feature>& features, const std::vector<char>& y,
                                      const std::vector<uint32_t>& rows, const RuleParams& p) {
  Tree tree(features, y, p);
  std::vector<TreeLeaf> out;
  for (const auto& path : tree.grow(rows)) {
    TreeLeaf l;
    l.conditions = merge(path);
    for (auto i : rows)
      if (satisfies(l.conditions, features, i)) {
        ++l.users;
        l.positives += y[i];
      }
    l.rate = l.users ? double(l.positives) / double(l.users) : 0.0;
    out.push_back(std::move(l));
  }
  return out;
}

std::string Condition::text() const {
  if (op == "=" || op == "!=") return fmt::format("{} {} {}", feature, op, level);
  return fmt::format("{} {} {}", feature, op, fmt_value(threshold));
}

std::string Rule::text() const {
  std::string s;
  for (const auto& c : conditions) s += (s.empty() ? "" : " and ") + c.text();
  return (s.empty() ? std::string("every user") : s) + fmt::format(" -> segment {}", segment);
}

std::vector<SegmentRules> learn_segment_rules(const std::vector<Feature>& features, const std::vector<int>& label,
                                              int k, const RuleParams& p) {
  std::vector<uint32_t> rows;
  std::vector<int64_t> size(size_t(std::max(k, 0)), 0);
  for (size_t i = 0; i < label.size(); ++i)
    if (label[i] >= 0 && label[i] < k) {
      rows.push_back(uint32_t(i));
      ++size[size_t(label[i])];
    }
  // The trees learn from every step-th labelled user; the rules' figures count all of them.
  std::vector<uint32_t> learn;
  const size_t step = p.max_users > 0 ? (rows.size() + size_t(p.max_users) - 1) / size_t(p.max_users) : 1;
  for (size_t j = 0; j < rows.size(); j += std::max<size_t>(step, 1)) learn.push_back(rows[j]);
  std::vector<SegmentRules> out;
  std::vector<char> y(label.size(), 0);
  for (int s = 0; s < k; ++s) {
    SegmentRules sr;
    sr.segment = s;
    sr.size = size[size_t(s)];
    if (sr.size > 0) {
      for (size_t i = 0; i < label.size(); ++i) y[i] = label[i] == s;
      std::vector<Rule> cand;
      for (auto& leaf : fit_binary_tree(features, y, learn, p)) {
        Rule r;
        r.segment = s;
        r.conditions = std::move(leaf.conditions);
        if (learn.size() == rows.size()) {
          r.users = leaf.users;
          r.hits = leaf.positives;
        } else {
          for (auto i : rows)
            if (satisfies(r.conditions, features, i)) {
              ++r.users;
              r.hits += y[i];
            }
        }
        if (r.hits == 0) continue;
        r.precision = double(r.hits) / double(r.users);
        r.coverage = double(r.hits) / double(sr.size);
        cand.push_back(std::move(r));
      }
      std::stable_sort(cand.begin(), cand.end(), [](const Rule& a, const Rule& b) {
        const double qa = a.precision * a.coverage, qb = b.precision * b.coverage;
        return qa != qb ? qa > qb : a.precision > b.precision;
      });
      if (cand.size() > size_t(p.top_rules)) cand.resize(size_t(p.top_rules));
      sr.rules = std::move(cand);
    }
    out.push_back(std::move(sr));
  }
  return out;
}

nlohmann::json rules_json(const std::vector<SegmentRules>& r, const RuleParams& p) {
  nlohmann::json j;
  j["format"] = "portrait-segment-rules";
  j["format_version"] = 1;
  j["params"] = {{"max_depth", p.max_depth}, {"min_leaf", p.min_leaf}, {"top_rules", p.top_rules},
                 {"max_users", p.max_users}, {"min_segment_size", p.min_segment_size},
                 {"method", "one-vs-rest CART (Gini) per segment on the readable tags"}};
  j["segments"] = nlohmann::json::array();
  for (const auto& s : r) {
    if (s.size < p.min_segment_size) {
      j["segments"].push_back({{"segment", s.segment}, {"suppressed", true}});
      continue;
    }
    nlohmann::json js{{"segment", s.segment}, {"suppressed", false}, {"name", s.name}, {"size", s.size}};
    js["rules"] = nlohmann::json::array();
    for (const auto& rule : s.rules) {
      if (rule.users < p.min_segment_size) continue;
      nlohmann::json conds = nlohmann::json::array();
      for (const auto& c : rule.conditions) {
        nlohmann::json jc{{"feature", c.feature}, {"op", c.op}};
        if (c.op == "=" || c.op == "!=") jc["value"] = c.level;
        else jc["value"] = c.threshold;
        conds.push_back(jc);
      }
      js["rules"].push_back({{"text", rule.text()}, {"conditions", conds}, {"users", rule.users},
                             {"hits", rule.hits}, {"precision", rule.precision}, {"coverage", rule.coverage}});
    }
    j["segments"].push_back(js);
  }
  return j;
}

}  // namespace portrait::tags
