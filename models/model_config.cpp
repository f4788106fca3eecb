#include "models/model_config.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/config/section.h"
#include "core/error.h"

namespace portrait {

ModelConfig model_config_from(const cfg::Node& root, const std::string& section) {
  ModelConfig c;
  cfg::Section s(root, section);
  s.read("d_model", c.d_model, 8, 16384);
  s.read("n_layers", c.n_layers, 1, 256);
  s.read("n_heads", c.n_heads, 1, 256);
  s.read("d_ff", c.d_ff, 8, 65536);
  s.read("dropout", c.dropout, 0.0, 0.9);
  s.read("max_events", c.max_events, 1, 65536);
  s.read("max_text_tokens", c.max_text_tokens, 0, 65536);
  s.read("embed_dim", c.embed_dim, 2, 16384);
  if (const cfg::Node* r = s.raw("repeat_dim"); r && r->is_string()) {
    if (r->as_string() != "auto")
      throw ConfigError(fmt::format("config key 'model.repeat_dim' = '{}' must be an integer >= 0 or auto",
                                    r->as_string()));
    c.repeat_auto = true;  // R = min(64, D/2) when the training data repeats items (trainer decides)
    c.repeat_dim = std::min<int64_t>(64, c.embed_dim / 2);
  } else if (r && !r->is_null()) {
    if (!r->is_int() || r->as_int() < 0 || r->as_int() > 16384)
      throw ConfigError(fmt::format("config key 'model.repeat_dim' = {} must be an integer in [0, 16384] or auto",
                                    r->scalar_text()));
    c.repeat_dim = r->as_int();
  }
  s.read_enum("pooling", c.pooling, {"last", "cls", "attention"});
  s.read("causal", c.causal);
  s.read("head_hidden", c.head_hidden, 1, 65536);
  s.read_enum("head_activation", c.head_activation, {"relu", "gelu"});
  s.read("n_gap_buckets", c.n_gap_buckets, 2, 4096);
  s.read("n_price_buckets", c.n_price_buckets, 2, 4096);
  s.finish();
  c.validate();
  return c;
}

void ModelConfig::validate() const {
  if (d_model % n_heads != 0) {
    throw ConfigError(fmt::format("config key 'model.n_heads' = {} must divide model.d_model = {}",
                                  n_heads, d_model));
  }
  if (repeat_dim < 0 || repeat_dim >= embed_dim) {
    throw ConfigError(fmt::format("config key 'model.repeat_dim' = {} must be in [0, model.embed_dim = {}): "
                                  "the repeat channel is part of the embedding and the rest is the "
                                  "transformer's; raise embed_dim or lower repeat_dim",
                                  repeat_dim, embed_dim));
  }
  if (n_items < 0 || n_categories < 0 || n_text_tokens < 0 || n_targets < 0)
    throw ConfigError("model vocabulary sizes must be non-negative");
}

int64_t ModelConfig::non_embedding_params() const {
  int64_t attn = 4 * d_model * d_model + 4 * d_model;
  int64_t ff = 2 * d_model * d_ff + d_ff + d_model;
  int64_t norms = 4 * d_model;
  const int64_t e = semantic_dim();
  int64_t proj = d_model * d_model + d_model + d_model * e + e;
  return n_layers * (attn + ff + norms) + proj;
}

double ModelConfig::train_flops_per_token(int64_t seq_len) const {
  // 6 FLOPs per parameter per token (forward 2, backward 4) plus attention scores and
  // weighted sums: 2 matmuls of S x S x d per layer, x3 for backward.
  double dense = 6.0 * static_cast<double>(non_embedding_params());
  double attn = 6.0 * 2.0 * static_cast<double>(n_layers) * static_cast<double>(seq_len) *
                static_cast<double>(d_model);
  return dense + attn;
}

}  // namespace portrait
