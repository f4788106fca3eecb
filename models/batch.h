// The one adapter from loader batches (data/loader.h) to model inputs, used by training,
// evaluation and `portrait embed` alike: a user's embedding cannot depend on which of them
// computed it (tests/infer pins embed rows to the trainer's forward pass).
#pragma once

#include <torch/torch.h>

#include "data/loader.h"
#include "models/encoder.h"
#include "models/model_config.h"

namespace portrait {

/// A loader batch cut to the model's sizes:
///  - the most recent `mc.max_events` events and the most recent `mc.max_text_tokens` text
///    tokens of every row (the loader's L and T may be larger); rows stay left-aligned and
///    are padded to the batch's longest row (L >= 1; T >= 1 when the model has text), so short
///    users cost short sequences;
///  - no text at all when the model has no text table (n_text_tokens = 0);
///  - time-gap and price buckets beyond the model's tables share its last bucket (both are
///    open-ended log scales);
///  - item, category, event-type or text ids beyond the model's tables throw DataError naming
///    the field: the model was trained on other vocabularies.
/// Labels (targets, purchases) and user_index are copied unchanged.
data::Batch fit_batch(const data::Batch& b, const ModelConfig& mc);

/// A (fitted) batch as tensors on `device`: ids int64 [B, L] / [B, T], masks bool.
UserBatch to_user_batch(const data::Batch& b, const torch::Device& device);

/// fit_batch + to_user_batch.
inline UserBatch model_input(const data::Batch& b, const ModelConfig& mc, const torch::Device& device) {
  return to_user_batch(fit_batch(b, mc), device);
}

}  // namespace portrait
