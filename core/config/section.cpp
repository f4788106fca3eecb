#include "core/config/section.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "core/config/secrets.h"
#include "core/error.h"

namespace portrait::cfg {

namespace {
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (best.empty()) return "";
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

Section::Section(const Node& root, std::string path) : path_(std::move(path)) {
  const Node* n = path_.empty() ? &root : find_path(root, path_);
  if (n && n->is_map()) {
    node_ = n;
  } else if (n && !n->is_null()) {
    throw ConfigError(fmt::format("config key '{}' must be a dict, got {} '{}'{}", path_,
                                  n->kind_name(), is_secret_value(path_, n->scalar_text()) ? std::string(kRedacted) : n->scalar_text(),
                                  n->mark.file.empty() ? "" : " (" + n->mark.str() + ")"));
  } else {
    node_ = nullptr;
  }
}

std::string Section::full_key(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

bool Section::has(const std::string& key) const { return node_ && node_->find(key); }
void Section::ignore(const std::string& key) { read_.insert(key); }

const Node* Section::get(const std::string& key) {
  read_.insert(key);
  if (!node_) return nullptr;
  const Node* v = node_->find(key);
  if (v && v->is_missing()) {
    throw ConfigError(fmt::format(
        "Missing mandatory value: {}\n    full_key: {}\n    object_type=dict\n"
        "Set it on the command line, e.g. {}=<value>",
        full_key(key), full_key(key), full_key(key)));
  }
  if (v && v->is_interpolation()) {
    throw std::logic_error("config section read before interpolations were resolved: " +
                           full_key(key));
  }
  return v;
}

void Section::fail(const std::string& key, const Node& v, const std::string& why) const {
  std::string where = v.mark.file.empty() ? "" : " (" + v.mark.str() + ")";
  std::string text = !v.is_scalar() ? v.kind_name()
                     : is_secret_value(full_key(key), v.scalar_text()) ? std::string(kRedacted)
                                                                       : v.scalar_text();
  throw ConfigError(fmt::format("config key '{}' = {}{} {}", full_key(key), text, where, why));
}

void Section::read(const std::string& key, bool& out) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_bool()) fail(key, *v, "must be a bool (true or false)");
  out = v->as_bool();
}

void Section::read(const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_int()) fail(key, *v, fmt::format("must be an integer, got {}", v->kind_name()));
  int64_t x = v->as_int();
  if (x < lo || x > hi) {
    std::string range = hi == std::numeric_limits<int64_t>::max() ? fmt::format(">= {}", lo)
                                                                   : fmt::format("[{}, {}]", lo, hi);
    fail(key, *v, "is out of range; allowed: " + range);
  }
  out = x;
}

void Section::read(const std::string& key, int& out, int lo, int hi) {
  int64_t x = out;
  read(key, x, lo, hi);
  out = static_cast<int>(x);
}

void Section::read(const std::string& key, double& out, double lo, double hi) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_number()) fail(key, *v, fmt::format("must be a number, got {}", v->kind_name()));
  double x = v->as_double();
  if (std::isnan(x) || x < lo || x > hi) {
    std::string range = std::isinf(hi) ? fmt::format(">= {}", lo) : fmt::format("[{}, {}]", lo, hi);
    fail(key, *v, "is out of range; allowed: " + range);
  }
  out = x;
}

void Section::read(const std::string& key, float& out, double lo, double hi) {
  double x = out;
  read(key, x, lo, hi);
  out = static_cast<float>(x);
}

void Section::read(const std::string& key, std::string& out) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_scalar()) fail(key, *v, "must be a string");
  out = v->scalar_text();
}

void Section::read(const std::string& key, std::vector<std::string>& out) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_list()) fail(key, *v, "must be a list");
  out.clear();
  for (const auto& e : v->elements()) {
    if (!e.is_scalar()) fail(key, *v, "must be a list of strings");
    out.push_back(e.scalar_text());
  }
}

void Section::read(const std::string& key, std::vector<int64_t>& out) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_list()) fail(key, *v, "must be a list");
  out.clear();
  for (const auto& e : v->elements()) {
    if (!e.is_int()) fail(key, *v, "must be a list of integers");
    out.push_back(e.as_int());
  }
}

void Section::read(const std::string& key, std::vector<double>& out) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_list()) fail(key, *v, "must be a list");
  out.clear();
  for (const auto& e : v->elements()) {
    if (!e.is_number()) fail(key, *v, "must be a list of numbers");
    out.push_back(e.as_double());
  }
}

void Section::read(const std::string& key, std::map<std::string, std::string>& out) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  if (!v->is_map()) fail(key, *v, "must be a dict of strings");
  out.clear();
  for (const auto& [k, e] : v->items()) {
    if (!e.is_scalar() || e.is_null()) fail(key, *v, "must be a dict of strings");
    out[k] = e.scalar_text();
  }
}

void Section::read_enum(const std::string& key, std::string& out,
                        const std::vector<std::string>& allowed) {
  const Node* v = get(key);
  if (!v || v->is_null()) return;
  std::string s = v->is_scalar() ? v->scalar_text() : "";
  if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    std::string hint = did_you_mean(s, allowed);
    fail(key, *v, "is not allowed; allowed values: " + list +
                      (hint.empty() ? "" : fmt::format(". Did you mean '{}'?", hint)));
  }
  out = s;
}

Section Section::sub(const std::string& key) {
  read_.insert(key);
  static const Node kEmpty;
  const Node* n = node_ ? node_->find(key) : nullptr;
  if (!n) return Section(kEmpty, "");  // all defaults
  Section s(*n, "");
  s.path_ = full_key(key);
  return s;
}

std::vector<std::string> Section::keys() const {
  std::vector<std::string> out;
  if (node_)
    for (const auto& [k, v] : node_->items()) out.push_back(k);
  return out;
}

const Node* Section::raw(const std::string& key) { return get(key); }

void Section::finish() const {
  if (!node_) return;
  std::vector<std::string> known(read_.begin(), read_.end());
  for (const auto& [k, v] : node_->items()) {
    if (read_.count(k)) continue;
    std::string hint = did_you_mean(k, known);
    std::string where = v.mark.file.empty() ? "" : " (" + v.mark.str() + ")";
    std::string known_list;
    for (const auto& kk : known) known_list += (known_list.empty() ? "" : ", ") + kk;
    throw ConfigError(fmt::format("Unknown config key '{}'{}.{} Known keys in '{}': {}",
                                  full_key(k), where,
                                  hint.empty() ? "" : fmt::format(" Did you mean '{}'?", full_key(hint)),
                                  path_.empty() ? "<root>" : path_, known_list));
  }
}

}  // namespace portrait::cfg
