// `portrait campaign uplift`: learn who the campaign moved, so the next one targets predicted
// uplift instead of raw propensity.
//
// From a finished campaign (the sealed assignment: arms; evaluate's outcomes.csv: who
// converted) and per-user features (the user embeddings of a `portrait embed` export, or a CSV
// `user_id,f0,f1,...`), two uplift learners on the features:
//   t_learner             two logistic response models, P(y | x, treated) and P(y | x, control);
//                         uplift(x) = their difference (Kunzel et al. 2019's T-learner).
//   class_transformation  one logistic model of z = y for treated rows, 1 - y for control rows,
//                         the arms reweighted to equal total weight (so the 50/50 condition of
//                         Jaskowski & Jaroszewicz 2012 holds); uplift(x) = 2 P(z = 1 | x) - 1.
// Evaluation on a held-out part of the audience (users by a seeded hash of their id, the same
// share of each arm): each learner's ranking against the plan's score (the propensity the
// campaign was targeted by) and a seeded random ranking, by the Qini curve (campaign/stats.h),
// its area, and the incremental conversions among the top `budget_fraction` of the held-out
// users (Q at that fraction), with paired bootstrap intervals over held-out users of each
// learner minus propensity and minus random. With a truth file (campaign simulate's
// truth.csv: user_id, effect = p_treatment - p_control) also the expected incremental
// conversions of treating each ranking's top fraction: the sum of the true effects there.
//
// Outputs in output_dir: uplift_model.json (format "portrait-uplift-model", version, the
// learner chosen for scoring, every learner's standardisation and weights, the feature source
// and its sha256, the campaign id), uplift_eval.json, qini_uplift.csv, and uplift_scores.csv
// (user_id, score = predicted uplift, segment) for every user with features: the input of the
// next `campaign plan` (targeting=top_score).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "campaign/logistic.h"
#include "campaign/stats.h"
#include "core/config/node.h"

namespace portrait::campaign {

inline constexpr const char* kUpliftModelFormat = "portrait-uplift-model";
inline constexpr int kUpliftModelFormatVersion = 1;

/// Per-user features, row-major [ids.size(), dim].
struct Features {
  std::vector<std::string> ids;
  int64_t dim = 0;
  std::vector<float> x;
  std::string source, sha256;  ///< recorded in the model
};

/// Reads `user_id,f0,...` (CSV/TSV by extension, gzip by content; the first column is the id,
/// every other column a finite number). Errors name file, line and column.
Features read_features_csv(const std::string& path);

struct UpliftParams {
  std::string campaign_dir;      ///< sealed campaign (mandatory)
  std::string outcomes;          ///< evaluate's outcomes.csv, or its output directory (mandatory)
  std::string features;          ///< CSV features (or set by the command from an export)
  std::string embeddings;        ///< a `portrait embed` export (read by the command)
  std::string truth;             ///< optional: truth.csv with user_id, effect
  std::string output_dir;        ///< mandatory
  std::string outcome = "converted";   ///< converted | clicked
  std::vector<std::string> learners = {"t_learner", "class_transformation"};
  std::string score_with = "t_learner";  ///< the learner written to uplift_scores.csv
  double holdout = 0.3;          ///< share of the audience held out for evaluation
  double budget_fraction = 0.3;  ///< incremental conversions among the top fraction
  int bootstrap = 200;           ///< paired resamples of the held-out users
  double level = 0.95;
  uint64_t seed = 1;
  int qini_points = 100;
  LogisticParams logistic;
  double max_missing_fraction = 0.05;  ///< audience users without features tolerated (skipped)
  std::string config_yaml;
};

/// Sections `campaign` (dir, seed) and `campaign.uplift`.
UpliftParams uplift_params_from_config(const cfg::Node& resolved_root);

struct RankingResult {
  std::string name;              ///< t_learner | class_transformation | propensity | random
  QiniCurve qini;
  double incremental_at_budget = 0;        ///< Q(budget_fraction) on the held-out users
  double area_diff_vs_propensity = 0, area_lo_vs_propensity = 0, area_hi_vs_propensity = 0;
  double area_diff_vs_random = 0, area_lo_vs_random = 0, area_hi_vs_random = 0;
  double inc_diff_vs_propensity = 0, inc_lo_vs_propensity = 0, inc_hi_vs_propensity = 0;
  double inc_diff_vs_random = 0, inc_lo_vs_random = 0, inc_hi_vs_random = 0;
  double true_incremental_at_budget = NAN;  ///< sum of true effects of the top fraction (truth file)
};

struct UpliftSummary {
  std::string campaign_id, output_dir;
  int64_t audience = 0, with_features = 0, train_users = 0, holdout_users = 0, holdout_treated = 0;
  int64_t budget_users = 0;  ///< held-out users in the top budget_fraction
  std::vector<RankingResult> rankings;
  std::map<std::string, LogisticModel> models;  ///< "t_learner/treatment", "t_learner/control", "class_transformation"
  int64_t scored_users = 0;
  double wall_s = 0;
};

/// Fits, evaluates and writes the outputs. `features` must be given (the command reads them
/// from p.features or p.embeddings).
UpliftSummary run_uplift(const UpliftParams& p, const Features& features);

}  // namespace portrait::campaign
