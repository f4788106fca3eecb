// Segment rules: why a user is in a segment, in terms of the readable tags.
//
// For every segment a shallow decision tree (CART: binary splits minimising Gini impurity,
// depth <= 4, at least min_leaf users per leaf) learns "in this segment or not" from the tags
// (one-vs-rest: each segment gets its own rules however many segments there are, where one
// multi-class tree of depth 4 has at most 16 leaves to share among them). Every leaf is a rule
// (the conjunction of the splits on its path, merged per feature); a segment's rules are its
// leaves ordered by precision x coverage, e.g.
//   "share of Electronics > 0.31 and price_sensitivity = high -> segment 4, precision 0.91,
//    covers 62%".
// Deterministic: candidate splits are tried in a fixed order and only a strictly better one
// replaces the best so far.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tags/activity.h"
#include "tags/table.h"
#include "tags/tags.h"

namespace portrait::tags {

/// One input of the trees: a numeric value or a categorical level per user.
struct Feature {
  std::string name;
  bool categorical = false;
  std::vector<double> x;             ///< numeric: value per user
  std::vector<int> code;             ///< categorical: level index per user
  std::vector<std::string> levels;   ///< categorical: level names
  /// Index of a level name (-1 = none).
  int code_of(const std::string& level) const;
};

/// The readable tags as tree features: RFM scores and name, lifecycle, price index and
/// sensitivity, counts and recencies, the top category, the preferred weekday and hour, and
/// the user's share of events in every category ("share of <category>").
std::vector<Feature> rule_features(const Table& t, const ActivityTable& a);

struct Condition {
  std::string feature;
  int index = -1;        ///< the feature's position in the features the tree was fitted on
  std::string op;        ///< "<=", ">" (numeric) | "=", "!=" (categorical)
  double threshold = 0;  ///< numeric
  std::string level;     ///< categorical
  std::string text() const;
};

struct Rule {
  int segment = 0;
  std::vector<Condition> conditions;  ///< empty: every user
  int64_t users = 0;                  ///< users the rule selects
  int64_t hits = 0;                   ///< of them in the segment
  double precision = 0;               ///< hits / users
  double coverage = 0;                ///< hits / segment size
  std::string text() const;           ///< "a and b -> segment s"
};

struct SegmentRules {
  int segment = 0;
  int64_t size = 0;
  std::string name;
  std::vector<Rule> rules;            ///< best first, at most top_rules
};

/// A fitted binary tree: its leaves (merged path conditions: a partition of the users) with
/// the share of positives among the training users that reached them.
struct TreeLeaf {
  std::vector<Condition> conditions;
  int64_t users = 0, positives = 0;
  double rate = 0;                   ///< positives / users
};
std::vector<TreeLeaf> fit_binary_tree(const std::vector<Feature>& features, const std::vector<char>& y,
                                      const std::vector<uint32_t>& rows, const RuleParams& p);
/// True when user i satisfies every condition.
bool satisfies(const std::vector<Condition>& cs, const std::vector<Feature>& features, size_t i);

/// Learns the rules of segments 0..k-1 from `label` (per user, -1 = no segment: ignored).
std::vector<SegmentRules> learn_segment_rules(const std::vector<Feature>& features, const std::vector<int>& label,
                                              int k, const RuleParams& p);

/// {"format": "portrait-segment-rules", "format_version": 1, "params": ..., "segments": [...]};
/// segments below p.min_segment_size users appear as {"segment": s, "suppressed": true} only,
/// and rules selecting fewer than that many users are left out (k-anonymity).
nlohmann::json rules_json(const std::vector<SegmentRules>& r, const RuleParams& p);

}  // namespace portrait::tags
