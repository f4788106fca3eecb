// `portrait campaign evaluate`: did the campaign work? Reads a sealed campaign directory
// (campaign/plan.h) and the event logs written since the campaign started, with the `data`
// group's mapping and prep's row validation (data/rows.h), and measures per arm and per
// segment / stratum:
//   reach          users in the arm (and `active`: with any event in the window)
//   participation  share of users with a click in the window
//   conversion     share of users with a purchase in the window (the attribution window:
//                  [start, start + attribution_days), start = the planned start unless
//                  campaign.evaluate.start overrides it)
//   revenue/user   sum of purchase prices in the window / users (when prices exist: the row's
//                  price, else the catalogue's)
// with treated-vs-control absolute and relative lifts, 95% intervals, p-values, incremental
// conversions (campaign/stats.h states the methods), Holm-adjusted p-values per family of
// segment / stratum tests, and, when the plan ranked users by a score, uplift@k, uplift by
// score decile and the Qini curve against random targeting.
//
// Rows: user ids are pseudonymized with the data.privacy key exactly as prep does (unless
// campaign.evaluate.pseudonymize=false: the logs already hold pseudonyms). Events before the
// start or after the window are counted and skipped. quarantine.jsonl gets, in prep's shape
// (file, line, reason, field, detail, fields|record), every row prep would reject (same
// reasons), every in-window event of a user who is not in the assignment (reason
// not_in_assignment: kept, never silently dropped) and exact duplicates (duplicate). Like
// prep, the run fails (after writing the quarantine) when invalid rows exceed
// data.clean.max_reject_fraction.
//
// Outputs in output_dir: evaluation.json (everything, with the methods stated), arms.csv,
// lift.csv, uplift_deciles.csv, qini.csv, uplift_at_k.csv (the last three with scores),
// outcomes.csv (per assigned user: user_id, arm, segment, score, active, clicked, converted,
// purchases, revenue; what `campaign uplift` learns from), quarantine.jsonl.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "campaign/stats.h"
#include "core/config/node.h"
#include "data/prep.h"

namespace portrait::campaign {

struct EvaluateParams {
  std::string campaign_dir;            ///< sealed campaign directory (mandatory)
  std::vector<std::string> input;      ///< event logs: files or globs (mandatory)
  std::string catalogue;               ///< optional item catalogue (prices, categories)
  std::string output_dir;              ///< mandatory
  double attribution_days = 14;        ///< conversion / participation window length
  std::string start = "planned";       ///< window start: "planned" or a timestamp
  bool pseudonymize = true;            ///< raw ids in the logs -> HMAC pseudonyms (prep's)
  double level = 0.95;                 ///< confidence level of every interval
  std::string interval = "newcombe";   ///< rate intervals: newcombe | wald
  int bootstrap = 0;                   ///< resamples of the overall bootstrap intervals (0 = none)
  uint64_t seed = 1;                   ///< bootstrap seed
  std::vector<double> uplift_at = {0.1, 0.2, 0.3, 0.5, 1.0};  ///< fractions for uplift@k
  int uplift_bins = 10;                ///< uplift by score bin (deciles)
  int qini_points = 100;
  bool progress = true;
  data::DataParams data;
  // Set by the caller:
  std::string hash_key;                ///< overrides data.privacy's key (tests)
  std::string config_yaml;
};

/// Sections `data`, `campaign` (campaign.dir, campaign.seed) and `campaign.evaluate`.
EvaluateParams evaluate_params_from_config(const cfg::Node& resolved_root);

struct ArmStats {
  int64_t users = 0, active = 0, participants = 0, converters = 0, purchases = 0;
  double revenue = 0;
  int64_t priced_purchases = 0;
};

struct GroupResult {
  std::string type;   ///< overall | segment | stratum
  std::string name;
  ArmStats t, c;
  RateLift participation, conversion;
  MeanLift revenue;   ///< per user
  double p_holm_conversion = 1, p_holm_participation = 1;
};

struct EvaluateSummary {
  std::string campaign_id, output_dir;
  int64_t start_ms = 0, end_ms = 0;
  int64_t rows = 0, accepted = 0, in_window = 0, before_start = 0, after_window = 0;
  int64_t quarantined = 0;
  std::map<std::string, int64_t> quarantine;  ///< reason -> rows
  bool has_prices = false, has_scores = false;
  std::vector<GroupResult> groups;  ///< overall first, then segments, then strata
  Interval bootstrap_conversion{NAN, NAN}, bootstrap_revenue{NAN, NAN};
  std::vector<std::pair<double, double>> uplift_at;  ///< (fraction, uplift)
  std::vector<UpliftBin> uplift_bins;
  QiniCurve qini;
  double wall_s = 0;
  const GroupResult& overall() const { return groups.front(); }
  /// The group of `type` and `name`, or nullptr.
  const GroupResult* find(const std::string& type, const std::string& name) const;
};

EvaluateSummary run_evaluate(const EvaluateParams& p);

}  // namespace portrait::campaign
