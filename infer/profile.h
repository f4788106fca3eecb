// `portrait profile`: per-segment portraits and a self-contained HTML report.
//
// Per segment (from the embeddings export, the segments file, optional scores and the
// shards' input events of the export's split):
//   size, share; recency (days from the split cutoff back to the last input event: mean and
//   median), frequency (input events per user: mean, median), purchases per user, monetary
//   (sum of purchase prices per user, estimated from prep's price buckets b >= 1 as the bucket
//   midpoint 2^((b - 0.5) / 4) - 1; "price_estimated": true), top categories (share of the
//   segment's events, category vocabulary names), top review terms (SentencePiece pieces of
//   the users' review tokens, ranked by count x log lift over all users, at least
//   `min_term_count` occurrences), mean purchase probability per head, representative users
//   (pseudonymous ids nearest the centroid); with `rules` (a `portrait tags` output) the
//   segment's automatic name and its rules (those selecting >= min_segment_size users).
// k-anonymity: a segment with fewer than `min_segment_size` users is suppressed: only its id
// and "suppressed": true are published (no size, statistics or users), and the report draws
// its points grey as "suppressed".
//
// Outputs in `output_dir`: profile.json (format = "portrait-profile"), profile.csv (one row
// per published segment), report.html (scripts/report.py with matplotlib; PNGs embedded as
// base64 data URIs; no external resources) unless html = false.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace portrait::infer {

struct ProfileParams {
  std::string embeddings;          ///< embeddings export (mandatory)
  std::string segments;            ///< segments file (mandatory)
  std::string scores;              ///< scores directory or scores.h5 ("" = no propensities)
  std::string shards;              ///< "" = the export's shards
  std::string tokenizer;           ///< tokenizer.model ("" = <shards>/tokenizer.model if present)
  std::string metrics;             ///< a training run's metrics.jsonl for curves ("" = none)
  std::string output_dir;          ///< mandatory
  int64_t min_segment_size = 50;   ///< k-anonymity threshold: smaller segments are suppressed
  int top_categories = 5;
  int top_terms = 10;
  int64_t min_term_count = 5;
  int representatives = 5;         ///< users nearest the centroid listed per segment
  bool html = true;                ///< render report.html with report.py (infer/report.h)
  std::string python;              ///< interpreter ("" = the build's PORTRAIT_PYTHON)
  std::string script;              ///< report script ("" = find_report_script, infer/report.h)
  int64_t pca_sample = 5000;       ///< users drawn in the 2-D projection
  std::string title = "Portrait segment report";
  std::string rules;               ///< `portrait tags` output (dir or segment_rules.json): segment names + rules ("" = none)
  // Set by the caller:
  std::string config_yaml;
};

ProfileParams profile_params_from_config(const cfg::Node& resolved_root);

struct ProfileSummary {
  std::string output_dir, json, csv, html;  ///< written files ("" = not written)
  int64_t users = 0;
  int segments = 0, published = 0, suppressed = 0;
  double wall_s = 0, report_s = 0;
};

ProfileSummary run_profile(const ProfileParams& p);

}  // namespace portrait::infer
