// CUDA backends for k-means (loop, init and determinism rules in kmeans.h).
//
// Assignment: one fused kernel per 64-point tile runs the smem-tiled fp32 GEMM against
// 128-centroid tiles and keeps a per-row running argmin in registers (|c|^2 - 2 x.c for L2,
// -x.c for cosine), reduced across the 16 threads that share a row: the N x K distance
// matrix never reaches global memory. Update: every coordinate is rounded to 64-bit fixed
// point and added with integer atomics (shared-memory pre-aggregation when K*d is small),
// so the sums are exact and independent of scheduling. Inertia: per-4096-point double
// partials summed on the host in order.
#pragma once

#include <cuda_runtime.h>

#include "kernels/kmeans.h"

namespace portrait::kernels {

/// x: DEVICE [n, d] fp32 (stays resident; nothing is copied). Host loop as kmeans_cpu; the
/// returned vectors live on the host. Synchronises `stream` at every iteration.
KMeansResult kmeans_cuda(const float* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream);

/// x: HOST [n, d] fp32, streamed to the GPU in chunks of params.chunk_rows (default 1<<20,
/// rounded to a multiple of 4096 so inertia partials match the device path) every
/// iteration. For data that does not fit in GPU memory; pin x for full bandwidth.
KMeansResult kmeans_cuda_streaming(const float* x, int64_t n, int d, const KMeansParams& params,
                                   cudaStream_t stream);

/// Assignment step alone, all DEVICE pointers: assign[n] = nearest of centroids [k, d]
/// (unit-norm for cosine; lowest index among exactly equal scores), dist[n] its distance
/// (squared L2, or 1 - cos). The L2 form |x|^2 + |c|^2 - 2 x.c rounds differently from the
/// CPU's sum of squared differences, so near-ties may pick another (equally near) centroid.
void kmeans_assign_cuda(const float* x, int64_t n, int d, const float* centroids, int k,
                        Metric metric, int32_t* assign, float* dist, cudaStream_t stream);

}  // namespace portrait::kernels
