// Typed, validated reads from a resolved config map into plain C++ params structs.
// Defaults live in the structs; a key absent from the config leaves the default untouched.
// finish() rejects keys nobody read, so a typo in a YAML file is an error, not a silent no-op.
//
//   TrainParams p;                                  // struct with documented defaults
//   cfg::Section s(root, "train");                  // root = resolved composed config
//   s.read("lr", p.lr, 0.0, 10.0);                  // range-checked
//   s.read("steps", p.steps, int64_t{1});           // >= 1
//   s.read_enum("schedule", p.schedule, {"cosine", "linear", "constant"});
//   s.finish();
//
// Errors are ConfigError naming the full key, the value, where it was defined and what is
// allowed, e.g.  "config key 'train.lr' = -1 (configs/train/default.yaml:3) is out of range
// [0, 10]".
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace portrait::cfg {

class Section {
 public:
  /// `root` is the whole resolved config; `path` the dotted key of the section ("" = root).
  /// A missing or null section reads as empty (all defaults).
  Section(const Node& root, std::string path);

  bool has(const std::string& key) const;
  /// Marks a key as read without reading it (e.g. handled elsewhere).
  void ignore(const std::string& key);

  void read(const std::string& key, bool& out);
  void read(const std::string& key, int64_t& out,
            int64_t lo = std::numeric_limits<int64_t>::min(),
            int64_t hi = std::numeric_limits<int64_t>::max());
  void read(const std::string& key, int& out, int lo = std::numeric_limits<int>::min(),
            int hi = std::numeric_limits<int>::max());
  void read(const std::string& key, double& out,
            double lo = -std::numeric_limits<double>::infinity(),
            double hi = std::numeric_limits<double>::infinity());
  void read(const std::string& key, float& out,
            double lo = -std::numeric_limits<double>::infinity(),
            double hi = std::numeric_limits<double>::infinity());
  /// Scalars of any kind are accepted as text (3 -> "3"); null leaves the default.
  void read(const std::string& key, std::string& out);
  void read(const std::string& key, std::vector<std::string>& out);
  void read(const std::string& key, std::vector<int64_t>& out);
  void read(const std::string& key, std::vector<double>& out);
  /// String -> string map (e.g. column renames, event-type mappings).
  void read(const std::string& key, std::map<std::string, std::string>& out);
  /// Value must be one of `allowed`.
  void read_enum(const std::string& key, std::string& out, const std::vector<std::string>& allowed);

  /// A nested section (shares the consumed-key bookkeeping for its own keys).
  Section sub(const std::string& key);
  /// Keys present in this section (for free-form maps).
  std::vector<std::string> keys() const;
  /// The raw node of a key (nullptr if absent); marks it read.
  const Node* raw(const std::string& key);

  /// Throws ConfigError listing keys present in the config that were never read, with a
  /// did-you-mean suggestion from the keys that were read.
  void finish() const;

  const std::string& path() const { return path_; }
  std::string full_key(const std::string& key) const;

 private:
  const Node* get(const std::string& key);  // marks read; throws on "???"
  [[noreturn]] void fail(const std::string& key, const Node& v, const std::string& why) const;

  const Node* node_;  // map or nullptr
  std::string path_;
  std::set<std::string> read_;
};

/// The closest candidate by edit distance, or "" if none is close enough (distance <= 2 or
/// <= a third of the length). Used for did-you-mean hints everywhere.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace portrait::cfg
