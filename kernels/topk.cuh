// CUDA launchers for exact top-k search (semantics in topk.h).
//
// Design: one fused kernel computes a [BQ, 128] score tile, turns it into keys (IP, cosine
// via precomputed 1/|row|, L2 via |q|^2 + |x|^2 - 2 q.x) in shared memory and feeds each
// query's running top-k list in shared memory (select.cuh). The score tile comes from
// tensor cores (tc_tile.cuh: 3xTF32 by default for fp32, BF16 for bf16 input) or from the
// fp32 SIMT tile (tile_gemm.cuh), per TopKParams::math; the key tile aliases the GEMM's
// operand buffers. BQ = 64 queries for k <= 128, 16 above (lists must fit in smem). The
// database is split over gridDim.y so small query batches still fill the GPU; each (query,
// split) list goes to a small [q, splits, k] buffer and a merge kernel bitonic-sorts splits
// + the running result. The q x n score matrix never reaches global memory.
#pragma once

#include <cuda_runtime.h>

#include "kernels/topk.h"

namespace portrait::kernels {

/// Device-resident search. queries [q, d], database [n, d], out_scores [q, k] fp32 and
/// out_ids [q, k] int64 are device pointers; so are params.exclude_offsets / exclude_ids.
/// Temporary buffers come from cudaMallocAsync on `stream`; asynchronous w.r.t. the host.
/// Databases with more than 2^30 rows are processed in slices of 2^30 (ids stay global).
void topk_cuda(const float* queries, int64_t q, const float* database, int64_t n, int d,
               const TopKParams& params, float* out_scores, int64_t* out_ids,
               cudaStream_t stream);
/// Same with DEVICE bf16 queries and database (__nv_bfloat16 / torch.bfloat16 bits).
void topk_cuda(const bf16_bits* queries, int64_t q, const bf16_bits* database, int64_t n,
               int d, const TopKParams& params, float* out_scores, int64_t* out_ids,
               cudaStream_t stream);

/// Database larger than GPU memory: every pointer (queries, database, exclusion lists,
/// outputs) is a HOST pointer. The database is copied in chunks of `chunk_rows` rows
/// (0 = about 256 MiB per chunk; any value >= 1 is allowed) and each chunk's top-k is merged
/// into the running result on the device. Copies are double-buffered: chunk i+1 is staged
/// into pinned memory (params.num_threads CPU threads) and copied on a second, non-blocking
/// stream while chunk i is searched; results are identical to a non-overlapped loop.
/// A page-locked `database` (cudaHostRegister) skips the staging copy. Synchronises
/// `stream` before returning.
void topk_cuda_streaming(const float* queries, int64_t q, const float* database, int64_t n,
                         int d, const TopKParams& params, float* out_scores, int64_t* out_ids,
                         cudaStream_t stream, int64_t chunk_rows = 0);
/// Same with HOST bf16 queries and database.
void topk_cuda_streaming(const bf16_bits* queries, int64_t q, const bf16_bits* database,
                         int64_t n, int d, const TopKParams& params, float* out_scores,
                         int64_t* out_ids, cudaStream_t stream, int64_t chunk_rows = 0);

namespace detail {

/// Merges, per row, `parts` unsorted candidate lists part_keys/part_ids [rows, parts, k]
/// (keys higher-is-better, id -1 = empty) with the running list run_keys/run_ids [rows, k]
/// and writes the best k back to run_*, best first (key desc, id asc). Ids must be unique
/// per row. Shared with the heads' top-M. Sorts at most kTopKMergeMax entries per launch.
inline constexpr int kTopKMergeMax = 8192;
void topk_merge_cuda(const float* part_keys, const int64_t* part_ids, int64_t rows, int parts,
                     int k, float* run_keys, int64_t* run_ids, cudaStream_t stream);

/// Fills run_keys with -inf and run_ids with -1 ([rows, k]).
void topk_init_running_cuda(float* run_keys, int64_t* run_ids, int64_t rows, int k,
                            cudaStream_t stream);

/// In place: keys -> reported scores (L2: -key), empty slots -> fill score.
void topk_finalize_cuda(float* keys, const int64_t* ids, int64_t count, Metric metric,
                        cudaStream_t stream);

}  // namespace detail
}  // namespace portrait::kernels
