#include <cuda_bf16.h>

#include <cstdint>
#include <stdexcept>

#include "kernels/cuda_check.h"
#include "kernels/cuda_util.cuh"
#include "kernels/l2_normalize.cuh"

namespace portrait::kernels {

namespace {

constexpr int kWarpsPerBlock = 8;

using cuda_detail::warp_sum;

// Plain (coherent) loads: mode 0 may run in place (out == x).
__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }

// mode 0: normalise rows into out; 1: write 1/|x| (0 for zero rows); 2: write |x|^2.
// T = float or __nv_bfloat16 (modes 1 and 2 only for bf16).
template <typename T>
__global__ void row_norm_kernel(const T* __restrict__ x, float* __restrict__ out,
                                float* __restrict__ scalar_out, int64_t n, int d, int mode) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= n) return;
  const T* r = x + row * d;
  float ss = 0.f;
  for (int j = lane; j < d; j += 32) {
    const float v = ld(r + j);
    ss = fmaf(v, v, ss);
  }
  ss = warp_sum(ss);
  if (mode == 2) {
    if (lane == 0) scalar_out[row] = ss;
    return;
  }
  const float inv = ss > 0.f ? rsqrtf(ss) : (ss == 0.f ? 0.f : __int_as_float(0x7fc00000));
  if (mode == 1) {
    if (lane == 0) scalar_out[row] = inv;
    return;
  }
  float* o = out + row * d;
  for (int j = lane; j < d; j += 32) o[j] = ld(r + j) * inv;
}

template <typename T>
void launch(const T* x, float* out, float* scalar_out, int64_t n, int d, int mode,
            cudaStream_t stream) {
  if (n < 0 || d <= 0) throw std::invalid_argument("row norms: need n >= 0 and d > 0");
  if (n == 0) return;
  const int64_t blocks = (n + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("row norms: n too large");
  row_norm_kernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
      x, out, scalar_out, n, d, mode);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void l2_normalize_cuda(const float* x, float* out, int64_t n, int d, cudaStream_t stream) {
  launch(x, out, nullptr, n, d, 0, stream);
}

void row_inv_norms_cuda(const float* x, float* inv_norm, int64_t n, int d,
                        cudaStream_t stream) {
  launch(x, nullptr, inv_norm, n, d, 1, stream);
}

void row_sq_norms_cuda(const float* x, float* sq_norm, int64_t n, int d, cudaStream_t stream) {
  launch(x, nullptr, sq_norm, n, d, 2, stream);
}

void row_inv_norms_cuda(const bf16_bits* x, float* inv_norm, int64_t n, int d,
                        cudaStream_t stream) {
  launch(cuda_detail::as_dev(x), nullptr, inv_norm, n, d, 1, stream);
}

void row_sq_norms_cuda(const bf16_bits* x, float* sq_norm, int64_t n, int d,
                       cudaStream_t stream) {
  launch(cuda_detail::as_dev(x), nullptr, sq_norm, n, d, 2, stream);
}

}  // namespace portrait::kernels
