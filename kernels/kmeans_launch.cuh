// Launchers shared by the three CUDA k-means files (public API and rules in kmeans.cuh and
// kmeans.h): kmeans_assign.cu (nearest-centroid kernels), kmeans_update.cu (exact fixed-point
// sums, inertia partials, max |x|, gathers) and kmeans_backends.cu (device-resident and
// host-streaming backends of the shared host loop). Device element types only (float or
// __nv_bfloat16); every launcher is asynchronous on `stream` and checks its launch.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common.h"

namespace portrait::kernels::kmeans_cuda_detail {

/// Threads per block of every k-means kernel.
inline constexpr int kThreads = 256;
/// Points per inertia partial; matches the CPU twin, so sums run over the same blocks.
inline constexpr int kInertiaBlock = 4096;
/// Points per block of the SIMT assignment kernel (the smallest assignment tile): bounds n.
inline constexpr int kAssignMinRowsPerBlock = 64;
/// Largest shared-memory copy of the [k, d] sums + [k] counts the update kernel keeps.
inline constexpr size_t kSmemAccumulateMax = 96 * 1024;

/// Arguments of one assignment launch (all device pointers).
template <typename T>
struct AssignArgs {
  const T* X;            // [n, d] points
  int64_t n;
  int d;
  bool vec_x;            // 16-byte vector loads of X are valid (tensor-core kernels)
  const float* C;        // [k, d] centroids (unit norm for cosine)
  int k;
  bool vec_c;
  const float* c_sq;     // [k] |c|^2 (L2 only)
  const float* x_inv;    // [n] 1/|x| (cosine only)
  bool cosine;
  int32_t* assign;       // [n] out
  float* dist;           // [n] out
};

/// Fills AssignArgs, deciding the vector-load flags from the pointers' alignment.
template <typename T>
AssignArgs<T> make_assign_args(const T* x, int64_t n, int d, const float* centroids, int k,
                               const float* c_sq, const float* x_inv, bool cosine,
                               int32_t* assign, float* dist);

/// The math mode of an assignment: kAuto -> TF32 (fp32 input) / BF16 (bf16 input) on sm_80+.
MathMode kmeans_math(MathMode requested, bool bf16_input);

/// Nearest centroid and its fp32 distance for every point; `math` already resolved.
template <typename T>
void launch_assign(const AssignArgs<T>& a, MathMode math, cudaStream_t stream);

/// Whether the [k, d] sums fit shared memory; when they do, also opts the update kernels in
/// to that much dynamic shared memory. Call once per run before launch_accumulate.
bool accumulate_prepare_smem(int k, int d);

/// sums [k, d] += round(x * scale (cosine: x * inv_norm[i] * scale)), counts [k] += 1 per
/// point of its cluster assign[i], in exact integer arithmetic. inv_norm null for L2.
template <typename T>
void launch_accumulate(const T* x, int64_t n, int d, const int32_t* assign,
                       const float* inv_norm, double scale, int k, unsigned long long* sums,
                       unsigned long long* counts, bool use_smem, cudaStream_t stream);

/// partial[b] = sum of dist over points [b * kInertiaBlock, (b + 1) * kInertiaBlock), n > 0.
void launch_inertia_partials(const float* dist, int64_t n, double* partial, cudaStream_t stream);

/// atomicMax of |x| (float bits) over x [total] into *out (zeroed by the caller).
template <typename T>
void launch_max_abs(const T* x, int64_t total, unsigned int* out, cudaStream_t stream);

/// out [m, d] (fp32) = rows idx [m] of x [*, d].
template <typename T>
void launch_gather(const T* x, int d, const int64_t* idx, int64_t m, float* out,
                   cudaStream_t stream);

}  // namespace portrait::kernels::kmeans_cuda_detail
