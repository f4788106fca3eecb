// `portrait segment`: k-means segments of an embeddings export, with ids that stay stable
// across refreshes.
//
// Output `<output>` (e.g. segments.h5), root attributes: format = "portrait-segments",
// format_version = 1, embeddings (source path), checkpoint_sha256, split, config_yaml,
// created_utc, k, metric ("cosine" | "l2"), seed, inertia (double), iterations, id_order
// ("previous": matched to `previous`; "first_appearance": no previous run), previous,
// matching ("hungarian" | "greedy"), match_similarity (mean similarity of matched centroid
// pairs; cosine, or -squared L2 for l2).
// Datasets:
//   /user_id    [N] fixed-length UTF-8 (same rows as the embeddings file)
//   /segment    [N] int32 segment id in [0, k)
//   /distance   [N] float32 distance to the segment centroid (1 - cos, or squared L2)
//   /centroids  [k, D] float32 (unit norm for cosine), row = segment id
//   /size       [k] int64 users per segment
//
// Stable ids. k-means labels are arbitrary (they depend on the seed), so they are renumbered:
//   * with `previous` (an earlier segments file of the same dimension): the new centroids are
//     matched one-to-one to the previous centroids maximising the total similarity (Hungarian
//     algorithm, O(k^3); `matching: greedy` takes the most similar remaining pair first), and
//     each new segment takes the id of its match. New segments beyond the previous k get the
//     next free ids in first-appearance order. A smaller k than before falls back to
//     first-appearance order (with a warning): ids must stay in [0, k).
// k-means is run n_init times (seeds seed .. seed + n_init - 1) and the lowest inertia kept, so
// an unlucky k-means++ start rarely decides the partition.
//   * without: segments are numbered in order of first appearance over the rows (the segment
//     of row 0 is 0, the next new segment seen is 1, ...). The same partition therefore gets
//     the same ids whatever the seed or the internal k-means labels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace portrait::infer {

inline constexpr const char* kSegmentsFormat = "portrait-segments";

struct SegmentParams {
  std::string embeddings;            ///< embeddings export (mandatory)
  std::string output;                ///< segments file to write (mandatory)
  int k = 8;                         ///< number of segments
  std::string metric = "cosine";     ///< cosine (spherical k-means) | l2
  int max_iter = 50;                 ///< maximum Lloyd updates
  int n_init = 4;                    ///< k-means runs (seeds seed, seed+1, ...); lowest inertia kept
  double tol = 1e-4;                 ///< relative inertia decrease to stop
  int64_t seed = 1234;               ///< k-means++ seed
  std::string previous;              ///< earlier segments file to match ids against ("" = none)
  std::string matching = "hungarian";///< hungarian | greedy
  int threads = 0;                   ///< CPU threads (0 = all cores)
  std::string device = "auto";       ///< auto (GPU when present) | cpu | cuda
  // Set by the caller:
  std::string config_yaml;
};

SegmentParams segment_params_from_config(const cfg::Node& resolved_root);

struct SegmentSummary {
  std::string output;
  int64_t users = 0;
  int k = 0;
  double inertia = 0;
  int iterations = 0;
  bool matched_previous = false;
  double match_similarity = 0;
  std::vector<int64_t> sizes;        ///< per segment id
  double wall_s = 0;
};

SegmentSummary run_segment(const SegmentParams& p);

/// Minimum-cost assignment of rows to distinct columns of an [n, m] cost matrix, n <= m
/// (Hungarian / Kuhn-Munkres with potentials, O(n^2 m)). Returns the column of every row.
std::vector<int> hungarian_min(const std::vector<double>& cost, int n, int m);

}  // namespace portrait::infer
