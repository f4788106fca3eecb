#include "models/losses.h"

#include <cmath>

namespace portrait {

namespace F = torch::nn::functional;

namespace {
// Losses are computed in fp32 (bf16/fp16 logits under autocast are upcast); fp64 stays fp64.
torch::Tensor loss_precision(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat);
}
}  // namespace

torch::Tensor sampled_softmax_rows(const torch::Tensor& q, int64_t q_offset, const torch::Tensor& pos,
                                   const torch::Tensor& pos_ids, const torch::Tensor& owner,
                                   const torch::Tensor& neg, const torch::Tensor& neg_ids,
                                   const torch::Tensor& log_q_pos, double log_q_uniform,
                                   const torch::Tensor& inv_temperature) {
  TORCH_CHECK(q.dim() == 2 && pos.dim() == 2 && q.size(1) == pos.size(1), "q [Nq, D] and pos [Nk, D] expected");
  const int64_t Nq = q.size(0), Nk = pos.size(0);
  TORCH_CHECK(q_offset >= 0 && q_offset + Nq <= Nk, "query rows must lie inside the candidate rows");
  const float kNegInf = -std::numeric_limits<float>::infinity();
  auto lopt = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  auto rows = torch::arange(q_offset, q_offset + Nq, lopt);  // each query's own column
  auto q_owner = owner.index_select(0, rows), q_ids = pos_ids.index_select(0, rows);
  auto in_batch = torch::matmul(q, pos.t()) * inv_temperature;  // [Nq, Nk]
  if (log_q_pos.defined()) in_batch = in_batch - log_q_pos.to(in_batch.dtype()).view({1, Nk});
  auto own_col = rows.view({Nq, 1}) == torch::arange(Nk, lopt).view({1, Nk});
  auto same_owner = q_owner.view({Nq, 1}) == owner.view({1, Nk});
  auto same_item = q_ids.view({Nq, 1}) == pos_ids.view({1, Nk});
  // A user's own other positives and duplicates of the positive item are not negatives.
  in_batch = in_batch.masked_fill((same_owner | same_item) & ~own_col, kNegInf);
  torch::Tensor logits = in_batch;
  if (neg.defined() && neg.size(0) > 0) {
    const int64_t M = neg.size(0);
    auto uni = torch::matmul(q, neg.t()) * inv_temperature;  // [Nq, M]
    if (log_q_pos.defined()) uni = uni - log_q_uniform;
    // Sampled item equal to any positive of the same user (row i's own included): OR the
    // candidates' hits per owner, then look each query's owner up. O(Nk * M), where a
    // same_owner [Nq, Nk] x hit [Nk, M] product would be O(Nq * Nk * M).
    auto hit = (pos_ids.view({Nk, 1}) == neg_ids.view({1, M})).to(torch::kFloat);  // [Nk, M]
    auto [uniq, inverse] = at::_unique(owner, /*sorted=*/false, /*return_inverse=*/true);
    auto per_owner = torch::zeros({uniq.size(0), M}, hit.options()).index_add_(0, inverse, hit);  // [U, M]
    auto owner_hit = per_owner.index_select(0, inverse.index_select(0, rows)) > 0;                // [Nq, M]
    uni = uni.masked_fill(owner_hit, kNegInf);
    logits = torch::cat({in_batch, uni}, 1);
  }
  return F::cross_entropy(loss_precision(logits), rows, F::CrossEntropyFuncOptions().reduction(torch::kNone));
}

torch::Tensor full_softmax_rows(const torch::Tensor& q, const torch::Tensor& targets, const torch::Tensor& owner,
                                const torch::Tensor& items, const torch::Tensor& inv_temperature,
                                int64_t first_item) {
  TORCH_CHECK(q.dim() == 2 && items.dim() == 2 && q.size(1) == items.size(1), "q [Nq, D] and items [V, D] expected");
  const int64_t Nq = q.size(0), V = items.size(0);
  TORCH_CHECK(targets.numel() == Nq && owner.numel() == Nq, "one target and owner per query row");
  auto logits = loss_precision(torch::matmul(q, items.t()) * inv_temperature);  // [Nq, V]
  auto lopt = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  // Per owner, its targets in this batch; a row masks its owner's targets except its own.
  auto [uniq, inverse] = at::_unique(owner, /*sorted=*/false, /*return_inverse=*/true);
  auto theirs = torch::zeros({uniq.size(0), V}, lopt.dtype(torch::kBool));
  theirs.index_put_({inverse, targets}, torch::ones({Nq}, lopt.dtype(torch::kBool)));
  auto mask = theirs.index_select(0, inverse);
  mask.index_put_({torch::arange(Nq, lopt), targets}, torch::zeros({Nq}, lopt.dtype(torch::kBool)));
  mask.slice(1, 0, std::min(first_item, V)).fill_(true);  // padding / OOV are never candidates
  logits = logits.masked_fill(mask, -std::numeric_limits<float>::infinity());
  return F::cross_entropy(logits, targets, F::CrossEntropyFuncOptions().reduction(torch::kNone));
}

torch::Tensor sampled_softmax_loss(const torch::Tensor& q, const torch::Tensor& pos,
                                   const torch::Tensor& pos_ids, const torch::Tensor& owner,
                                   const torch::Tensor& neg, const torch::Tensor& neg_ids,
                                   const torch::Tensor& log_q_pos, double log_q_uniform,
                                   const torch::Tensor& inv_temperature) {
  TORCH_CHECK(q.dim() == 2 && pos.sizes() == q.sizes(), "q and pos must be [N, D] alike");
  return sampled_softmax_rows(q, 0, pos, pos_ids, owner, neg, neg_ids, log_q_pos, log_q_uniform, inv_temperature)
      .mean();
}

torch::Tensor purchase_bce_loss(const torch::Tensor& logits, const torch::Tensor& labels,
                                const torch::Tensor& weight) {
  auto l = loss_precision(logits);
  auto y = labels.to(l.scalar_type());
  if (!weight.defined()) return F::binary_cross_entropy_with_logits(l, y);
  auto w = weight.to(l.scalar_type());
  auto per = F::binary_cross_entropy_with_logits(
      l, y, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  return (per * w).sum() / w.sum().clamp_min(1.0);
}

torch::Tensor clip_loss(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& valid,
                        const torch::Tensor& inv_temperature) {
  auto idx = valid.to(torch::kBool).nonzero().squeeze(1);
  if (idx.numel() < 2) return (a.sum() + b.sum()) * 0.0;
  auto av = a.index_select(0, idx), bv = b.index_select(0, idx);
  auto logits = loss_precision(torch::matmul(av, bv.t()) * inv_temperature);
  auto target = torch::arange(idx.numel(), torch::TensorOptions().dtype(torch::kLong).device(a.device()));
  return 0.5 * (F::cross_entropy(logits, target) + F::cross_entropy(logits.t(), target));
}

torch::Tensor clip_loss_rows_sum(const torch::Tensor& a_loc, const torch::Tensor& b_loc,
                                 const torch::Tensor& valid_loc, const torch::Tensor& a_all,
                                 const torch::Tensor& b_all, const torch::Tensor& valid_all, int64_t offset,
                                 const torch::Tensor& inv_temperature) {
  auto vall = valid_all.to(torch::kBool);
  auto idx_all = vall.nonzero().squeeze(1);
  auto idx_loc = valid_loc.to(torch::kBool).nonzero().squeeze(1);
  auto zero = (a_loc.sum() + b_loc.sum() + a_all.sum() + b_all.sum()) * 0.0;
  if (idx_all.numel() < 2 || idx_loc.numel() == 0) return zero.to(torch::kFloat);
  // Column of each local valid row among the global valid rows.
  auto col = (vall.to(torch::kLong).cumsum(0) - 1).index_select(0, idx_loc + offset);
  auto A = a_all.index_select(0, idx_all), B = b_all.index_select(0, idx_all);
  auto ab = loss_precision(torch::matmul(a_loc.index_select(0, idx_loc), B.t()) * inv_temperature);
  auto ba = loss_precision(torch::matmul(b_loc.index_select(0, idx_loc), A.t()) * inv_temperature);
  auto sum = F::CrossEntropyFuncOptions().reduction(torch::kSum);
  return F::cross_entropy(ab, col, sum) + F::cross_entropy(ba, col, sum);
}

torch::Tensor masked_item_loss(const torch::Tensor& states, const torch::Tensor& targets,
                               const torch::Tensor& items, const torch::Tensor& inv_temperature) {
  if (states.size(0) == 0) return items.sum() * 0.0;
  auto logits = loss_precision(torch::matmul(states, items.t()) * inv_temperature);
  auto pad = torch::zeros({1, logits.size(1)}, logits.options().dtype(torch::kBool));
  pad.index_put_({0, 0}, true);  // padding is never a target
  logits = logits.masked_fill(pad, -std::numeric_limits<float>::infinity());
  return F::cross_entropy(logits, targets);
}

LearnedTemperatureImpl::LearnedTemperatureImpl(double init_temperature, bool learnable, double max)
    : max_inv(max) {
  auto v = torch::full({}, std::log(1.0 / init_temperature));
  log_inv = learnable ? register_parameter("log_inv", v) : register_buffer("log_inv", v);
}

torch::Tensor LearnedTemperatureImpl::forward() {
  return log_inv.exp().clamp(1.0, max_inv);
}

}  // namespace portrait
