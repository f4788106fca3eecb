// Helpers shared by the .cu files of kernels/: the public -> device element type shim
// (bf16_bits is the host spelling of __nv_bfloat16), a warp reduction, and the device
// attributes launchers size their grids and shared memory by. CUDA headers only, no torch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/common.h"
#include "kernels/cuda_check.h"

namespace portrait::kernels::cuda_detail {

using bf16 = __nv_bfloat16;

/// Public pointer (float / bf16_bits) -> the element type the kernels read (float / bf16).
template <typename T>
const T* as_dev(const T* p) { return p; }
inline const bf16* as_dev(const bf16_bits* p) { return reinterpret_cast<const bf16*>(p); }

/// True for the bf16 overloads of the public launchers.
template <typename P>
constexpr bool is_bf16_v = std::is_same_v<P, bf16_bits>;

/// Host-side widening of one public element to fp32.
inline float host_to_f32(float v) { return v; }
inline float host_to_f32(bf16_bits v) { return bf16_to_float(v); }

/// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Upper bound of dynamic shared memory per block on the current device (opt-in limit).
inline int max_dynamic_smem() {
  int dev = 0, bytes = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return bytes;
}

/// Streaming multiprocessors of the current device.
inline int sm_count() {
  int dev = 0, n = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

}  // namespace portrait::kernels::cuda_detail
