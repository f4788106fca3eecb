// CUDA launchers for the fused purchase-probability heads (semantics in heads.h).
//
// One kernel per 32-user tile: hidden = act(X W1^T + b1) is built in shared memory with the
// smem-tiled fp32 GEMM (tile_gemm.cuh), logits are warp dot-products against W2, then
// either the probabilities are stored or they feed per-head running top-M lists (the same
// warp-ballot selection as top-k search). For top-M the users are split over gridDim.x and
// heads over gridDim.y in groups whose lists fit in shared memory (each group recomputes
// the hidden layer); per-split lists are merged with the top-k merge kernel.
#pragma once

#include <cuda_runtime.h>

#include "kernels/heads.h"

namespace portrait::kernels {

/// Device pointers: x [n, d] fp32, weights (see HeadsWeights), probs [n, C].
void heads_probs_cuda(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                      float* probs, cudaStream_t stream);
/// Same with bf16 input (device buffer of __nv_bfloat16 / torch.bfloat16 bits).
void heads_probs_cuda(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                      const HeadsParams& p, float* probs, cudaStream_t stream);

/// Device pointers: top-M users per head, out_probs [C, m] and out_ids [C, m] int64, best
/// first; n < 2^31. Contract as heads_topm_cpu (NaN never selected, -1 / -inf fill).
void heads_topm_cuda(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                     int m, float* out_probs, int64_t* out_ids, cudaStream_t stream);
/// Same with bf16 input.
void heads_topm_cuda(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                     const HeadsParams& p, int m, float* out_probs, int64_t* out_ids,
                     cudaStream_t stream);

}  // namespace portrait::kernels
