// The user encoder's hyper-parameters. Architecture sizes come from the `model:` config group
// (configs/model/{tiny,small,base}.yaml); vocabulary sizes come from the prepared data.
#pragma once

#include <cstdint>
#include <string>

#include "core/config/node.h"

namespace portrait {

struct ModelConfig {
  // ---- vocabularies (from the shards; id 0 is padding everywhere) ----
  int64_t n_items = 0;          ///< item vocabulary incl. padding (0) and OOV bucket
  int64_t n_categories = 0;     ///< category vocabulary incl. padding and OOV
  int64_t n_event_types = 6;    ///< padding + view, click, cart, purchase, review
  int64_t n_gap_buckets = 32;   ///< log time-gap buckets (0 = padding)
  int64_t n_price_buckets = 64; ///< price buckets (0 = padding / unknown); prep emits 0..63
  int64_t n_text_tokens = 0;    ///< SentencePiece vocabulary; 0 disables the text segment
  int64_t n_targets = 0;        ///< purchase-head outputs C (categories or campaigns); 0 = none

  // ---- architecture (model: group) ----
  int64_t d_model = 64;         ///< hidden size, e.g. 64 tiny, 256 small, 768 base
  int64_t n_layers = 2;
  int64_t n_heads = 4;          ///< must divide d_model
  int64_t d_ff = 256;           ///< feed-forward inner size
  double dropout = 0.1;
  int64_t max_events = 64;      ///< L: behaviour tokens per user (the most recent L events)
  int64_t max_text_tokens = 32; ///< T: review-text tokens per user
  int64_t embed_dim = 64;       ///< D: size of the L2-normalised user/item embedding
  /// R: the last R of the D dimensions are a repeat channel, a learned sketch of the items
  /// in the user's own history (0 = off; see encoder.h). Must be < D.
  int64_t repeat_dim = 0;
  /// model.repeat_dim: auto (R = min(64, D/2)). The trainer keeps R only when the training data
  /// repeats (kRepeatAutoMinRate of the train split's targets are items already in the user's
  /// input), else sets R = 0; the saved model holds the resolved R (never auto).
  bool repeat_auto = false;
  /// How the user embedding is pooled: last = the event state at the user's last event (the
  /// state the dense loss trains; the text view for users without events) | cls | attention.
  std::string pooling = "cls";
  bool causal = true;           ///< event states see only earlier events (dense loss needs it)
  int64_t head_hidden = 64;     ///< purchase-head MLP hidden size h (D -> h -> C)
  std::string head_activation = "relu";  ///< relu | gelu (the CUDA head kernel supports both)

  /// Share of training targets that repeat an item of the user's own input below which
  /// repeat_dim: auto turns the channel off. Measured: the synthetic shop 0.585, Ciao 0.009,
  /// MovieLens-100K 0 (session 9, bench/real: off gave MovieLens-100K HR@10 0.160 -> 0.189).
  static constexpr double kRepeatAutoMinRate = 0.05;

  /// D - R: the transformer's (semantic) part of the embedding.
  int64_t semantic_dim() const { return embed_dim - repeat_dim; }

  /// Validates sizes and combinations; throws ConfigError naming the key.
  void validate() const;
  /// Learnable parameters excluding embedding tables (for FLOP counts).
  int64_t non_embedding_params() const;
  /// Forward+backward FLOPs per token (6N + attention), for model-FLOPs utilisation.
  double train_flops_per_token(int64_t seq_len) const;
};

/// Reads `model.*` from a resolved config (architecture keys only; vocabularies are set by
/// the caller from the data). Unknown keys are errors.
ModelConfig model_config_from(const cfg::Node& root, const std::string& section = "model");

}  // namespace portrait
