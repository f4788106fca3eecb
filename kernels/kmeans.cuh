// CUDA backends for k-means (loop, init and determinism rules in kmeans.h).
//
// Assignment: one fused kernel per point tile computes the distance GEMM against centroid
// tiles and keeps a per-row running argmin of |c|^2 - 2 x.c (L2) or -x.c (cosine) in
// registers: the N x K distance matrix never reaches global memory. The GEMM runs on tensor
// cores (tc_tile.cuh: mma.sync TF32 / 3xTF32 / BF16 with fp32 accumulation, 128 x 128 tiles)
// or on CUDA cores (tile_gemm.cuh, fp32, 64 x 128 tiles), selected by KMeansParams::math
// (default: TF32 for fp32 input, BF16 for bf16 input; see kmeans.h for the precision
// consequences). The winner's distance is then recomputed in fp32 in the direct form
// (sum of squared differences / 1 - cos), so `dist` and inertia have fp32 accuracy in every
// mode. Update: every coordinate is rounded to 64-bit fixed point and added with integer
// atomics (shared-memory pre-aggregation when K*d is small), so the sums are exact and
// independent of scheduling. Inertia: per-4096-point double partials summed on the host in
// order.
//
// bf16 input (bf16_bits = raw torch.bfloat16 / __nv_bfloat16 bits) is read as bf16 and
// widened in registers; centroids, sums and distances stay fp32. kmeans_cpu(const
// bf16_bits*, ...) is the matching CPU reference.
//
// Files: kmeans_assign.cu (assignment kernels), kmeans_update.cu (sums, inertia, max |x|,
// gathers), kmeans_backends.cu (device-resident and host-streaming backends); their shared
// launchers are declared in kmeans_launch.cuh. Host code that only holds host pointers
// calls kernels/dispatch.h instead.
#pragma once

#include <cuda_runtime.h>

#include "kernels/kmeans.h"

namespace portrait::kernels {

/// x: DEVICE [n, d] fp32 (stays resident; nothing is copied). Host loop as kmeans_cpu; the
/// returned vectors live on the host. Synchronises `stream` at every iteration.
KMeansResult kmeans_cuda(const float* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream);
/// Same with DEVICE bf16 input.
KMeansResult kmeans_cuda(const bf16_bits* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream);

/// x: HOST [n, d] fp32, streamed to the GPU in chunks of params.chunk_rows (default 1<<18,
/// rounded up to a multiple of 4096 so inertia partials match the device path) every
/// iteration, double-buffered: the H2D copy of chunk i+1 (from pinned staging buffers, or
/// straight from x if x is already page-locked) overlaps the kernels of chunk i on a second,
/// non-blocking stream. Results are bit-identical to kmeans_cuda on the same data. Device
/// memory: 2 chunks of x plus 4-8 bytes per point (assignments, one chunk of distances).
/// Page-locking x (cudaHostRegister) skips the CPU staging copy.
KMeansResult kmeans_cuda_streaming(const float* x, int64_t n, int d, const KMeansParams& params,
                                   cudaStream_t stream);
/// Same with HOST bf16 input (half the PCIe traffic).
KMeansResult kmeans_cuda_streaming(const bf16_bits* x, int64_t n, int d,
                                   const KMeansParams& params, cudaStream_t stream);

/// Assignment step alone, all DEVICE pointers: assign[n] = nearest of centroids [k, d]
/// (unit-norm for cosine; lowest index among exactly equal scores), dist[n] its distance
/// (squared L2, or 1 - cos), recomputed in fp32 for the winner. The argmin uses the form
/// |c|^2 - 2 x.c in `math` precision (kAuto: TF32 for fp32 x, BF16 for bf16 x on sm_80+),
/// which rounds differently from the CPU's sum of squared differences, so near-ties may
/// pick another (almost equally near) centroid: within fp32 rounding for kSimt / kTf32x3,
/// within ~4u * sum_j |x_j c_j| (u = 2^-11 TF32, 2^-9 BF16) otherwise.
void kmeans_assign_cuda(const float* x, int64_t n, int d, const float* centroids, int k,
                        Metric metric, int32_t* assign, float* dist, cudaStream_t stream,
                        MathMode math = MathMode::kAuto);
/// Same with bf16 points (centroids stay fp32).
void kmeans_assign_cuda(const bf16_bits* x, int64_t n, int d, const float* centroids, int k,
                        Metric metric, int32_t* assign, float* dist, cudaStream_t stream,
                        MathMode math = MathMode::kAuto);

}  // namespace portrait::kernels
