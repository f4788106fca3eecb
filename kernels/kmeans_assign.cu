// CUDA k-means assignment: the nearest centroid of every point (rules in kmeans.cuh).
//
// One fused kernel per point tile computes the distance GEMM against centroid tiles and
// keeps a per-row running argmin of |c|^2 - 2 x.c (L2) or -x.c (cosine) in registers: the
// N x K distance matrix never reaches global memory. The GEMM runs on tensor cores
// (tc_tile.cuh: mma.sync TF32 / 3xTF32 / BF16 with fp32 accumulation, 128 x 128 tiles) or
// on CUDA cores (tile_gemm.cuh, fp32, 64 x 128 tiles), selected by KMeansParams::math. The
// winner's distance is then recomputed in fp32 in the direct form (sum of squared
// differences / 1 - cos), so `dist` and inertia have fp32 accuracy in every mode.
#include <cuda_bf16.h>

#include <cstdint>
#include <stdexcept>

#include "kernels/cuda_check.h"
#include "kernels/cuda_util.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/kmeans_launch.cuh"
#include "kernels/l2_normalize.cuh"
#include "kernels/tc_tile.cuh"
#include "kernels/tile_gemm.cuh"

namespace portrait::kernels {

namespace kmeans_cuda_detail {

using cuda_detail::bf16;
using cuda_detail::TcKind;
using cuda_detail::warp_sum;

namespace {

// SIMT tile: 64 points x 128 centroids, 4 x 8 accumulators per thread.
constexpr int kBQ = kAssignMinRowsPerBlock, kBN = 128, kBK = 16, kTQ = 4, kTN = 8;
// Tensor-core tile: 128 points x 128 centroids, 8 warps as 4 (points) x 2 (centroids), each
// warp 32 x 64 = 2 x 8 MMA tiles (64 fp32 accumulators per thread). 128 x 128 keeps the
// MMA:load ratio of a square tile while the two slab buffers need only 40 KiB of smem.
constexpr int kTcBM = 128, kTcBN = 128, kTcWarpsM = 4, kTcWarpsN = 2;

__device__ __forceinline__ bool lower(float a, int ia, float b, int ib) {
  return a < b || (a == b && ia < ib);
}

// Final step shared by every assignment kernel: s_best[r] is the winning centroid of point
// q0 + r (-1 if no score compared, i.e. all NaN). Its distance is recomputed in fp32 in the
// direct form (sum of squared differences for L2, 1 - x.c/|x| for cosine), one warp per
// point, so dist / inertia do not inherit the GEMM's precision or the cancellation of
// |x|^2 + |c|^2 - 2 x.c. The rows were just streamed through this block (L2-resident).
template <typename T>
__device__ void write_assignments(const AssignArgs<T>& a, int64_t q0, int rows,
                                  const int* s_best) {
  const int lane = threadIdx.x & 31;
  const int warps = blockDim.x >> 5;
  for (int r = threadIdx.x >> 5; r < rows; r += warps) {
    const int64_t row = q0 + r;
    if (row >= a.n) break;
    int c = s_best[r];
    if (c < 0 || c >= a.k) c = 0;
    const T* xr = a.X + row * a.d;
    const float* cr = a.C + static_cast<int64_t>(c) * a.d;
    float s = 0.f;
    for (int j = lane; j < a.d; j += 32) {
      const float xv = cuda_detail::load_f32(xr + j), cv = __ldg(cr + j);
      if (a.cosine) {
        s = fmaf(xv, cv, s);
      } else {
        const float t = xv - cv;
        s = fmaf(t, t, s);
      }
    }
    s = warp_sum(s);
    if (lane == 0) {
      a.assign[row] = c;
      a.dist[row] = a.cosine ? fmaxf(0.f, 1.f - s * a.x_inv[row]) : s;
    }
  }
}

// SIMT fp32 assignment: 64-point tiles against 128-centroid tiles (tile_gemm.cuh), running
// argmin of |c|^2 - 2 x.c (L2) or -x.c (cosine) in registers, reduced over the 16 threads
// that share a row.
template <typename T>
__global__ void __launch_bounds__(kThreads) assign_simt_kernel(AssignArgs<T> a) {
  __shared__ float sA[kBK * (kBQ + 1)];
  __shared__ float sB[kBK * (kBN + 1)];
  __shared__ int s_best[kBQ];
  const int tid = threadIdx.x;
  const int tx = tid % (kBN / kTN), ty = tid / (kBN / kTN);
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kBQ;
  float best[kTQ];
  int bidx[kTQ];
#pragma unroll
  for (int i = 0; i < kTQ; ++i) {
    best[i] = __int_as_float(0x7f800000);
    bidx[i] = 0x7fffffff;
  }
  for (int c0 = 0; c0 < a.k; c0 += kBN) {
    float acc[kTQ][kTN] = {};
    cuda_detail::tile_gemm_nt<kBQ, kBN, kBK, kTQ, kTN>(a.X, a.n, q0, a.C, a.k, c0, a.d, sA, sB,
                                                       acc);
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int col = c0 + tx + j * (kBN / kTN);
      if (col >= a.k) continue;
      const float csq = a.cosine ? 0.f : a.c_sq[col];
#pragma unroll
      for (int i = 0; i < kTQ; ++i) {
        // Row-constant terms (|x|^2, 1/|x|) do not change the argmin.
        const float s = a.cosine ? -acc[i][j] : csq - 2.f * acc[i][j];
        if (lower(s, col, best[i], bidx[i])) {
          best[i] = s;
          bidx[i] = col;
        }
      }
    }
  }
  // The 16 threads sharing a row block are 16 consecutive lanes of one warp.
#pragma unroll
  for (int i = 0; i < kTQ; ++i) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best[i], o);
      const int oi = __shfl_xor_sync(0xffffffffu, bidx[i], o);
      if (lower(ob, oi, best[i], bidx[i])) {
        best[i] = ob;
        bidx[i] = oi;
      }
    }
  }
  if (tx == 0) {
#pragma unroll
    for (int i = 0; i < kTQ; ++i) s_best[ty * kTQ + i] = bidx[i] == 0x7fffffff ? -1 : bidx[i];
  }
  __syncthreads();
  write_assignments(a, q0, kBQ, s_best);
}

// Tensor-core assignment (tc_tile.cuh): 128-point tiles against 128-centroid tiles. Each
// lane keeps a running argmin for its 4 rows (2 MMA row tiles x {g, g+8}) over its 16
// columns per centroid tile; the 4 lanes of a quad share rows (shuffle), the 2 warps that
// share rows meet in shared memory. Ties: lowest centroid index, like the CPU twin.
template <typename T, TcKind K>
__global__ void __launch_bounds__(kThreads) assign_tc_kernel(AssignArgs<T> a) {
  using Tile = cuda_detail::TcTile<kTcBM, kTcBN, kTcWarpsM, kTcWarpsN, K>;
  static_assert(Tile::kThreads == kThreads, "tile/thread mismatch");
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float s_key[kTcWarpsN][kTcBM];
  __shared__ int s_idx[kTcWarpsN][kTcBM];
  __shared__ int s_best[kTcBM];
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kTcBM;
  float best[Tile::kMT][2];
  int bidx[Tile::kMT][2];
#pragma unroll
  for (int i = 0; i < Tile::kMT; ++i) {
    best[i][0] = best[i][1] = __int_as_float(0x7f800000);
    bidx[i][0] = bidx[i][1] = 0x7fffffff;
  }
  Tile tile;
  for (int c0 = 0; c0 < a.k; c0 += kTcBN) {
    tile.compute(a.X, a.n, q0, a.vec_x, a.C, a.k, c0, a.vec_c, a.d, smem);
#pragma unroll
    for (int nt = 0; nt < Tile::kNT; ++nt) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int col = c0 + Tile::col_of(nt, j);
        if (col >= a.k) continue;
        const float csq = a.cosine ? 0.f : __ldg(a.c_sq + col);
#pragma unroll
        for (int mt = 0; mt < Tile::kMT; ++mt) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float v = tile.acc[mt][nt][2 * h + j];
            const float s = a.cosine ? -v : fmaf(-2.f, v, csq);
            if (lower(s, col, best[mt][h], bidx[mt][h])) {
              best[mt][h] = s;
              bidx[mt][h] = col;
            }
          }
        }
      }
    }
  }
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int mt = 0; mt < Tile::kMT; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int o = 1; o <= 2; o <<= 1) {  // the 4 lanes of a quad hold the same rows
        const float ob = __shfl_xor_sync(0xffffffffu, best[mt][h], o);
        const int oi = __shfl_xor_sync(0xffffffffu, bidx[mt][h], o);
        if (lower(ob, oi, best[mt][h], bidx[mt][h])) {
          best[mt][h] = ob;
          bidx[mt][h] = oi;
        }
      }
      if ((lane & 3) == 0) {
        const int r = Tile::row_of(mt, 2 * h);
        s_key[Tile::warp_n()][r] = best[mt][h];
        s_idx[Tile::warp_n()][r] = bidx[mt][h];
      }
    }
  }
  __syncthreads();
  for (int r = threadIdx.x; r < kTcBM; r += kThreads) {
    float bk = s_key[0][r];
    int bi = s_idx[0][r];
#pragma unroll
    for (int w = 1; w < kTcWarpsN; ++w) {
      if (lower(s_key[w][r], s_idx[w][r], bk, bi)) {
        bk = s_key[w][r];
        bi = s_idx[w][r];
      }
    }
    s_best[r] = bi == 0x7fffffff ? -1 : bi;
  }
  __syncthreads();
  write_assignments(a, q0, kTcBM, s_best);
}

template <typename T, TcKind K>
void launch_tc(const AssignArgs<T>& a, cudaStream_t stream) {
  using Tile = cuda_detail::TcTile<kTcBM, kTcBN, kTcWarpsM, kTcWarpsN, K>;
  // 40 KiB dynamic + 2.5 KiB static: below the 48 KiB that needs no opt-in.
  static_assert(Tile::kSmemBytes + 3 * kTcBM * 4 * kTcWarpsN <= 48 * 1024, "smem");
  const int64_t blocks = (a.n + kTcBM - 1) / kTcBM;
  assign_tc_kernel<T, K><<<static_cast<unsigned>(blocks), kThreads, Tile::kSmemBytes, stream>>>(a);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

MathMode kmeans_math(MathMode requested, bool bf16_input) {
  return cuda_detail::resolve_math(requested, bf16_input ? MathMode::kBf16 : MathMode::kTf32,
                                   "kmeans");
}

// `math` is already resolved (never kAuto).
template <typename T>
void launch_assign(const AssignArgs<T>& a, MathMode math, cudaStream_t stream) {
  if (a.n <= 0) return;
  if ((a.n + kBQ - 1) / kBQ > 0x7fffffffLL) throw std::invalid_argument("kmeans: n too large");
  switch (math) {
    case MathMode::kTf32: launch_tc<T, TcKind::kTf32>(a, stream); return;
    case MathMode::kTf32x3: launch_tc<T, TcKind::kTf32x3>(a, stream); return;
    case MathMode::kBf16: launch_tc<T, TcKind::kBf16>(a, stream); return;
    default: break;
  }
  const int64_t blocks = (a.n + kBQ - 1) / kBQ;
  assign_simt_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a);
  CUDA_CHECK_LAUNCH();
}

template void launch_assign<float>(const AssignArgs<float>&, MathMode, cudaStream_t);
template void launch_assign<bf16>(const AssignArgs<bf16>&, MathMode, cudaStream_t);

template <typename T>
AssignArgs<T> make_assign_args(const T* x, int64_t n, int d, const float* centroids, int k,
                               const float* c_sq, const float* x_inv, bool cosine,
                               int32_t* assign, float* dist) {
  return AssignArgs<T>{x,       n,     d,      cuda_detail::tc_vec_ok(x, d),
                       centroids, k,   cuda_detail::tc_vec_ok(centroids, d),
                       c_sq,    x_inv, cosine, assign, dist};
}

template AssignArgs<float> make_assign_args(const float*, int64_t, int, const float*, int,
                                           const float*, const float*, bool, int32_t*, float*);
template AssignArgs<bf16> make_assign_args(const bf16*, int64_t, int, const float*, int,
                                          const float*, const float*, bool, int32_t*, float*);

}  // namespace kmeans_cuda_detail

namespace {

using cuda_detail::as_dev;
using cuda_detail::is_bf16_v;
using kmeans_cuda_detail::kmeans_math;
using kmeans_cuda_detail::launch_assign;
using kmeans_cuda_detail::make_assign_args;

template <typename P>
void assign_impl(const P* x, int64_t n, int d, const float* centroids, int k, Metric metric,
                 int32_t* assign, float* dist, cudaStream_t stream, MathMode math) {
  if (metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
  if (n < 0 || d <= 0 || k < 1) throw std::invalid_argument("kmeans: need d > 0 and k >= 1");
  const MathMode m = kmeans_math(math, is_bf16_v<P>);
  if (n == 0) return;
  const bool cosine = metric == Metric::kCosine;
  DeviceBuffer<float> x_inv(cosine ? n : 0, stream), c_sq(cosine ? 0 : k, stream);
  if (cosine) row_inv_norms_cuda(x, x_inv.get(), n, d, stream);
  else row_sq_norms_cuda(centroids, c_sq.get(), k, d, stream);
  launch_assign(make_assign_args(as_dev(x), n, d, centroids, k, c_sq.get(), x_inv.get(), cosine,
                                 assign, dist),
                m, stream);
}

}  // namespace

void kmeans_assign_cuda(const float* x, int64_t n, int d, const float* centroids, int k,
                        Metric metric, int32_t* assign, float* dist, cudaStream_t stream,
                        MathMode math) {
  assign_impl(x, n, d, centroids, k, metric, assign, dist, stream, math);
}

void kmeans_assign_cuda(const bf16_bits* x, int64_t n, int d, const float* centroids, int k,
                        Metric metric, int32_t* assign, float* dist, cudaStream_t stream,
                        MathMode math) {
  assign_impl(x, n, d, centroids, k, metric, assign, dist, stream, math);
}

}  // namespace portrait::kernels
