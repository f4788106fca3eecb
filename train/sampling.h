// Torch-free pieces of the training step: sampling the dense all-action / future-window
// query-target pairs and masked positions,
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
#include "models/model_config.h"

namespace portrait::train {

/// Which event-type ids (/vocab/event_types: 0 padding, 1 view .. 5 review) count as
/// positives: index = id. From the shards' `target_event_types` attribute, i.e.
/// prep.target_event_types, so the dense loss, the future targets and the statistics agree.
using PositiveTypes = std::vector<uint8_t>;
/// Parses "click,cart,purchase"; throws DataError naming `where` on an unknown name.
PositiveTypes parse_positive_types(const std::string& names, const std::string& where);
/// Items below this id are padding (0) and OOV (1): never targets, never ranked.
inline constexpr int32_t kFirstRealItem = 2;

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

/// Dense all-action pairs: per row up to `per_user` (<= 0: every) distinct positions i with at
/// least one positive real-item event among positions (i, i + window]; each gets one such
/// positive at random. skip_same_item: positives whose item is the query event's own item are
/// not eligible, and `window` counts eligible positives (the next `window` of them), not events.
/// with_targets: the row's valid targets (its split's label-window / held-out events, in
/// order) continue the sequence as positives after the last input, so the last input
/// state -- the exported user embedding -- learns what came next, as inference uses it.
Pairs sample_dense_pairs(const data::Batch& b, int64_t per_user, int64_t window, const PositiveTypes& positive,
                         uint64_t seed, bool skip_same_item = false, bool with_targets = false);

/// Future-window pairs: per row up to `per_user` distinct valid targets (target_mask set,
/// item >= kFirstRealItem), drawn without replacement.
Pairs sample_future_pairs(const data::Batch& b, int64_t per_user, uint64_t seed);

/// Masked-item positions: each real event with a real item is masked with probability p.
/// Returns flat positions (b*L + i) and the original items; sets those items to 0 in `b`.
Pairs apply_item_mask(data::Batch& b, double p, uint64_t seed);

/// Statistics of the training split of a shard directory.
struct TrainStats {
  std::vector<int64_t> item_positive_counts;  ///< [n_items] positive events per item in the
                                              ///< train split (inputs + targets)
  std::vector<double> purchase_rate;          ///< [n_categories] fraction of train users with
                                              ///< a purchase of c in the label window
  int64_t users = 0;
  int64_t targets = 0, repeat_targets = 0;    ///< valid train targets; those already in the user's input
  std::string tokenizer_sha256;               ///< from the shard attributes
  std::string protocol;                       ///< temporal | leave_last_out (shard attribute)
  PositiveTypes positive;                     ///< from the shards' target_event_types
};
TrainStats compute_train_stats(const std::filesystem::path& shard_dir, int64_t n_items,
                               int64_t n_categories);

/// model.repeat_dim: auto resolved against the training data: the configured R when at least
/// ModelConfig::kRepeatAutoMinRate of the train targets repeat an item of the user's input,
/// else 0. A config without auto keeps its R.
int64_t resolve_repeat_dim(const ModelConfig& m, const TrainStats& st);

/// Seed of the sampling RNG for (seed, step, micro-batch).
uint64_t step_seed(uint64_t seed, int64_t step, int64_t micro);

}  // namespace portrait::train
