// The configuration tree: an ordered, typed YAML-like value (null, bool, int, float, string,
// list, map) that remembers where each value came from (file:line) so errors can point at it.
// Composition (compose.h) builds one of these from YAML files, the defaults list and the
// command-line overrides; interpolation (interpolate.h) resolves `${...}` in it; typed
// structs read it through cfg::Section (section.h).
//
// Conventions, as in OmegaConf: the string "???" marks a mandatory value still missing;
// strings containing "${" are interpolations until resolved.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portrait::cfg {

/// Where a value was defined: a YAML file and 1-based line, or "<command line>".
struct Mark {
  std::string file;
  int line = 0;  ///< 0 when unknown
  std::string str() const;  ///< "configs/train.yaml:12" or "configs/train.yaml" or ""
};

class Node {
 public:
  enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap };
  using Entry = std::pair<std::string, Node>;

  Node() = default;  ///< null
  static Node null() { return Node(); }
  static Node boolean(bool v);
  static Node integer(int64_t v);
  static Node floating(double v);
  static Node string(std::string v);
  static Node list();
  static Node map();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_map() const { return kind_ == Kind::kMap; }
  bool is_scalar() const { return !is_list() && !is_map(); }
  /// The mandatory-value marker "???".
  bool is_missing() const { return kind_ == Kind::kString && str_ == "???"; }
  /// A string holding an unescaped "${".
  bool is_interpolation() const;

  // Scalar access. These throw std::logic_error on a kind mismatch; user-facing code reads
  // through cfg::Section, which produces messages naming the key.
  bool as_bool() const;
  int64_t as_int() const;
  double as_double() const;  ///< ints convert
  const std::string& as_string() const;

  // Maps (insertion order is kept, as in YAML and OmegaConf).
  const std::vector<Entry>& items() const { return map_; }
  std::vector<Entry>& items() { return map_; }
  const Node* find(std::string_view key) const;
  Node* find(std::string_view key);
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  /// Inserts a null entry if absent. The node must be a map (a null node becomes one).
  Node& operator[](std::string_view key);
  bool erase(std::string_view key);
  /// The YAML type of a map key that is not a string: OmegaConf keeps `1: one` an int key
  /// (and `yes: x` a bool key), and `--cfg job` must print it back unquoted. Keys are
  /// stored as their text ("1", "true"); kString for ordinary keys.
  Kind key_kind(std::string_view key) const;
  void set_key_kind(std::string_view key, Kind kind);

  // Lists.
  const std::vector<Node>& elements() const { return list_; }
  std::vector<Node>& elements() { return list_; }
  void push_back(Node n);

  size_t size() const { return is_map() ? map_.size() : list_.size(); }

  /// Deep structural equality (kind and value; marks ignored; 1 == 1.0 is false).
  bool operator==(const Node& o) const;

  /// Scalar rendered for messages and string interpolation: true, 3, 0.001, inf, null, text.
  std::string scalar_text() const;
  /// Human description of the kind for messages ("int", "str", "dict", ...).
  const char* kind_name() const;

  Mark mark;

 private:
  Kind kind_ = Kind::kNull;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0.0;
  std::string str_;
  std::vector<Node> list_;
  std::vector<Entry> map_;
  std::vector<std::pair<std::string, Kind>> key_kinds_;  ///< non-string keys only (rare)
};

/// Splits "a.b.0.c" into {"a","b","0","c"}. Empty input gives {}.
std::vector<std::string> split_path(std::string_view dotted);
std::string join_path(const std::vector<std::string>& parts, size_t n = SIZE_MAX);

/// Follows a dotted path through maps and lists (integer components index lists).
/// Returns nullptr when any component is absent.
const Node* find_path(const Node& root, std::string_view dotted);
Node* find_path(Node& root, std::string_view dotted);

/// Deep merge: maps merge key by key (recursively), everything else in `src` replaces
/// what `dst` holds. Marks travel with the values.
void merge_into(Node& dst, const Node& src);

}  // namespace portrait::cfg
