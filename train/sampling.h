// Torch-free pieces of the training step: trimming loader batches to the model's sizes,
// sampling the dense all-action / future-window query-target pairs and masked positions,
// and training-split statistics (item frequencies for logQ and the popularity baseline,
// purchase base rates). Deterministic given an Rng seed, so a resumed run samples exactly
// what the uninterrupted run sampled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/loader.h"
#include "core/rng.h"

namespace portrait::train {

/// Event-type ids of the shards' vocabulary (/vocab/event_types).
inline constexpr int32_t kEventClick = 2, kEventCart = 3, kEventPurchase = 4;
inline bool is_positive_event(int32_t e) {
  return e == kEventClick || e == kEventCart || e == kEventPurchase;
}
/// Items below this id are padding (0) and OOV (1): never targets, never ranked.
inline constexpr int32_t kFirstRealItem = 2;

/// Keeps the most recent `max_events` events and `max_text` text tokens of every row
/// (the loader's L and T may be larger than the model's). Rows stay left-aligned.
data::Batch trim_batch(const data::Batch& b, int64_t max_events, int64_t max_text);

/// Sampling is seeded per row from (seed, the row's global user index): a user's pairs do not
/// depend on which rank or batch position it lands in, so a 2-rank step samples exactly what
/// a 1-rank step over the same global batch samples.
uint64_t row_seed(uint64_t seed, const data::Batch& b, int64_t row);

/// Query/target pairs for the contrastive losses.
struct Pairs {
  std::vector<int64_t> owner;     ///< row index in the batch of each pair
  std::vector<int64_t> position;  ///< dense: event position of the query state (b*L + i)
  std::vector<int64_t> target;    ///< target item id (>= kFirstRealItem)
  size_t size() const { return target.size(); }
};

/// Dense all-action pairs: per row up to `per_user` distinct positions i with at least one
/// positive real-item event among positions (i, i + window]; each gets one such positive
/// at random.
Pairs sample_dense_pairs(const data::Batch& b, int64_t per_user, int64_t window, uint64_t seed);

/// Future-window pairs: per row up to `per_user` distinct valid targets (target_mask set,
/// item >= kFirstRealItem), drawn without replacement.
Pairs sample_future_pairs(const data::Batch& b, int64_t per_user, uint64_t seed);

/// Masked-item positions: each real event with a real item is masked with probability p.
/// Returns flat positions (b*L + i) and the original items; sets those items to 0 in `b`.
Pairs apply_item_mask(data::Batch& b, double p, uint64_t seed);

/// Statistics of the training split of a shard directory.
struct TrainStats {
  std::vector<int64_t> item_positive_counts;  ///< [n_items] positive events per item in the
                                              ///< train split (inputs + label window)
  std::vector<double> purchase_rate;          ///< [n_categories] fraction of train users with
                                              ///< a purchase of c in the label window
  int64_t users = 0;
  std::string tokenizer_sha256;               ///< from the shard attributes
};
TrainStats compute_train_stats(const std::filesystem::path& shard_dir, int64_t n_items,
                               int64_t n_categories);

/// Seed of the sampling RNG for (seed, step, micro-batch).
uint64_t step_seed(uint64_t seed, int64_t step, int64_t micro);

}  // namespace portrait::train
