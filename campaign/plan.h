// `portrait campaign plan`: who is reached and who is held out. From a scored user set (user
// id, optional score such as a purchase probability, optional segment) and a budget, a
// targeting rule picks the audience; a stratified randomized control group is held out of it.
//
// Design (everything is a function of the seed and the users, never of the input order):
//   1. eligible = users of the `segments` filter (all when empty), sorted by id; a duplicate id
//      is an error.
//   2. audience: top_score takes the highest scores (ties by a seeded hash of the id);
//      random and segment take users in seeded-hash order. Size = the treated budget
//      (budget_users, or floor(budget_cost / cost_per_user)) / (1 - control_fraction),
//      rounded up, at most every eligible user; budget 0 = every eligible user.
//   3. strata = segment x score bin (score_bins equal-size bins by score rank inside the
//      audience, 1 = the highest scores; bin 0 = no score).
//   4. control: inside each stratum users are ordered by the seeded hash of their id and the
//      first c_s are control, where c_s follows systematic allocation over the strata in name
//      order (c_s = floor(F_s + u) - floor(F_{s-1} + u), F = cumulative size * C / audience,
//      one seeded u in [0, 1)): the control total C is exact (audience - treated budget when
//      the budget binds, so the treated arm is the budget; else round(audience * fraction))
//      and every stratum is within one user of its share, so the arms are balanced inside
//      every stratum.
//
// Campaign directory (written atomically, campaign.json last: it seals the plan):
//   assignment.csv   user_id,arm,stratum,segment,score_bin,score,rank,planned_start
//                    (arm = treatment | control; rank = 1-based targeting order)
//   activation.csv   user_id,segment,score of the treatment arm (what the channel receives)
//   campaign.json    format "portrait-campaign-assignment", format_version, campaign_id,
//                    planned_start, seed, the plan parameters, counts per arm and stratum,
//                    the sha256 of both CSV files
// A campaign's arms are never re-drawn: planning a campaign id whose directory is sealed
// succeeds only when the new plan is byte-identical (nothing is rewritten), else it is
// refused with a DataError. A directory holding another campaign id is refused too.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace portrait::campaign {

inline constexpr const char* kAssignmentFormat = "portrait-campaign-assignment";
inline constexpr int kAssignmentFormatVersion = 1;

/// One user of the scored set.
struct ScoredUser {
  std::string id;          ///< pseudonymous user id
  double score = NAN;      ///< e.g. purchase probability; NaN = none
  std::string segment;     ///< "" = none
};

struct PlanParams {
  std::string campaign_id;              ///< mandatory: [A-Za-z0-9._-], 1-128 characters
  std::string dir;                      ///< campaign directory (mandatory)
  std::string targeting = "top_score";  ///< top_score | random | segment
  std::vector<std::string> segments;    ///< keep only these segments (empty = all);
                                        ///< targeting=segment requires it
  int64_t budget_users = 0;             ///< treated users (0 = no limit)
  double budget_cost = 0;               ///< alternative: treated = floor(cost / cost_per_user)
  double cost_per_user = 1;
  double control_fraction = 0.1;        ///< in (0, 1)
  bool stratify_segment = true;         ///< strata by segment
  int score_bins = 10;                  ///< strata by score bin (1 = no bins)
  uint64_t seed = 1;
  std::string start;                    ///< planned campaign start (ISO-8601 / unix), mandatory
  // Input (read by the command, recorded in campaign.json):
  std::string input;                    ///< scored-user file
  std::string score_name;               ///< what the score is (e.g. the head's target)
};

/// Section `campaign` (campaign.id, .dir, .start, .seed) and `campaign.plan`.
PlanParams plan_params_from_config(const cfg::Node& resolved_root);

/// One row of assignment.csv.
struct Assignment {
  std::string user_id;
  bool treated = false;
  std::string stratum;    ///< "<segment>/b<bin>" ("-" for no segment)
  std::string segment;
  int score_bin = 0;      ///< 1..score_bins, 0 = no score
  double score = NAN;
  int64_t rank = 0;       ///< 1-based targeting order
};

struct StratumCount {
  int64_t treatment = 0, control = 0;
};

struct Plan {
  std::string campaign_id, planned_start;  ///< planned_start as ISO-8601 UTC
  int64_t start_ms = 0;
  std::vector<Assignment> rows;            ///< sorted by rank
  std::map<std::string, StratumCount> strata;
  int64_t eligible = 0, treatment = 0, control = 0;
  bool has_scores = false;
};

/// The plan of `users` (pure function: no files).
Plan make_plan(const PlanParams& p, std::vector<ScoredUser> users);

/// The CSV texts of a plan, exactly as written.
std::string assignment_csv(const Plan& plan);
std::string activation_csv(const Plan& plan);

struct PlanResult {
  Plan plan;
  bool unchanged = false;  ///< the directory already held this identical plan
  std::filesystem::path dir;
};

/// make_plan + write the campaign directory (see the file comment for the refusal rules).
/// `input_sha256` is recorded in campaign.json.
PlanResult run_plan(const PlanParams& p, std::vector<ScoredUser> users, const std::string& input_sha256 = "");

/// Reads a scored-user CSV/TSV (by extension; gzip by content): columns `user_col` (required),
/// `score_col` and `segment_col` (optional: "" or absent = none). Rows with a bad score or an
/// empty id are DataErrors naming file and line.
std::vector<ScoredUser> read_scored_users(const std::filesystem::path& file, const std::string& user_col = "user_id",
                                          const std::string& score_col = "score",
                                          const std::string& segment_col = "segment");

/// A sealed campaign directory, checked on read: campaign.json's format and version, and the
/// sha256 of assignment.csv against the one it records.
struct LoadedCampaign {
  std::string campaign_id, planned_start;
  int64_t start_ms = 0;
  std::vector<Assignment> rows;
  bool has_scores = false;
  std::string json;  ///< campaign.json's text
};
LoadedCampaign load_campaign(const std::filesystem::path& dir);

/// Seeded 64-bit hash of a user id: the per-user random draw of the plan.
uint64_t user_hash(uint64_t seed, std::string_view id);

}  // namespace portrait::campaign
