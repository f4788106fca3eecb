// Offline evaluation shared by training and inference: full-ranking next-item retrieval
// metrics and purchase-head classification metrics, with the popularity baseline computed by
// the same code.
//
// Ranking protocol ("full ranking over N items (not sampled)"): every user with at least one
// valid target (target id >= first_item, i.e. not padding 0 / OOV 1) ranks ALL items
// [first_item, V) by score; items < first_item are never ranked. With T = the user's set of
// distinct valid targets and top-K the K best items,
//   Recall@K = |top-K ∩ T| / |T|
//   NDCG@K   = sum_{r <= K, item_r in T} 1/log2(r+1)  /  sum_{r <= min(K,|T|)} 1/log2(r+1)
//   HR@K     = 1 if top-K ∩ T is not empty (= Recall@K when |T| = 1, as in leave-last-out)
//   MRR      = 1 / (full rank of the best-ranked target); a tie counts half: rank = 1 +
//              #{items scored higher} + #{other items scored equal} / 2
// averaged over users. By default previously seen items are ranked too (repeat purchases are
// real); with a `seen` matrix (the user's input items) they are excluded from the ranking,
// as the SASRec / BERT4Rec protocol does, and a target the user already had cannot be hit.
//
// Classification: per head c, ROC AUC (Mann-Whitney, ties count 1/2; undefined when a head has
// only one class in the data) and log-loss (probabilities clipped to [1e-7, 1-1e-7]); the
// averages are macro means over heads with a defined AUC. Calibration: ECE with 15 equal-width
// bins over every (user, head) pair of the heads used (core/calibration.h), and the expected
// (sum of probabilities) against the observed number of positives.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/calibration.h"

namespace portrait {

struct RankingMetrics {
  int64_t users = 0;                 ///< users with >= 1 valid target
  int64_t n_items = 0;               ///< items ranked (V - first_item)
  std::vector<int64_t> ks;
  std::vector<double> recall, ndcg, hr;  ///< per k, means over users
  std::vector<double> recall_se, ndcg_se, hr_se;  ///< per k, standard errors of the means
  double mrr = 0, mrr_se = 0;
  nlohmann::json to_json() const;    ///< {"users", "n_items", "recall@10", "ndcg@10", "hr@10", "mrr",
                                     ///<  and "<metric>_ci95": [lo, hi] (normal, per-user SE)}
};

/// Accumulates full-ranking metrics over batches of users.
class RankingAccumulator {
 public:
  explicit RankingAccumulator(std::vector<int64_t> ks = {10, 50}, int64_t first_item = 2);
  /// scores [B, V] (higher = better, any float dtype, any device); targets [B, M] int;
  /// target_mask [B, M] bool/float (true/1 = real target); seen (optional) [B, S] int item ids
  /// excluded from the ranking (ids < first_item, e.g. padding 0, are ignored).
  void add(const torch::Tensor& scores, const torch::Tensor& targets, const torch::Tensor& target_mask,
           const torch::Tensor& seen = {});
  RankingMetrics result() const;

 private:
  std::vector<int64_t> ks_;
  int64_t first_item_, users_ = 0, n_items_ = 0;
  std::vector<double> recall_sum_, ndcg_sum_, hr_sum_, recall_sq_, ndcg_sq_, hr_sq_;
  double mrr_sum_ = 0, mrr_sq_ = 0;
};

struct BinaryMetrics {
  std::vector<double> auc, logloss;  ///< per head (NaN where undefined)
  std::vector<int64_t> positives;    ///< per head
  int64_t rows = 0;
  double mean_auc = 0, mean_logloss = 0;  ///< macro over heads with a defined AUC
  int64_t heads_used = 0;
  double ece = 0;                 ///< 15 bins, pooled over the heads used (NaN without any)
  double expected_positives = 0;  ///< sum of the probabilities over the heads used
  int64_t observed_positives = 0; ///< positives over the heads used
  nlohmann::json to_json(bool per_head = true) const;
};

/// Accumulates per-head probabilities and labels.
class BinaryAccumulator {
 public:
  /// `skip` lists heads never evaluated (e.g. the padding and OOV categories).
  explicit BinaryAccumulator(int64_t n_heads, std::vector<int64_t> skip = {});
  /// probs [B, C] in [0,1]; labels [B, C] {0,1}.
  void add(const torch::Tensor& probs, const torch::Tensor& labels);
  BinaryMetrics result() const;
  /// The same samples with head c's probabilities mapped by `cal` (e.g. on a held-out split).
  BinaryAccumulator calibrated(const calib::HeadCalibration& cal) const;
  /// Fits a calibration on these samples (core/calibration.h; the skipped heads get none).
  calib::HeadCalibration fit_calibration(const std::string& method, const std::string& scope,
                                         int64_t min_class) const;

 private:
  int64_t C_;
  std::vector<bool> skip_;
  std::vector<std::vector<float>> p_, y_;
};

/// One evaluation: the model and the popularity baseline side by side.
struct EvalReport {
  std::string split;
  std::string split_protocol;  ///< the shards' protocol: temporal | leave_last_out
  bool exclude_seen = false;   ///< seen items were excluded from the ranking
  int64_t step = 0;
  RankingMetrics model, popularity;
  bool has_purchase = false;
  BinaryMetrics purchase, purchase_baseline;  ///< baseline: train base rate per category
  bool calibrated = false;                    ///< purchase_calibrated holds the calibrated heads
  std::string calibration;                    ///< its method and the split it was fitted on
  BinaryMetrics purchase_calibrated;
  nlohmann::json to_json() const;             ///< includes "protocol": "full ranking over N ..."
  /// Human-readable table (model vs popularity), starting with the protocol line.
  std::string table() const;
};

/// "full ranking over N items (not sampled)"
std::string ranking_protocol(int64_t n_items);

}  // namespace portrait
