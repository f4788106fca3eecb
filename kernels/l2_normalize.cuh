// CUDA launcher for l2_normalize (see l2_normalize.h for semantics).
#pragma once

#include <cuda_runtime.h>

#include "kernels/l2_normalize.h"

namespace portrait::kernels {

/// Device pointers x, out: [n, d] row-major fp32 (out may equal x). One warp per row; the
/// sum of squares is reduced in float by a warp tree, so results differ from the CPU twin by
/// a few ulps. Asynchronous on `stream`.
void l2_normalize_cuda(const float* x, float* out, int64_t n, int d, cudaStream_t stream);

/// Device pointers: inv_norm[i] = 1/|x[i]| (0 for zero rows) for x [n, d]; used by the cosine
/// paths of top-k and k-means so the database is never copied.
void row_inv_norms_cuda(const float* x, float* inv_norm, int64_t n, int d, cudaStream_t stream);

/// Device pointers: sq_norm[i] = |x[i]|^2 for x [n, d]; used by the squared-L2 paths.
void row_sq_norms_cuda(const float* x, float* sq_norm, int64_t n, int d, cudaStream_t stream);

/// bf16 input (device buffer of __nv_bfloat16 / torch.bfloat16 bits), fp32 math and output.
void row_inv_norms_cuda(const bf16_bits* x, float* inv_norm, int64_t n, int d,
                        cudaStream_t stream);
/// bf16 input, fp32 math and output.
void row_sq_norms_cuda(const bf16_bits* x, float* sq_norm, int64_t n, int d,
                       cudaStream_t stream);

}  // namespace portrait::kernels
