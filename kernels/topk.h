// Exact top-k similarity search: queries [q, d] against a database [n, d] (row-major fp32, or
// bf16 for both).
//
// Result contract (CPU and CUDA alike):
//  * out_scores / out_ids are [q, k] row-major, best first. IP / cosine return similarities
//    (higher is better); L2 returns squared distances (lower is better).
//  * Order is total: by score, then by smaller database id. The CPU twin follows it exactly;
//    the GPU computes scores in a different summation order, so near-ties may resolve to a
//    different (equally valid) id.
//  * A candidate is returned only if its score is strictly better than the fill value:
//    NaN scores, -inf similarities and +inf distances are never selected (they are treated
//    like excluded ids). +inf similarities are valid and rank first.
//  * When fewer than k candidates qualify (k > n, exclusions, NaN), the remaining slots hold
//    id -1 and the fill score: -inf for IP/cosine, +inf for L2.
//  * Cosine: rows are scaled by 1/|row| (zero rows score 0 against everything).
//  * CPU arithmetic (defines the scores bit for bit): IP s = dot_ref(q, x) and L2
//    s = sqdiff_ref(q, x) (one sequential fp32 FMA chain over j, kernels/cpu_gemm.h);
//    cosine s = dot_ref(q * (1/|q|), x) * (1/|x|): the database's inverse norms are applied
//    once per score, never folded into the rows. topk_cpu (blocked SIMD) and
//    detail::topk_reference_cpu (plain loops, the tests' oracle) return identical scores and
//    ids, ties included, for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common.h"

namespace portrait::kernels {

/// Largest supported k.
inline constexpr int kTopKMax = 1024;

/// Options for top-k search.
struct TopKParams {
  /// Results per query, 1 <= k <= kTopKMax. k > n is allowed (see fill rule above).
  int k = 10;
  /// Similarity or distance.
  Metric metric = Metric::kInnerProduct;
  /// Skip database id (i + self_offset) for query i (query set == database, shifted).
  bool exclude_self = false;
  /// Offset used by exclude_self: query i is database row i + self_offset.
  int64_t self_offset = 0;
  /// Optional CSR exclusion lists: ids exclude_ids[exclude_offsets[i] .. exclude_offsets[i+1])
  /// (sorted ascending, global database ids) are never returned for query i.
  /// exclude_offsets has q+1 entries. Both null = no lists. Host pointers for the CPU and
  /// host-streaming APIs, device pointers for the device-resident CUDA API.
  const int64_t* exclude_offsets = nullptr;
  /// See exclude_offsets.
  const int64_t* exclude_ids = nullptr;
  /// CPU threads (0 = all cores). CUDA: only the host-streaming path uses them (staging
  /// copies into pinned buffers).
  int num_threads = 0;
  /// CUDA only: arithmetic of the score GEMM (see MathMode in common.h). kAuto = kTf32x3 for
  /// fp32 input and kBf16 for bf16 input (kSimt on GPUs below sm_80). Why: exact search
  /// promises recall 1.0 against an fp32 reference (ties aside). 3xTF32 keeps scores at
  /// fp32-SIMT accuracy while running on tensor cores; plain kTf32 (2-3x faster again) makes
  /// scores ~1e-3 relative approximate, so near-ties at the k-th boundary may swap (recall
  /// slightly below 1 on dense data) and reported scores carry that error. With bf16 queries
  /// and database every product is exact in BF16/TF32 MMAs, so kAuto loses nothing there
  /// (kTf32x3 is treated as kTf32 for bf16 input). Non-finite inputs: NaN coordinates are
  /// never selected in any mode; an explicit +-inf coordinate can become a NaN score under
  /// kTf32x3 (inf * 0 in a correction product) and is then dropped, where kSimt / kTf32 /
  /// kBf16 rank an inf similarity first as described above.
  MathMode math = MathMode::kAuto;
};

/// Fill score for empty result slots: -inf for similarities, +inf for L2 distances.
float topk_fill_score(Metric metric);

/// Throws std::invalid_argument for out-of-range sizes / k.
void topk_validate(int64_t q, int64_t n, int d, const TopKParams& params);

/// CPU fallback: blocks of up to 256 queries against the packed database (kernels/cpu_gemm.h
/// micro-kernel, 1024-item score tiles consumed at once by a running top-k per query),
/// parallel over query blocks with kernels/parallel.h threads. Extra memory: one packed copy
/// of the database when it is at most 256 MiB, else per-thread 1024-item blocks.
/// queries [q, d], database [n, d]; out_scores [q, k], out_ids [q, k] (host pointers).
void topk_cpu(const float* queries, int64_t q, const float* database, int64_t n, int d,
              const TopKParams& params, float* out_scores, int64_t* out_ids);
/// Same with bf16 queries and database (raw bits, see common.h), widened exactly to fp32
/// while packing: the reference for the CUDA bf16 paths.
void topk_cpu(const bf16_bits* queries, int64_t q, const bf16_bits* database, int64_t n, int d,
              const TopKParams& params, float* out_scores, int64_t* out_ids);

namespace detail {
/// The exact reference: plain loops, one query at a time, same arithmetic and contract as
/// topk_cpu (single-threaded; the tests' oracle).
void topk_reference_cpu(const float* queries, int64_t q, const float* database, int64_t n,
                        int d, const TopKParams& params, float* out_scores, int64_t* out_ids);
/// Tests only (not thread-safe): the largest packed database (floats) topk_cpu shares
/// between threads instead of packing per block; returns the previous value.
size_t topk_set_shared_pack_budget(size_t floats);
}  // namespace detail

}  // namespace portrait::kernels
