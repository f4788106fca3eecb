// Synthetic campaigns with planted truth: the yardstick of `campaign evaluate`.
//
// A population of `users` shoppers in `segments` segments, each with a baseline probability
// p0 of buying within the attribution window (logit-normal around a per-segment level) and a
// propensity score (p0 seen through logit noise: what a purchase head would give). The
// campaign is planned with the real planner (campaign/plan.h) on those scores; then post-
// campaign events are drawn: a treated user buys with p1 = sigmoid(logit p0 + beta_s), where
// beta_s (segment_log_odds) is the planted, segment-dependent effect (zero and negative for
// some segments); control users buy with p0. Clicks (participation) follow the same pattern
// with one log-odds lift for every segment. Users outside the audience, strangers who were
// never scored, events before the start and after the window, and invalid rows are mixed in,
// so the evaluator's accounting is tested too.
//
// Outputs in output_dir:
//   users.csv        user_id,score,segment          the scored set (planner input)
//   campaign/        the sealed campaign directory (assignment.csv, activation.csv, campaign.json)
//   events.csv       the post-campaign log (raw ids; prep's columns)
//   truth.csv        user_id,segment,arm,p_control,p_treatment,effect  (audience users)
//   features.csv     user_id,f0,...  stand-in user embeddings (feature_dim > 0)
//   truth.json       parameters; per segment the planted log-odds and the true mean effect
//                    over its audience users (the estimand of a segment's absolute lift); the
//                    overall true effect; the rows the evaluator must set apart by reason
// User ids in users.csv and the assignment are the HMAC pseudonyms of the raw ids in
// events.csv under `hash_key` (prep's pseudonymization), or the raw ids when it is empty.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "campaign/plan.h"
#include "core/config/node.h"

namespace portrait::campaign {

struct SimulateParams {
  std::string output_dir;                 ///< mandatory
  uint64_t seed = 7;
  int64_t users = 100000;                 ///< scored population
  int segments = 8;
  /// Planted treatment effect per segment on the log-odds of buying in the window
  /// (shorter lists repeat cyclically).
  std::vector<double> segment_log_odds = {0.5, 0.3, 0.0, -0.3, 0.8, 0.0, 0.15, 0.0};
  double base_conversion = 0.06;          ///< median control probability of a purchase in the window
  double segment_spread = 0.5;            ///< segments' baseline log-odds uniform in +-spread
  double heterogeneity = 0.6;             ///< sd of a user's baseline log-odds within a segment
  double score_noise = 0.5;               ///< sd of the score's log-odds error
  double base_click = 0.15;               ///< median control click probability
  double click_log_odds = 0.5;            ///< treatment's lift of the click log-odds
  double mean_price = 40;                 ///< purchase prices: lognormal with this mean
  double outside_fraction = 0.2;          ///< users with a purchase before the start / after the window
  int64_t strangers = 100;                ///< never-scored users with events in the window
  double invalid_fraction = 0.001;        ///< rows prep rejects (bad timestamp, unknown event)
  double duplicate_fraction = 0.01;       ///< purchases written twice
  bool pseudonymize = true;               ///< the command sets hash_key from data.privacy
  std::string hash_key;                   ///< pseudonymization key ("" = raw ids everywhere)
  PlanParams plan;                        ///< campaign_id, start, targeting, budget, control ...
                                          ///< (plan.dir is set to output_dir/campaign)
  double attribution_days = 14;           ///< the window the events are drawn in
  /// features.csv (user_id,f0..): stand-in user embeddings for `campaign uplift`: a random
  /// centroid per segment plus N(0, feature_noise^2) per dimension, the last dimension plus the
  /// user's baseline log-odds. 0 = not written.
  int feature_dim = 16;
  double feature_noise = 0.5;
};

/// Section `campaign.simulate` (plus `campaign` / `campaign.plan` for the plan).
SimulateParams simulate_params_from_config(const cfg::Node& resolved_root);

struct SegmentTruth {
  std::string segment;
  double log_odds = 0;
  int64_t users = 0, treatment = 0, control = 0;  ///< audience users
  double mean_effect = 0;   ///< mean over the segment's audience of p1 - p0
  double mean_p0 = 0, mean_p1 = 0;
};

struct SimulateSummary {
  std::string output_dir, campaign_dir, events;
  int64_t users = 0, audience = 0, rows = 0;
  double overall_effect = 0;                       ///< mean p1 - p0 over the audience
  /// Expected conversion of each arm given the draw of the arms: mean p1 over the treated,
  /// mean p0 over the control users (what the observed rates scatter around).
  double expected_treatment = 0, expected_control = 0;
  std::vector<SegmentTruth> segments;
  std::map<std::string, int64_t> expected_quarantine;  ///< reason -> rows the evaluator must quarantine
  int64_t before_start = 0, after_window = 0;
};

SimulateSummary run_simulate(const SimulateParams& p);

}  // namespace portrait::campaign
