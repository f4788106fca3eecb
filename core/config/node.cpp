#include "core/config/node.h"

#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

namespace portrait::cfg {

std::string Mark::str() const {
  if (file.empty()) return "";
  if (line <= 0) return file;
  return file + ":" + std::to_string(line);
}

Node Node::boolean(bool v) {
  Node n;
  n.kind_ = Kind::kBool;
  n.b_ = v;
  return n;
}
Node Node::integer(int64_t v) {
  Node n;
  n.kind_ = Kind::kInt;
  n.i_ = v;
  return n;
}
Node Node::floating(double v) {
  Node n;
  n.kind_ = Kind::kFloat;
  n.d_ = v;
  return n;
}
Node Node::string(std::string v) {
  Node n;
  n.kind_ = Kind::kString;
  n.str_ = std::move(v);
  return n;
}
Node Node::list() {
  Node n;
  n.kind_ = Kind::kList;
  return n;
}
Node Node::map() {
  Node n;
  n.kind_ = Kind::kMap;
  return n;
}

bool Node::is_interpolation() const {
  if (kind_ != Kind::kString) return false;
  for (size_t i = 0; i + 1 < str_.size(); ++i) {
    if (str_[i] == '\\') {
      ++i;  // escaped character
      continue;
    }
    if (str_[i] == '$' && str_[i + 1] == '{') return true;
  }
  return false;
}

bool Node::as_bool() const {
  if (kind_ != Kind::kBool) throw std::logic_error(std::string("not a bool: ") + kind_name());
  return b_;
}
int64_t Node::as_int() const {
  if (kind_ != Kind::kInt) throw std::logic_error(std::string("not an int: ") + kind_name());
  return i_;
}
double Node::as_double() const {
  if (kind_ == Kind::kInt) return static_cast<double>(i_);
  if (kind_ != Kind::kFloat) throw std::logic_error(std::string("not a float: ") + kind_name());
  return d_;
}
const std::string& Node::as_string() const {
  if (kind_ != Kind::kString) throw std::logic_error(std::string("not a string: ") + kind_name());
  return str_;
}

const Node* Node::find(std::string_view key) const {
  if (kind_ != Kind::kMap) return nullptr;
  for (const auto& [k, v] : map_)
    if (k == key) return &v;
  return nullptr;
}
Node* Node::find(std::string_view key) {
  return const_cast<Node*>(static_cast<const Node*>(this)->find(key));
}

Node& Node::operator[](std::string_view key) {
  if (kind_ == Kind::kNull) kind_ = Kind::kMap;
  if (kind_ != Kind::kMap) throw std::logic_error("operator[] on a non-map config node");
  if (Node* n = find(key)) return *n;
  map_.emplace_back(std::string(key), Node());
  return map_.back().second;
}

Node::Kind Node::key_kind(std::string_view key) const {
  for (const auto& [k, kind] : key_kinds_)
    if (k == key) return kind;
  return Kind::kString;
}

void Node::set_key_kind(std::string_view key, Kind kind) {
  for (auto it = key_kinds_.begin(); it != key_kinds_.end(); ++it) {
    if (it->first == key) {
      if (kind == Kind::kString) key_kinds_.erase(it);
      else it->second = kind;
      return;
    }
  }
  if (kind != Kind::kString) key_kinds_.emplace_back(std::string(key), kind);
}

bool Node::erase(std::string_view key) {
  set_key_kind(key, Kind::kString);
  for (auto it = map_.begin(); it != map_.end(); ++it) {
    if (it->first == key) {
      map_.erase(it);
      return true;
    }
  }
  return false;
}

void Node::push_back(Node n) {
  if (kind_ == Kind::kNull) kind_ = Kind::kList;
  if (kind_ != Kind::kList) throw std::logic_error("push_back on a non-list config node");
  list_.push_back(std::move(n));
}

bool Node::operator==(const Node& o) const {
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kNull: return true;
    case Kind::kBool: return b_ == o.b_;
    case Kind::kInt: return i_ == o.i_;
    case Kind::kFloat: return d_ == o.d_ || (std::isnan(d_) && std::isnan(o.d_));
    case Kind::kString: return str_ == o.str_;
    case Kind::kList: return list_ == o.list_;
    case Kind::kMap: return map_ == o.map_;
  }
  return false;
}

std::string Node::scalar_text() const {
  switch (kind_) {
    case Kind::kNull: return "null";
    case Kind::kBool: return b_ ? "true" : "false";
    case Kind::kInt: return std::to_string(i_);
    case Kind::kFloat: {
      if (std::isnan(d_)) return "nan";
      if (std::isinf(d_)) return d_ > 0 ? "inf" : "-inf";
      std::string s = fmt::format("{}", d_);  // shortest round-trip
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
    case Kind::kString: return str_;
    case Kind::kList: return "[...]";
    case Kind::kMap: return "{...}";
  }
  return "";
}

const char* Node::kind_name() const {
  switch (kind_) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kMap: return "dict";
  }
  return "?";
}

std::vector<std::string> split_path(std::string_view dotted) {
  std::vector<std::string> out;
  if (dotted.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    out.emplace_back(dotted.substr(start, dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

std::string join_path(const std::vector<std::string>& parts, size_t n) {
  std::string s;
  for (size_t i = 0; i < parts.size() && i < n; ++i) {
    if (i) s += '.';
    s += parts[i];
  }
  return s;
}

namespace {
bool parse_index(const std::string& s, size_t& idx) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  idx = std::stoull(s);
  return true;
}
}  // namespace

const Node* find_path(const Node& root, std::string_view dotted) {
  const Node* cur = &root;
  for (const auto& part : split_path(dotted)) {
    if (cur->is_map()) {
      cur = cur->find(part);
    } else if (cur->is_list()) {
      size_t idx;
      if (!parse_index(part, idx) || idx >= cur->elements().size()) return nullptr;
      cur = &cur->elements()[idx];
    } else {
      return nullptr;
    }
    if (!cur) return nullptr;
  }
  return cur;
}

Node* find_path(Node& root, std::string_view dotted) {
  return const_cast<Node*>(find_path(static_cast<const Node&>(root), dotted));
}

void merge_into(Node& dst, const Node& src) {
  if (dst.is_map() && src.is_map()) {
    for (const auto& [k, v] : src.items()) {
      Node* d = dst.find(k);
      if (d && d->is_map() && v.is_map()) {
        merge_into(*d, v);
      } else if (d) {
        *d = v;
      } else {
        dst[k] = v;
      }
      if (Node::Kind kk = src.key_kind(k); kk != Node::Kind::kString) dst.set_key_kind(k, kk);
    }
    return;
  }
  dst = src;
}

}  // namespace portrait::cfg
