// Block-tiled SIMT fp32 GEMM building block shared by the fused kernels (top-k scores,
// k-means distances, MLP hidden layer). Readable llm.c-style tiling on CUDA cores: results
// match the CPU twins to fp32 rounding, which keeps top-k/argmin ties testable. It is the
// MathMode::kSimt path of k-means and top-k (and the only path of the heads); the tensor-core
// paths use tc_tile.cuh.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace portrait::kernels::cuda_detail {

__device__ __forceinline__ float load_f32(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}

/// Shared-memory floats needed by tile_gemm_nt for the given tile.
template <int BM, int BN, int BK>
constexpr int tile_gemm_smem_floats() {
  return BK * (BM + 1) + BK * (BN + 1);
}

/// acc[i][j] += sum_t A[a0 + ty*TM + i, t] * B[b0 + tx + j*(BN/TN), t] for t in [0, d), with
/// A [m, d] and B [nb, d] row-major ("NT" GEMM), out-of-range rows read as 0.
/// Thread layout: tx = tid % (BN/TN), ty = tid / (BN/TN); blockDim.x == (BM/TM)*(BN/TN).
/// Columns are strided by BN/TN so that a warp reads consecutive sB words (no bank
/// conflicts); the +1 padding makes the transposing smem stores conflict-free too.
/// Ends with __syncthreads(), so callers may reuse smem right after.
template <int BM, int BN, int BK, int TM, int TN, typename TA, typename TB>
__device__ __forceinline__ void tile_gemm_nt(const TA* __restrict__ A, int64_t m, int64_t a0,
                                             const TB* __restrict__ B, int64_t nb, int64_t b0,
                                             int d, float* sA, float* sB,
                                             float (&acc)[TM][TN]) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  constexpr int kSA = BM + 1, kSB = BN + 1;
  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  for (int k0 = 0; k0 < d; k0 += BK) {
    for (int e = tid; e < BM * BK; e += kThreads) {
      const int r = e / BK, c = e % BK;
      const int64_t row = a0 + r;
      const int col = k0 + c;
      sA[c * kSA + r] = (row < m && col < d) ? load_f32(A + row * d + col) : 0.f;
    }
    for (int e = tid; e < BN * BK; e += kThreads) {
      const int r = e / BK, c = e % BK;
      const int64_t row = b0 + r;
      const int col = k0 + c;
      sB[c * kSB + r] = (row < nb && col < d) ? load_f32(B + row * d + col) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = sA[kk * kSA + ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = sB[kk * kSB + tx + j * (BN / TN)];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
}

}  // namespace portrait::kernels::cuda_detail
