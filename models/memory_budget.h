// Fail before allocating: an estimate of the memory a training or embedding run needs, checked
// against what the device has, so an in-range but absurd size (model.d_model=16384, a batch far
// above the data) is a ConfigError naming the key within a second, not an allocator abort
// after gigabytes. The estimate is deliberately rough (within ~2x of the peak for the shapes
// Portrait uses) and only refuses runs that need more than the device has.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/model_config.h"

namespace portrait {

/// One term of the estimate: bytes, and the config keys that size it (the first is named).
struct MemoryTerm {
  std::string what;               ///< e.g. "weights, gradients and AdamW state"
  double bytes = 0;
  std::vector<std::string> keys;  ///< e.g. {"model.d_model", "model.n_layers"}
};

struct MemoryEstimate {
  std::vector<MemoryTerm> terms;
  double total() const;
  const MemoryTerm& largest() const;  ///< requires !terms.empty()
};

/// Training memory of one rank: weights + gradients + AdamW moments (16 bytes per parameter),
/// saved activations of `rows` sequences of the model's length, and the contrastive logits of
/// the dense objective (`rows * max_events` queries against in-batch plus `uniform_negatives`
/// candidates, or all `cfg.n_items` items with `full_softmax`).
MemoryEstimate estimate_train_memory(const ModelConfig& cfg, int64_t rows, int64_t uniform_negatives,
                                     bool full_softmax);

/// Inference memory of `rows` sequences (weights + activations of one layer, no gradients).
MemoryEstimate estimate_infer_memory(const ModelConfig& cfg, int64_t rows);

/// Bytes this process can still allocate on the CPU: MemAvailable, capped by a cgroup (v2 or
/// v1) memory limit; -1 when unknown.
int64_t available_host_memory_bytes();

/// Throws ConfigError when `e.total()` exceeds `available_bytes` (no check when < 0), naming
/// the largest term, its keys, both sizes and `device`.
void check_memory_budget(const MemoryEstimate& e, int64_t available_bytes, const std::string& device);

}  // namespace portrait
