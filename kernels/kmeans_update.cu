// CUDA k-means update steps (rules in kmeans.h): exact per-cluster sums in 64-bit fixed
// point with integer atomics (shared-memory pre-aggregation when k * d is small), so the sums
// do not depend on scheduling; per-4096-point inertia partials summed on the host in order;
// max |x| for the fixed-point scale; row gathers for k-means++.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/cuda_util.cuh"
#include "kernels/kmeans_launch.cuh"
#include "kernels/tile_gemm.cuh"

namespace portrait::kernels::kmeans_cuda_detail {

using cuda_detail::bf16;

namespace {

// Exact (integer) per-cluster sums: deterministic whatever the atomic order.
template <typename T>
__global__ void accumulate_kernel(const T* __restrict__ X, int64_t n, int d,
                                  const int32_t* __restrict__ assign,
                                  const float* __restrict__ inv_norm, double scale, int k,
                                  unsigned long long* sums, unsigned long long* counts,
                                  bool use_smem) {
  extern __shared__ __align__(16) unsigned char smem[];
  unsigned long long* s_sums = reinterpret_cast<unsigned long long*>(smem);
  unsigned long long* s_counts = s_sums + static_cast<int64_t>(k) * d;
  const int64_t kd = static_cast<int64_t>(k) * d;
  if (use_smem) {
    for (int64_t i = threadIdx.x; i < kd + k; i += blockDim.x) s_sums[i] = 0ull;
    __syncthreads();
  }
  unsigned long long* ts = use_smem ? s_sums : sums;
  unsigned long long* tc = use_smem ? s_counts : counts;
  const int64_t total = n * d;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / d;
    const int j = static_cast<int>(idx - i * d);
    const int c = assign[i];
    float v = cuda_detail::load_f32(X + idx);
    if (inv_norm != nullptr) v *= inv_norm[i];
    const long long q = __double2ll_rn(static_cast<double>(v) * scale);
    atomicAdd(ts + static_cast<int64_t>(c) * d + j, static_cast<unsigned long long>(q));
    if (j == 0) atomicAdd(tc + c, 1ull);
  }
  if (use_smem) {
    __syncthreads();
    for (int64_t i = threadIdx.x; i < kd; i += blockDim.x)
      if (s_sums[i] != 0ull) atomicAdd(sums + i, s_sums[i]);
    for (int64_t i = threadIdx.x; i < k; i += blockDim.x)
      if (s_counts[i] != 0ull) atomicAdd(counts + i, s_counts[i]);
  }
}

// partial[b] = sum of dist over points [b*4096, (b+1)*4096), in a fixed order.
__global__ void inertia_partial_kernel(const float* __restrict__ dist, int64_t n,
                                       double* __restrict__ partial) {
  __shared__ double red[kThreads];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kInertiaBlock;
  double s = 0.0;
  for (int t = threadIdx.x; t < kInertiaBlock; t += kThreads) {
    const int64_t i = base + t;
    if (i < n) s += dist[i];
  }
  red[threadIdx.x] = s;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (threadIdx.x < o) red[threadIdx.x] += red[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

// max |x| as float bits (monotone for non-negative floats; inf/NaN compare above finite).
template <typename T>
__global__ void max_abs_kernel(const T* __restrict__ X, int64_t total,
                               unsigned int* __restrict__ out) {
  unsigned int m = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    m = max(m, __float_as_uint(cuda_detail::load_f32(X + i)) & 0x7fffffffu);
  for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) atomicMax(out, m);
}

template <typename T>
__global__ void gather_kernel(const T* __restrict__ X, int d, const int64_t* __restrict__ idx,
                              int64_t m, float* __restrict__ out) {
  const int64_t total = m * d;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / d;
    out[e] = cuda_detail::load_f32(X + idx[r] * d + (e - r * d));
  }
}

unsigned stride_grid(int64_t work) {
  const int64_t cap = 8LL * cuda_detail::sm_count();
  return static_cast<unsigned>(std::clamp<int64_t>((work + kThreads - 1) / kThreads, 1, cap));
}

}  // namespace

bool accumulate_prepare_smem(int k, int d) {
  const size_t smem = (static_cast<size_t>(k) * d + k) * sizeof(unsigned long long);
  const bool use_smem =
      smem <= kSmemAccumulateMax && static_cast<int>(smem) <= cuda_detail::max_dynamic_smem();
  if (use_smem) {
    CUDA_CHECK(cudaFuncSetAttribute(accumulate_kernel<float>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)));
    CUDA_CHECK(cudaFuncSetAttribute(accumulate_kernel<bf16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)));
  }
  return use_smem;
}

template <typename T>
void launch_accumulate(const T* x, int64_t n, int d, const int32_t* assign,
                       const float* inv_norm, double scale, int k, unsigned long long* sums,
                       unsigned long long* counts, bool use_smem, cudaStream_t stream) {
  const size_t smem = use_smem ? (static_cast<size_t>(k) * d + k) * 8 : 0;
  accumulate_kernel<T><<<stride_grid(n * d), kThreads, smem, stream>>>(
      x, n, d, assign, inv_norm, scale, k, sums, counts, use_smem);
  CUDA_CHECK_LAUNCH();
}

void launch_inertia_partials(const float* dist, int64_t n, double* partial, cudaStream_t stream) {
  const int64_t blocks = (n + kInertiaBlock - 1) / kInertiaBlock;
  inertia_partial_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(dist, n,
                                                                                partial);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_max_abs(const T* x, int64_t total, unsigned int* out, cudaStream_t stream) {
  if (total <= 0) return;
  max_abs_kernel<T><<<stride_grid(total), kThreads, 0, stream>>>(x, total, out);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_gather(const T* x, int d, const int64_t* idx, int64_t m, float* out,
                   cudaStream_t stream) {
  gather_kernel<<<stride_grid(m * d), kThreads, 0, stream>>>(x, d, idx, m, out);
  CUDA_CHECK_LAUNCH();
}

#define PORTRAIT_KMEANS_UPDATE_INSTANTIATE(T)                                                  \
  template void launch_accumulate<T>(const T*, int64_t, int, const int32_t*, const float*,     \
                                     double, int, unsigned long long*, unsigned long long*,    \
                                     bool, cudaStream_t);                                      \
  template void launch_max_abs<T>(const T*, int64_t, unsigned int*, cudaStream_t);             \
  template void launch_gather<T>(const T*, int, const int64_t*, int64_t, float*, cudaStream_t);
PORTRAIT_KMEANS_UPDATE_INSTANTIATE(float)
PORTRAIT_KMEANS_UPDATE_INSTANTIATE(bf16)
#undef PORTRAIT_KMEANS_UPDATE_INSTANTIATE

}  // namespace portrait::kernels::kmeans_cuda_detail
