#include "models/batch.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace portrait {

data::Batch fit_batch(const data::Batch& b, const ModelConfig& mc) {
  // Padded to the batch's longest row, not to the loader's width: padding is never attended
  // and text positions do not depend on L (encoder.h), so only the cost changes. L >= 1: the
  // encoder gathers the last state.
  int64_t longest = 0, most_text = 0;
  std::vector<int64_t> tokens(size_t(b.rows), 0);  // real text tokens per row
  for (int64_t r = 0; r < b.rows; ++r) {
    longest = std::max<int64_t>(longest, std::min<int64_t>(b.length[size_t(r)], b.L));
    for (int64_t k = 0; k < b.T; ++k) tokens[size_t(r)] += b.text_mask[size_t(r * b.T + k)] > 0 ? 1 : 0;
    most_text = std::max(most_text, tokens[size_t(r)]);
  }
  const int64_t L = std::max<int64_t>(1, std::min(longest, mc.max_events));
  // T >= 1 whenever the model has text, even for a batch without any: the text view then
  // still comes out of the encoder's graph, so every rank of a distributed step runs the same
  // CLIP gathers and their backward collectives (a T = 0 rank would skip them and hang).
  const bool has_text = mc.n_text_tokens > 0 && mc.max_text_tokens > 0;
  const int64_t T = has_text ? std::max<int64_t>(1, std::min(most_text, mc.max_text_tokens)) : 0;
  data::Batch o;
  o.rows = b.rows;
  o.L = L;
  o.T = T;
  o.M = b.M;
  o.C = b.C;
  o.global_batch = b.global_batch;
  o.user_index = b.user_index;
  o.length.resize(size_t(b.rows));
  for (auto* v : {&o.item, &o.category, &o.event, &o.gap, &o.price}) v->assign(size_t(b.rows * L), 0);
  o.input_mask.assign(size_t(b.rows * L), 0.f);
  o.text.assign(size_t(b.rows * T), 0);
  o.text_mask.assign(size_t(b.rows * T), 0.f);
  const int32_t last_gap = int32_t(mc.n_gap_buckets - 1), last_price = int32_t(mc.n_price_buckets - 1);
  struct Field {
    const char* name;
    const char* key;
    int64_t n;
    int32_t seen = 0;
  };
  Field item{"item", "n_items", mc.n_items}, cat{"category", "n_categories", mc.n_categories},
      type{"event type", "n_event_types", mc.n_event_types}, text{"text token", "n_text_tokens", mc.n_text_tokens};
  for (int64_t r = 0; r < b.rows; ++r) {
    const int64_t len = std::min<int64_t>(b.length[size_t(r)], b.L);
    const int64_t n = std::min(len, L), from = len - n;  // the most recent n events
    o.length[size_t(r)] = int32_t(n);
    for (int64_t k = 0; k < n; ++k) {
      const size_t d = size_t(r * L + k), s = size_t(r * b.L + from + k);
      o.item[d] = b.item[s];
      o.category[d] = b.category[s];
      o.event[d] = b.event[s];
      o.gap[d] = std::min(b.gap[s], last_gap);
      o.price[d] = std::min(b.price[s], last_price);
      o.input_mask[d] = 1.f;
      item.seen = std::max(item.seen, b.item[s]);
      cat.seen = std::max(cat.seen, b.category[s]);
      type.seen = std::max(type.seen, b.event[s]);
    }
    const int64_t tn = tokens[size_t(r)];
    const int64_t keep = std::min(tn, T), tfrom = tn - keep;  // the most recent tokens
    for (int64_t k = 0; k < keep; ++k) {
      o.text[size_t(r * T + k)] = b.text[size_t(r * b.T + tfrom + k)];
      o.text_mask[size_t(r * T + k)] = 1.f;
      text.seen = std::max(text.seen, o.text[size_t(r * T + k)]);
    }
  }
  // An id beyond the model's tables would be an opaque torch index error: name the field.
  for (const Field* f : {&item, &cat, &type, &text})
    if (f->seen >= f->n && f->seen > 0)
      throw DataError(fmt::format("the data holds {} id {} but the model's {} is {}: the model was not "
                                  "trained on these shards' vocabularies (use the shards it was trained on, "
                                  "or retrain)",
                                  f->name, f->seen, f->key, f->n));
  o.target_item = b.target_item;
  o.target_category = b.target_category;
  o.target_event = b.target_event;
  o.target_mask = b.target_mask;
  o.purchase = b.purchase;
  return o;
}

UserBatch to_user_batch(const data::Batch& b, const torch::Device& device) {
  const int64_t B = b.rows;
  auto ints = [&](const std::vector<int32_t>& v, int64_t cols) {
    if (B * cols == 0) return torch::zeros({B, cols}, torch::kLong);
    return torch::from_blob(const_cast<int32_t*>(v.data()), {B, cols}, torch::kInt).to(torch::kLong);
  };
  auto mask = [&](const std::vector<float>& v, int64_t cols) {
    if (B * cols == 0) return torch::zeros({B, cols}, torch::kBool);
    return torch::from_blob(const_cast<float*>(v.data()), {B, cols}, torch::kFloat) > 0.5f;
  };
  UserBatch u;
  u.item = ints(b.item, b.L);
  u.category = ints(b.category, b.L);
  u.event_type = ints(b.event, b.L);
  u.gap_bucket = ints(b.gap, b.L);
  u.price_bucket = ints(b.price, b.L);
  u.event_mask = mask(b.input_mask, b.L);
  u.text = ints(b.text, b.T);
  u.text_mask = mask(b.text_mask, b.T);
  return device.is_cpu() ? u : u.to(device);
}

}  // namespace portrait
