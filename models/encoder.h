// The transformer user encoder. One sequence per user:
//
//   [CLS] e_1 ... e_L  t_1 ... t_T
//
// e_i = item + category + event type + log time-gap bucket + price bucket + position
//       + segment(behaviour);  t_j = text token + position + segment(text).
// Pre-LayerNorm layers with at::scaled_dot_product_attention and one boolean mask that
// encodes both padding and the information flow:
//   - event i attends events j <= i (causal mode) or all events: its state is a user state
//     "as of event i" for the dense all-action loss;
//   - text tokens attend text tokens only: their mean is a text-only user view (CLIP-style
//     alignment, and users with only reviews still get an embedding);
//   - CLS attends everything: the pooled user embedding (model.pooling = cls | attention);
//     with model.pooling = last the user embedding is instead the state at the user's last
//     event, the very vector the dense all-action loss trains to retrieve the next positive.
// Padded keys are never attended, so padded tokens cannot change any real output. Every row
// attends at least itself (a fully masked SDPA row would be NaN).
// Item embeddings are tied: the input table, projected by item_proj and L2-normalised, is the
// output space that user states are scored against.
//
// Repeat channel (model.repeat_dim R > 0). Shoppers come back to the same few items, and a
// transformer state of D dimensions scored against ~1k item vectors that cluster by category
// cannot single out the 20-odd items of one user's history (session-3 measurement: adding the
// user's own history counts to a trained model's scores lifted Recall@10 from 0.432 to 0.467,
// while adding the bag of its own item vectors lowered it). So the last R dimensions of every
// embedding are an item-identity sketch instead:
//   user  = normalise([ u (D-R, unit) ; beta * sum_t w(type_t) r(item_t) / sum_t w(type_t) ])
//   item  = [ v (D-R, unit) ; r(item) (R, unit) ] / sqrt(2)
// with r a learned table whose rows start random (nearly orthogonal), w and beta learned. The
// dot product is then u.v + beta * (similarity of the item to the user's history), up to a
// per-user positive factor that does not change that user's ranking. Event states use the
// prefix mean (causal). Everything stays one unit vector per user and item, so exports,
// k-means and top-k search are unchanged; text views carry zeros in the channel.
#pragma once

#include <torch/torch.h>

#include "models/model_config.h"

namespace portrait {

/// A padded batch of users (id 0 = padding in every id tensor; events left-aligned).
struct UserBatch {
  torch::Tensor item;          ///< [B, L] int64
  torch::Tensor category;      ///< [B, L] int64
  torch::Tensor event_type;    ///< [B, L] int64
  torch::Tensor gap_bucket;    ///< [B, L] int64
  torch::Tensor price_bucket;  ///< [B, L] int64
  torch::Tensor event_mask;    ///< [B, L] bool, true = real event
  torch::Tensor text;          ///< [B, T] int64 (T may be 0)
  torch::Tensor text_mask;     ///< [B, T] bool

  int64_t batch_size() const { return item.size(0); }
  UserBatch to(const torch::Device& d) const;
};

struct EncoderOutput {
  torch::Tensor user;        ///< [B, D] user embedding, L2-normalised (incl. repeat channel)
  torch::Tensor states;      ///< [B, L, D] per-event user states, L2-normalised (pads: junk)
  torch::Tensor behaviour;   ///< [B, D] behaviour-only view (state at the last real event)
  torch::Tensor text;        ///< [B, D] text-only view (mean of text states); zeros if no text
  torch::Tensor has_text;    ///< [B] bool
  torch::Tensor has_events;  ///< [B] bool
};

/// The attention mask for a batch: [B, 1, S, S] bool, true = may attend.
torch::Tensor build_attention_mask(const torch::Tensor& event_mask, const torch::Tensor& text_mask,
                                   bool causal);

struct TransformerLayerImpl : torch::nn::Module {
  TransformerLayerImpl(int64_t d_model, int64_t n_heads, int64_t d_ff, double dropout);
  /// x [B, S, d_model], mask [B, 1, S, S] bool -> [B, S, d_model]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);

  int64_t n_heads;
  double dropout_p;
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  torch::nn::Linear qkv{nullptr}, out{nullptr}, ff1{nullptr}, ff2{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(TransformerLayer);

struct UserEncoderImpl : torch::nn::Module {
  explicit UserEncoderImpl(const ModelConfig& cfg);

  EncoderOutput forward(const UserBatch& batch);
  /// L2-normalised output vectors of the given items: ids [...] int64 -> [..., D].
  torch::Tensor item_vectors(const torch::Tensor& ids);
  /// Output vectors of every item: [n_items, D].
  torch::Tensor all_item_vectors();

  ModelConfig cfg;
  torch::nn::Embedding item_emb{nullptr}, cat_emb{nullptr}, type_emb{nullptr}, gap_emb{nullptr},
      price_emb{nullptr}, text_emb{nullptr}, pos_emb{nullptr}, seg_emb{nullptr};
  torch::Tensor cls;           ///< [d_model]
  torch::Tensor pool_query;    ///< [d_model] (attention pooling)
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_ln{nullptr};
  torch::nn::Sequential user_proj{nullptr};  ///< d_model -> d_model -> D (PinnerFormer-style MLP)
  torch::nn::Linear item_proj{nullptr};      ///< d_model -> D, for the tied item table
  torch::nn::Dropout emb_drop{nullptr};
  // Repeat channel (model.repeat_dim R > 0; absent otherwise).
  torch::nn::Embedding repeat_emb{nullptr};  ///< [n_items, R] item sketches
  torch::Tensor repeat_type;                 ///< [n_event_types] log weight of each event type
  torch::Tensor repeat_scale;                ///< [1] log beta: the channel's weight against the semantic part

 private:
  /// Item output vectors from input-table rows [..., d_model] and sketch rows [..., R].
  torch::Tensor item_side(const torch::Tensor& emb, const torch::Tensor& rep);
};
TORCH_MODULE(UserEncoder);

/// The purchase-probability heads: D -> h -> C on the user embedding, multi-label sigmoid.
/// Plain Linear layers so the weights export as arrays for the CUDA head kernel
/// (W1 [h, D], b1 [h], W2 [C, h], b2 [C]).
struct PurchaseHeadImpl : torch::nn::Module {
  PurchaseHeadImpl(int64_t embed_dim, int64_t hidden, int64_t n_targets, std::string activation);
  /// user [B, D] -> logits [B, C]
  torch::Tensor forward(const torch::Tensor& user);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  std::string activation;
};
TORCH_MODULE(PurchaseHead);

}  // namespace portrait
