#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/device_buffer.cuh"
#include "kernels/host_stream.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/l2_normalize.cuh"
#include "kernels/tc_tile.cuh"
#include "kernels/tile_gemm.cuh"

namespace portrait::kernels {

using cuda_detail::DeviceBuffer;
using cuda_detail::TcKind;

namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;
// SIMT tile: 64 points x 128 centroids, 4 x 8 accumulators per thread.
constexpr int kBQ = 64, kBN = 128, kBK = 16, kTQ = 4, kTN = 8;
// Tensor-core tile: 128 points x 128 centroids, 8 warps as 4 (points) x 2 (centroids), each
// warp 32 x 64 = 2 x 8 MMA tiles (64 fp32 accumulators per thread). 128 x 128 keeps the
// MMA:load ratio of a square tile while the two slab buffers need only 40 KiB of smem.
constexpr int kTcBM = 128, kTcBN = 128, kTcWarpsM = 4, kTcWarpsN = 2;
constexpr int kInertiaBlock = 4096;  // points per inertia partial (matches the CPU twin)
constexpr size_t kSmemAccumulateMax = 96 * 1024;

template <typename T>
const T* as_dev(const T* p) { return p; }
inline const bf16* as_dev(const bf16_bits* p) { return reinterpret_cast<const bf16*>(p); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ bool lower(float a, int ia, float b, int ib) {
  return a < b || (a == b && ia < ib);
}

template <typename T>
struct AssignArgs {
  const T* X;            // [n, d] points
  int64_t n;
  int d;
  bool vec_x;            // 16-byte vector loads of X are valid (tensor-core kernels)
  const float* C;        // [k, d] centroids (unit norm for cosine)
  int k;
  bool vec_c;
  const float* c_sq;     // |c|^2 (L2 only)
  const float* x_inv;    // 1/|x| (cosine only)
  bool cosine;
  int32_t* assign;
  float* dist;
};

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

// Public pointer type (float / bf16_bits) -> device element type (float / __nv_bfloat16).
template <typename P>
using DevT = std::remove_cv_t<std::remove_pointer_t<decltype(as_dev(static_cast<const P*>(nullptr)))>>;

template <typename P>
constexpr bool is_bf16_v = std::is_same_v<P, bf16_bits>;

MathMode kmeans_math(MathMode requested, bool bf16_input) {
  return cuda_detail::resolve_math(requested, bf16_input ? MathMode::kBf16 : MathMode::kTf32,
                                   "kmeans");
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

template <typename T>
AssignArgs<T> make_args(const T* x, int64_t n, int d, const float* centroids, int k,
                        const float* c_sq, const float* x_inv, bool cosine, int32_t* assign,
                        float* dist) {
  return AssignArgs<T>{x,       n,     d,      cuda_detail::tc_vec_ok(x, d),
                       centroids, k,   cuda_detail::tc_vec_ok(centroids, d),
                       c_sq,    x_inv, cosine, assign, dist};
}

// Shared device state of one k-means run.
class GpuState {
 public:
  GpuState(int k, int d, Metric metric, MathMode math, cudaStream_t stream)
      : k_(k), d_(d), cosine_(metric == Metric::kCosine), math_(math), stream_(stream),
        centroids_(static_cast<size_t>(k) * d, stream), c_sq_(k, stream),
        sums_(static_cast<size_t>(k) * d, stream), counts_(k, stream) {
    const size_t smem = (static_cast<size_t>(k) * d + k) * sizeof(unsigned long long);
    use_smem_ = smem <= kSmemAccumulateMax &&
                static_cast<int>(smem) <= cuda_detail::max_dynamic_smem();
    if (use_smem_) {
      CUDA_CHECK(cudaFuncSetAttribute(accumulate_kernel<float>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
      CUDA_CHECK(cudaFuncSetAttribute(accumulate_kernel<bf16>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
    }
  }

  void begin_pass(const float* centroids_host) {
    CUDA_CHECK(cudaMemcpyAsync(centroids_.get(), centroids_host, sizeof(float) * k_ * d_,
                               cudaMemcpyHostToDevice, stream_));
    if (!cosine_) row_sq_norms_cuda(centroids_.get(), c_sq_.get(), k_, d_, stream_);
    CUDA_CHECK(cudaMemsetAsync(sums_.get(), 0, sizeof(unsigned long long) * k_ * d_, stream_));
    CUDA_CHECK(cudaMemsetAsync(counts_.get(), 0, sizeof(unsigned long long) * k_, stream_));
  }

  // One slice of points (device, a multiple of 4096 rows unless it is the last):
  // assignments, fp32 distances, exact sums/counts, and the slice's inertia partials.
  // x_inv = 1/|x| (cosine only, else null).
  template <typename T>
  void process(const T* x, const float* x_inv, int64_t n, double scale, int32_t* assign,
               float* dist, double* partials) {
    launch_assign(make_args(x, n, d_, centroids_.get(), k_, c_sq_.get(), x_inv, cosine_, assign,
                            dist),
                  math_, stream_);
    const size_t smem = use_smem_ ? (static_cast<size_t>(k_) * d_ + k_) * 8 : 0;
    accumulate_kernel<T><<<stride_grid(n * d_), kThreads, smem, stream_>>>(
        x, n, d_, assign, cosine_ ? x_inv : nullptr, scale, k_, sums_.get(), counts_.get(),
        use_smem_);
    CUDA_CHECK_LAUNCH();
    const int64_t blocks = (n + kInertiaBlock - 1) / kInertiaBlock;
    inertia_partial_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream_>>>(dist, n,
                                                                                   partials);
    CUDA_CHECK_LAUNCH();
  }

  // partials_dev: all [ceil(n / 4096)] partials of the pass, summed on the host in order.
  double end_pass(int64_t* sums_fx, int64_t* counts, const double* partials_dev, int64_t nblk) {
    static_assert(sizeof(int64_t) == sizeof(unsigned long long));
    partials_host_.resize(static_cast<size_t>(nblk));
    CUDA_CHECK(cudaMemcpyAsync(sums_fx, sums_.get(), sizeof(int64_t) * k_ * d_,
                               cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(counts, counts_.get(), sizeof(int64_t) * k_,
                               cudaMemcpyDeviceToHost, stream_));
    if (nblk > 0)
      CUDA_CHECK(cudaMemcpyAsync(partials_host_.data(), partials_dev, sizeof(double) * nblk,
                                 cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    double inertia = 0.0;
    for (double v : partials_host_) inertia += v;
    return inertia;
  }

  bool cosine() const { return cosine_; }

 private:
  int k_, d_;
  bool cosine_;
  MathMode math_;
  bool use_smem_ = false;
  cudaStream_t stream_;
  DeviceBuffer<float> centroids_, c_sq_;
  DeviceBuffer<unsigned long long> sums_, counts_;
  std::vector<double> partials_host_;
};

unsigned int* reset_max(DeviceBuffer<unsigned int>& out, cudaStream_t stream) {
  CUDA_CHECK(cudaMemsetAsync(out.get(), 0, sizeof(unsigned int), stream));
  return out.get();
}

template <typename T>
void launch_max_abs(const T* x, int64_t total, unsigned int* out, cudaStream_t stream) {
  if (total <= 0) return;
  max_abs_kernel<T><<<stride_grid(total), kThreads, 0, stream>>>(x, total, out);
  CUDA_CHECK_LAUNCH();
}

double read_max(const DeviceBuffer<unsigned int>& out, cudaStream_t stream) {
  unsigned int bits = 0;
  CUDA_CHECK(cudaMemcpyAsync(&bits, out.get(), sizeof bits, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bits >= 0x7f800000u) return std::numeric_limits<double>::quiet_NaN();
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

int64_t inertia_blocks(int64_t n) { return (n + kInertiaBlock - 1) / kInertiaBlock; }

// P: public element type (float or bf16_bits); x is a DEVICE pointer.
template <typename P>
class DeviceBackend final : public detail::KMeansBackend {
 public:
  DeviceBackend(const P* x, int64_t n, int d, const KMeansParams& p, cudaStream_t stream)
      : x_(x), n_(n), d_(d), stream_(stream),
        state_(p.k, d, p.metric, kmeans_math(p.math, is_bf16_v<P>), stream),
        x_inv_(state_.cosine() ? n : 0, stream), assign_(n, stream), dist_(n, stream),
        partials_(inertia_blocks(n), stream) {
    if (state_.cosine()) row_inv_norms_cuda(x, x_inv_.get(), n, d, stream);
  }
  double max_abs() override {
    DeviceBuffer<unsigned int> out(1, stream_);
    launch_max_abs(as_dev(x_), n_ * d_, reset_max(out, stream_), stream_);
    return read_max(out, stream_);
  }
  void gather(const int64_t* idx, int64_t m, float* out) override {
    if (m <= 0) return;
    DeviceBuffer<int64_t> didx(m, stream_);
    DeviceBuffer<float> dout(static_cast<size_t>(m) * d_, stream_);
    CUDA_CHECK(cudaMemcpyAsync(didx.get(), idx, sizeof(int64_t) * m, cudaMemcpyHostToDevice,
                               stream_));
    gather_kernel<<<stride_grid(m * d_), kThreads, 0, stream_>>>(as_dev(x_), d_, didx.get(), m,
                                                                 dout.get());
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(out, dout.get(), sizeof(float) * m * d_, cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  double assign_accumulate(const float* centroids, double scale, int64_t* sums_fx,
                           int64_t* counts) override {
    state_.begin_pass(centroids);
    state_.process(as_dev(x_), x_inv_.get(), n_, scale, assign_.get(), dist_.get(),
                   partials_.get());
    return state_.end_pass(sums_fx, counts, partials_.get(), inertia_blocks(n_));
  }
  void fetch_assignments(int32_t* out) override {
    CUDA_CHECK(cudaMemcpyAsync(out, assign_.get(), sizeof(int32_t) * n_, cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  const P* x_;
  int64_t n_;
  int d_;
  cudaStream_t stream_;
  GpuState state_;
  DeviceBuffer<float> x_inv_;
  DeviceBuffer<int32_t> assign_;
  DeviceBuffer<float> dist_;
  DeviceBuffer<double> partials_;
};

// x is a HOST pointer, streamed through cuda_detail::ChunkStreamer (copy of chunk i+1
// overlapping the kernels of chunk i). Chunks are multiples of 4096 rows, so every inertia
// partial covers the same points as on the device-resident path and the results are
// bit-identical to it. Device memory: 2 chunks of x, one chunk of distances (and 1/|x|),
// n int32 assignments and n/4096 partials.
template <typename P>
class StreamingBackend final : public detail::KMeansBackend {
 public:
  StreamingBackend(const P* x, int64_t n, int d, const KMeansParams& p, cudaStream_t stream)
      : x_(x), n_(n), d_(d), stream_(stream), chunk_(chunk_rows(p.chunk_rows, n)),
        state_(p.k, d, p.metric, kmeans_math(p.math, is_bf16_v<P>), stream),
        streamer_(x, n, d, chunk_, stream, p.num_threads),
        x_inv_(state_.cosine() ? chunk_ : 0, stream), assign_(n, stream), dist_(chunk_, stream),
        partials_(inertia_blocks(n), stream) {}

  double max_abs() override {
    DeviceBuffer<unsigned int> out(1, stream_);
    unsigned int* o = reset_max(out, stream_);
    streamer_.for_each([&](int64_t, int64_t nb, const P* dx) {
      launch_max_abs(as_dev(dx), nb * d_, o, stream_);
    });
    return read_max(out, stream_);
  }
  void gather(const int64_t* idx, int64_t m, float* out) override {
    for (int64_t i = 0; i < m; ++i)
      for (int j = 0; j < d_; ++j) out[i * d_ + j] = to_f32(x_[idx[i] * d_ + j]);
  }
  double assign_accumulate(const float* centroids, double scale, int64_t* sums_fx,
                           int64_t* counts) override {
    state_.begin_pass(centroids);
    streamer_.for_each([&](int64_t b, int64_t nb, const P* dx) {
      if (state_.cosine()) row_inv_norms_cuda(dx, x_inv_.get(), nb, d_, stream_);
      state_.process(as_dev(dx), x_inv_.get(), nb, scale, assign_.get() + b, dist_.get(),
                     partials_.get() + b / kInertiaBlock);
    });
    return state_.end_pass(sums_fx, counts, partials_.get(), inertia_blocks(n_));
  }
  void fetch_assignments(int32_t* out) override {
    CUDA_CHECK(cudaMemcpyAsync(out, assign_.get(), sizeof(int32_t) * n_, cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  static float to_f32(float v) { return v; }
  static float to_f32(bf16_bits v) { return bf16_to_float(v); }
  static int64_t chunk_rows(int64_t requested, int64_t n) {
    int64_t c = requested > 0 ? requested : (int64_t{1} << 18);
    c = (c + kInertiaBlock - 1) / kInertiaBlock * kInertiaBlock;
    return std::max<int64_t>(1, std::min(c, std::max<int64_t>(n, 1)));
  }
  const P* x_;
  int64_t n_;
  int d_;
  cudaStream_t stream_;
  int64_t chunk_;
  GpuState state_;
  cuda_detail::ChunkStreamer<P> streamer_;
  DeviceBuffer<float> x_inv_;
  DeviceBuffer<int32_t> assign_;
  DeviceBuffer<float> dist_;
  DeviceBuffer<double> partials_;
};

void check_args(int64_t n, int d, const KMeansParams& p) {
  if (n < 0 || d <= 0) throw std::invalid_argument("kmeans: need n >= 0 and d > 0");
  if (p.k < 1 || n < p.k) throw std::invalid_argument("kmeans: need 1 <= k <= n");
  if (n > 0x7fffffffLL * kBQ) throw std::invalid_argument("kmeans: n too large");
  if (p.metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
}

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
  launch_assign(make_args(as_dev(x), n, d, centroids, k, c_sq.get(), x_inv.get(), cosine, assign,
                          dist),
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

KMeansResult kmeans_cuda(const float* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream) {
  check_args(n, d, params);
  DeviceBackend<float> be(x, n, d, params, stream);
  return detail::kmeans_drive(be, n, d, params);
}

KMeansResult kmeans_cuda(const bf16_bits* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream) {
  check_args(n, d, params);
  DeviceBackend<bf16_bits> be(x, n, d, params, stream);
  return detail::kmeans_drive(be, n, d, params);
}

KMeansResult kmeans_cuda_streaming(const float* x, int64_t n, int d, const KMeansParams& params,
                                   cudaStream_t stream) {
  check_args(n, d, params);
  StreamingBackend<float> be(x, n, d, params, stream);
  return detail::kmeans_drive(be, n, d, params);
}

KMeansResult kmeans_cuda_streaming(const bf16_bits* x, int64_t n, int d,
                                   const KMeansParams& params, cudaStream_t stream) {
  check_args(n, d, params);
  StreamingBackend<bf16_bits> be(x, n, d, params, stream);
  return detail::kmeans_drive(be, n, d, params);
}

}  // namespace portrait::kernels
