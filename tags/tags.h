// `portrait tags`: one row of readable labels per user (pseudonymous id), from the shards'
// `latest` split and optionally a `portrait segment` / `portrait score` output.
//
// Columns (Table, see table.h; every value defined for every user, also without purchases):
//   user_id                      pseudonymous id from the shards
//   events, purchases            counts of all events / purchase events among the last
//                                prep.seq_len events per user that the shards keep
//   history_truncated            1 when the user has seq_len events (older ones were cut)
//   monetary                     M's value: estimated spend (sum of the purchases' price-bucket
//                                midpoints, activity.h bucket_price) when the data has prices,
//                                else the purchase count (attribute monetary_source says which)
//   days_since_last_event, days_since_first_event, days_since_last_purchase (-1 = never)
//                                days before the data's end (last event + 1 ms)
//   r_score, f_score, m_score    1..5 quintiles among buyers (rfm.h); users without purchases
//                                get 1, 1, 1
//   rfm_segment                  one of the 11 names of rfm.h's grid (non-buyers: Lost)
//   lifecycle                    new | active | lapsing | churned (params below; never `new`
//                                with a truncated history)
//   price_index                  mean percentile (mid-rank, 0 = cheapest, 1 = dearest) of the
//                                user's price buckets within each category's distribution over
//                                all users; -1 without priced events
//   price_sensitivity            high (index < price_low) | medium | low (index > price_high) |
//                                unknown
//   top_category_<k>, top_category_<k>_share   the k-th category by events and its share of
//                                the user's events ("" and 0 when the user has fewer)
//   preferred_weekday (Mon..Sun), preferred_weekday_share, preferred_hour (0..23),
//   preferred_hour_share         the modal weekday / hour (ties: the earliest)
//   with a segments file: segment (-1 = not in the file), segment_name
//   with a scores file:   next_category (the head with the highest probability),
//                         next_category_probability (that head's probability, as scored)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/node.h"
#include "tags/activity.h"
#include "tags/table.h"

namespace portrait::tags {

inline constexpr const char* kTagsFormat = "portrait-tags";
inline constexpr int64_t kTagsFormatVersion = 1;

struct RuleParams {
  bool enabled = true;   ///< write segment_rules.json when a segments file is given
  int max_depth = 4;     ///< tree depth (<= 4: rules stay readable)
  int min_leaf = 20;     ///< fewest users in a leaf
  int top_rules = 3;     ///< rules listed per segment
  /// Users the trees learn from (every k-th row above it: the split search sorts per node, so
  /// millions of users would take minutes); precision and coverage always count every user.
  int64_t max_users = 200000;
  /// k-anonymity floor of segment_rules.json: a smaller segment is published as suppressed
  /// (no name, size, rules or shares), a rule selecting fewer users is left out.
  int64_t min_segment_size = 50;
};

struct TagParams {
  std::string shards;                  ///< prep output directory (mandatory)
  std::string segments;                ///< `portrait segment` output (dir or segments.h5); "" = none
  std::string scores;                  ///< `portrait score` output (dir or scores.h5); "" = none
  std::string output_dir;              ///< tags.h5, tags.csv (+ segment_rules.json) (mandatory)
  int top_categories = 3;              ///< top_category_<k> columns
  double utc_offset_hours = 0;         ///< local time of preferred weekday / hour (e.g. 8 for China)
  std::string purchase_event = "purchase";
  std::string price_events = "all";    ///< all | purchase: the events price sensitivity reads
  double new_days = 30;                ///< lifecycle new: first event at most this many days before the end
  double active_days = 30;             ///< active: last event at most this many days before the end
  double churn_days = 90;              ///< lapsing up to this many days since the last event, churned beyond
  double price_low = 0.4;              ///< price_index below: high price sensitivity
  double price_high = 0.6;             ///< price_index above: low price sensitivity
  RuleParams rules;
  // Set by the caller:
  std::string config_yaml;
};

/// Section `tags`; rejects unknown keys and inconsistent thresholds.
TagParams tag_params_from_config(const cfg::Node& resolved_root);

ActivityOptions activity_options(const TagParams& p);

/// The tag table of every user of `a` (columns of the file comment, without segment / score).
Table compute_tags(const ActivityTable& a, const TagParams& p);

/// Lifecycle stage of a user (see TagParams).
std::string lifecycle_stage(const UserActivity& u, int64_t end_ms, const TagParams& p);

/// Automatic segment names: the segment's two categories of highest lift (share of the
/// segment's events over the share of all events, among categories with >= 10% of the
/// segment's events; the top share when none) and its most common RFM name, e.g.
/// "Books & Music · Champions". `segment[i]` is user i's segment (-1 = none), k segments.
/// Duplicate names get " (segment <id>)" appended; a segment without users "segment <id>".
std::vector<std::string> segment_names(const ActivityTable& a, const std::vector<int>& segment, int k,
                                       const std::vector<std::string>& rfm_segment);

/// Adds `segment` and `segment_name` from a segments file (users matched by id).
void attach_segments(Table& t, const ActivityTable& a, const std::string& segments_path);
/// Adds `next_category` and `next_category_probability` from a scores file.
void attach_scores(Table& t, const std::string& scores_path);

struct TagSummary {
  int64_t users = 0, buyers = 0;
  std::string h5, csv, rules;          ///< written files ("" = not written)
  std::vector<int64_t> rfm_counts;     ///< users per kRfmNames entry
  double wall_s = 0;
};

TagSummary run_tags(const TagParams& p);

}  // namespace portrait::tags
