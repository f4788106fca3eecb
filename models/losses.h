// Training objectives. Every function takes L2-normalised embeddings and returns a scalar
// loss (mean over the rows that count); shapes are documented per function.
#pragma once

#include <torch/torch.h>

namespace portrait {

/// Sampled softmax with mixed negatives and logQ correction (PinnerFormer's dense all-action
/// loss). Row i's query must pick its positive among
///   - the in-batch positives of every row (column j), corrected by -log_q_pos[j], and
///   - M uniformly sampled items, corrected by -log_q_uniform,
/// where every candidate that is one of the *same user's* positives (other than row i's own
/// positive column) is masked out, as is any candidate with the same item id as row i's
/// positive. logits = (q . k) * inv_temperature - logQ(k).
///
/// @param q           [N, D] queries (user states), L2-normalised
/// @param pos         [N, D] positive item vectors, L2-normalised
/// @param pos_ids     [N] int64 positive item ids
/// @param owner       [N] int64 user index of each row
/// @param neg         [M, D] uniform negative vectors (M may be 0)
/// @param neg_ids     [M] int64
/// @param log_q_pos   [N] log in-batch sampling probability of each positive (undefined: none)
/// @param log_q_uniform log(1/V) for the uniform negatives (ignored when log_q_pos undefined)
/// @param inv_temperature scalar tensor (learned or fixed) = 1 / temperature
torch::Tensor sampled_softmax_loss(const torch::Tensor& q, const torch::Tensor& pos,
                                   const torch::Tensor& pos_ids, const torch::Tensor& owner,
                                   const torch::Tensor& neg, const torch::Tensor& neg_ids,
                                   const torch::Tensor& log_q_pos, double log_q_uniform,
                                   const torch::Tensor& inv_temperature);

/// The same loss row by row, for distributed training where the candidate set is the
/// global batch: the queries q [Nq, D] are rows [q_offset, q_offset + Nq) of the candidate
/// set pos [Nk, D] / pos_ids [Nk] / owner [Nk] / log_q_pos [Nk] (gathered from every rank).
/// Returns the per-query losses [Nq] (no reduction), so ranks can sum and normalise by the
/// global count. sampled_softmax_loss(...) == sampled_softmax_rows(q, 0, ...).mean().
torch::Tensor sampled_softmax_rows(const torch::Tensor& q, int64_t q_offset, const torch::Tensor& pos,
                                   const torch::Tensor& pos_ids, const torch::Tensor& owner,
                                   const torch::Tensor& neg, const torch::Tensor& neg_ids,
                                   const torch::Tensor& log_q_pos, double log_q_uniform,
                                   const torch::Tensor& inv_temperature);

/// Exact softmax over the whole item table, for catalogues no larger than the sampled
/// candidate set (then it is cheaper too): row i's query q [Nq, D] must pick targets[i] among
/// all items [first_item, V) of items [V, D]; items that are targets of other rows of the same
/// owner [Nq] are masked out (a user's other positives are not negatives, as in
/// sampled_softmax_rows). No logQ: nothing is sampled. Returns per-row losses [Nq].
torch::Tensor full_softmax_rows(const torch::Tensor& q, const torch::Tensor& targets, const torch::Tensor& owner,
                                const torch::Tensor& items, const torch::Tensor& inv_temperature,
                                int64_t first_item = 2);

/// Multi-label purchase BCE: logits [B, C], labels [B, C] in {0,1}, optional weight [B, C]
/// (0 = unknown label). Mean over weighted entries.
torch::Tensor purchase_bce_loss(const torch::Tensor& logits, const torch::Tensor& labels,
                                const torch::Tensor& weight = {});

/// Symmetric CLIP/InfoNCE between two views of the same users: a [B, D], b [B, D]
/// (normalised), valid [B] bool (rows where both views exist). Row i's positive is column i.
/// Returns 0 (with a graph) when fewer than 2 rows are valid.
torch::Tensor clip_loss(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& valid,
                        const torch::Tensor& inv_temperature);

/// CLIP against a global batch: local rows a_loc/b_loc [n, D] with valid_loc [n] are rows
/// [offset, offset + n) of the gathered a_all/b_all [N, D], valid_all [N]. Returns the SUM
/// over the local valid rows of both directions' cross-entropies (a->b and b->a), so that
/// clip_loss == 0.5 * sum over all ranks / (number of valid rows).
torch::Tensor clip_loss_rows_sum(const torch::Tensor& a_loc, const torch::Tensor& b_loc,
                                 const torch::Tensor& valid_loc, const torch::Tensor& a_all,
                                 const torch::Tensor& b_all, const torch::Tensor& valid_all, int64_t offset,
                                 const torch::Tensor& inv_temperature);

/// Masked-item (BERT4Rec-style) loss with full softmax over items: states [N, D] at masked
/// positions, targets [N] item ids, items [V, D] all item vectors.
torch::Tensor masked_item_loss(const torch::Tensor& states, const torch::Tensor& targets,
                               const torch::Tensor& items, const torch::Tensor& inv_temperature);

/// A learned inverse temperature, CLIP-style: stored as log(1/t), clamped to [1, max_inv].
struct LearnedTemperatureImpl : torch::nn::Module {
  LearnedTemperatureImpl(double init_temperature, bool learnable, double max_inv = 100.0);
  torch::Tensor forward();  ///< scalar 1/t
  torch::Tensor log_inv;
  double max_inv;
};
TORCH_MODULE(LearnedTemperature);

}  // namespace portrait
