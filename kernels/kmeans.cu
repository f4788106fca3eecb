#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/device_buffer.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/l2_normalize.cuh"
#include "kernels/tile_gemm.cuh"

namespace portrait::kernels {

using cuda_detail::DeviceBuffer;

namespace {

constexpr int kThreads = 256;
constexpr int kBQ = 64, kBN = 128, kBK = 16, kTQ = 4, kTN = 8;
constexpr int kInertiaBlock = 4096;  // points per inertia partial (matches the CPU twin)
constexpr size_t kSmemAccumulateMax = 96 * 1024;

// x_aux: |x|^2 for L2 (may be null when dist is not needed... always given here),
// 1/|x| for cosine. c_sq: |c|^2 (L2 only).
__global__ void __launch_bounds__(kThreads)
    assign_kernel(const float* __restrict__ X, int64_t n, int d, const float* __restrict__ C,
                  int k, const float* __restrict__ c_sq, const float* __restrict__ x_aux,
                  bool cosine, int32_t* __restrict__ assign, float* __restrict__ dist) {
  __shared__ float sA[kBK * (kBQ + 1)];
  __shared__ float sB[kBK * (kBN + 1)];
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
  for (int c0 = 0; c0 < k; c0 += kBN) {
    float acc[kTQ][kTN] = {};
    cuda_detail::tile_gemm_nt<kBQ, kBN, kBK, kTQ, kTN>(X, n, q0, C, k, c0, d, sA, sB, acc);
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int col = c0 + tx + j * (kBN / kTN);
      if (col >= k) continue;
      const float csq = cosine ? 0.f : c_sq[col];
#pragma unroll
      for (int i = 0; i < kTQ; ++i) {
        // Row-constant terms (|x|^2, 1/|x|) do not change the argmin: add them at the end.
        const float s = cosine ? -acc[i][j] : csq - 2.f * acc[i][j];
        if (s < best[i] || (s == best[i] && col < bidx[i])) {
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
      if (ob < best[i] || (ob == best[i] && oi < bidx[i])) {
        best[i] = ob;
        bidx[i] = oi;
      }
    }
  }
  if (tx == 0) {
#pragma unroll
    for (int i = 0; i < kTQ; ++i) {
      const int64_t row = q0 + ty * kTQ + i;
      if (row >= n) continue;
      assign[row] = bidx[i] == 0x7fffffff ? 0 : bidx[i];
      dist[row] = cosine ? fmaxf(0.f, 1.f + best[i] * x_aux[row])
                         : fmaxf(0.f, x_aux[row] + best[i]);
    }
  }
}

// Exact (integer) per-cluster sums: deterministic whatever the atomic order.
__global__ void accumulate_kernel(const float* __restrict__ X, int64_t n, int d,
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
    float v = X[idx];
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
__global__ void max_abs_kernel(const float* __restrict__ X, int64_t total,
                               unsigned int* __restrict__ out) {
  unsigned int m = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    m = max(m, __float_as_uint(X[i]) & 0x7fffffffu);
  for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) atomicMax(out, m);
}

__global__ void gather_kernel(const float* __restrict__ X, int d, const int64_t* __restrict__ idx,
                              int64_t m, float* __restrict__ out) {
  const int64_t total = m * d;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / d;
    out[e] = X[idx[r] * d + (e - r * d)];
  }
}

unsigned stride_grid(int64_t work) {
  const int64_t cap = 8LL * cuda_detail::sm_count();
  return static_cast<unsigned>(std::clamp<int64_t>((work + kThreads - 1) / kThreads, 1, cap));
}

void launch_assign(const float* x, int64_t n, int d, const float* centroids, int k,
                   const float* c_sq, const float* x_aux, bool cosine, int32_t* assign,
                   float* dist, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = (n + kBQ - 1) / kBQ;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("kmeans: n too large");
  assign_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      x, n, d, centroids, k, c_sq, x_aux, cosine, assign, dist);
  CUDA_CHECK_LAUNCH();
}

// Shared device state of one k-means run.
class GpuState {
 public:
  GpuState(int k, int d, Metric metric, cudaStream_t stream)
      : k_(k), d_(d), cosine_(metric == Metric::kCosine), stream_(stream),
        centroids_(static_cast<size_t>(k) * d, stream), c_sq_(k, stream),
        sums_(static_cast<size_t>(k) * d, stream), counts_(k, stream) {
    const size_t smem = (static_cast<size_t>(k) * d + k) * sizeof(unsigned long long);
    use_smem_ = smem <= kSmemAccumulateMax &&
                static_cast<int>(smem) <= cuda_detail::max_dynamic_smem();
    if (use_smem_)
      CUDA_CHECK(cudaFuncSetAttribute(accumulate_kernel,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
  }

  void begin_pass(const float* centroids_host) {
    CUDA_CHECK(cudaMemcpyAsync(centroids_.get(), centroids_host, sizeof(float) * k_ * d_,
                               cudaMemcpyHostToDevice, stream_));
    if (!cosine_) row_sq_norms_cuda(centroids_.get(), c_sq_.get(), k_, d_, stream_);
    CUDA_CHECK(cudaMemsetAsync(sums_.get(), 0, sizeof(unsigned long long) * k_ * d_, stream_));
    CUDA_CHECK(cudaMemsetAsync(counts_.get(), 0, sizeof(unsigned long long) * k_, stream_));
    partials_host_.clear();
  }

  // One slice of points (device): x_aux = |x|^2 (L2) or 1/|x| (cosine), precomputed.
  void process(const float* x, const float* x_aux, int64_t n, double scale, int32_t* assign,
               float* dist, double* partials) {
    launch_assign(x, n, d_, centroids_.get(), k_, c_sq_.get(), x_aux, cosine_, assign, dist,
                  stream_);
    const size_t smem = use_smem_ ? (static_cast<size_t>(k_) * d_ + k_) * 8 : 0;
    accumulate_kernel<<<stride_grid(n * d_), kThreads, smem, stream_>>>(
        x, n, d_, assign, cosine_ ? x_aux : nullptr, scale, k_, sums_.get(), counts_.get(),
        use_smem_);
    CUDA_CHECK_LAUNCH();
    const int64_t blocks = (n + kInertiaBlock - 1) / kInertiaBlock;
    inertia_partial_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream_>>>(dist, n,
                                                                                   partials);
    CUDA_CHECK_LAUNCH();
  }

  // Copies partials of a slice (device) to the host list, keeping slice order.
  void collect_partials(const double* partials_dev, int64_t n) {
    const int64_t blocks = (n + kInertiaBlock - 1) / kInertiaBlock;
    const size_t old = partials_host_.size();
    partials_host_.resize(old + blocks);
    CUDA_CHECK(cudaMemcpyAsync(partials_host_.data() + old, partials_dev,
                               sizeof(double) * blocks, cudaMemcpyDeviceToHost, stream_));
  }

  double end_pass(int64_t* sums_fx, int64_t* counts) {
    static_assert(sizeof(int64_t) == sizeof(unsigned long long));
    CUDA_CHECK(cudaMemcpyAsync(sums_fx, sums_.get(), sizeof(int64_t) * k_ * d_,
                               cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(counts, counts_.get(), sizeof(int64_t) * k_,
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
  bool use_smem_ = false;
  cudaStream_t stream_;
  DeviceBuffer<float> centroids_, c_sq_;
  DeviceBuffer<unsigned long long> sums_, counts_;
  std::vector<double> partials_host_;
};

double max_abs_device(const float* x, int64_t total, cudaStream_t stream) {
  DeviceBuffer<unsigned int> out(1, stream);
  CUDA_CHECK(cudaMemsetAsync(out.get(), 0, sizeof(unsigned int), stream));
  if (total > 0) {
    max_abs_kernel<<<stride_grid(total), kThreads, 0, stream>>>(x, total, out.get());
    CUDA_CHECK_LAUNCH();
  }
  unsigned int bits = 0;
  CUDA_CHECK(cudaMemcpyAsync(&bits, out.get(), sizeof bits, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bits >= 0x7f800000u) return std::numeric_limits<double>::quiet_NaN();
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void row_aux(const float* x, float* aux, int64_t n, int d, bool cosine, cudaStream_t stream) {
  if (cosine) row_inv_norms_cuda(x, aux, n, d, stream);
  else row_sq_norms_cuda(x, aux, n, d, stream);
}

class DeviceBackend final : public detail::KMeansBackend {
 public:
  DeviceBackend(const float* x, int64_t n, int d, const KMeansParams& p, cudaStream_t stream)
      : x_(x), n_(n), d_(d), stream_(stream), state_(p.k, d, p.metric, stream),
        x_aux_(n, stream), assign_(n, stream), dist_(n, stream),
        partials_((n + kInertiaBlock - 1) / kInertiaBlock, stream) {
    row_aux(x, x_aux_.get(), n, d, state_.cosine(), stream);
  }
  double max_abs() override { return max_abs_device(x_, n_ * d_, stream_); }
  void gather(const int64_t* idx, int64_t m, float* out) override {
    if (m <= 0) return;
    DeviceBuffer<int64_t> didx(m, stream_);
    DeviceBuffer<float> dout(static_cast<size_t>(m) * d_, stream_);
    CUDA_CHECK(cudaMemcpyAsync(didx.get(), idx, sizeof(int64_t) * m, cudaMemcpyHostToDevice,
                               stream_));
    gather_kernel<<<stride_grid(m * d_), kThreads, 0, stream_>>>(x_, d_, didx.get(), m,
                                                                 dout.get());
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(out, dout.get(), sizeof(float) * m * d_, cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  double assign_accumulate(const float* centroids, double scale, int64_t* sums_fx,
                           int64_t* counts) override {
    state_.begin_pass(centroids);
    state_.process(x_, x_aux_.get(), n_, scale, assign_.get(), dist_.get(), partials_.get());
    state_.collect_partials(partials_.get(), n_);
    return state_.end_pass(sums_fx, counts);
  }
  void fetch_assignments(int32_t* out) override {
    CUDA_CHECK(cudaMemcpyAsync(out, assign_.get(), sizeof(int32_t) * n_, cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  const float* x_;
  int64_t n_;
  int d_;
  cudaStream_t stream_;
  GpuState state_;
  DeviceBuffer<float> x_aux_;
  DeviceBuffer<int32_t> assign_;
  DeviceBuffer<float> dist_;
  DeviceBuffer<double> partials_;
};

class StreamingBackend final : public detail::KMeansBackend {
 public:
  StreamingBackend(const float* x, int64_t n, int d, const KMeansParams& p,
                   cudaStream_t stream)
      : x_(x), n_(n), d_(d), stream_(stream), chunk_(chunk_rows(p.chunk_rows, n)),
        state_(p.k, d, p.metric, stream), buf_(static_cast<size_t>(chunk_) * d, stream),
        x_aux_(chunk_, stream), assign_dev_(chunk_, stream), dist_(chunk_, stream),
        partials_((chunk_ + kInertiaBlock - 1) / kInertiaBlock, stream),
        assign_(static_cast<size_t>(n)) {}

  double max_abs() override {
    double m = 0.0;
    for (int64_t b = 0; b < n_; b += chunk_) {
      const int64_t nb = std::min(chunk_, n_ - b);
      upload(b, nb);
      const double v = max_abs_device(buf_.get(), nb * d_, stream_);
      if (std::isnan(v)) return v;
      m = std::max(m, v);
    }
    return m;
  }
  void gather(const int64_t* idx, int64_t m, float* out) override {
    for (int64_t i = 0; i < m; ++i)
      std::memcpy(out + i * d_, x_ + idx[i] * d_, sizeof(float) * d_);
  }
  double assign_accumulate(const float* centroids, double scale, int64_t* sums_fx,
                           int64_t* counts) override {
    state_.begin_pass(centroids);
    for (int64_t b = 0; b < n_; b += chunk_) {
      const int64_t nb = std::min(chunk_, n_ - b);
      upload(b, nb);
      row_aux(buf_.get(), x_aux_.get(), nb, d_, state_.cosine(), stream_);
      state_.process(buf_.get(), x_aux_.get(), nb, scale, assign_dev_.get(), dist_.get(),
                     partials_.get());
      state_.collect_partials(partials_.get(), nb);
      CUDA_CHECK(cudaMemcpyAsync(assign_.data() + b, assign_dev_.get(), sizeof(int32_t) * nb,
                                 cudaMemcpyDeviceToHost, stream_));
      // The partials/assignment buffers are reused by the next chunk.
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    return state_.end_pass(sums_fx, counts);
  }
  void fetch_assignments(int32_t* out) override {
    std::copy(assign_.begin(), assign_.end(), out);
  }

 private:
  static int64_t chunk_rows(int64_t requested, int64_t n) {
    int64_t c = requested > 0 ? requested : (int64_t{1} << 20);
    c = (c + kInertiaBlock - 1) / kInertiaBlock * kInertiaBlock;
    return std::max<int64_t>(1, std::min(c, std::max<int64_t>(n, 1)));
  }
  void upload(int64_t b, int64_t nb) {
    CUDA_CHECK(cudaMemcpyAsync(buf_.get(), x_ + b * d_, sizeof(float) * nb * d_,
                               cudaMemcpyHostToDevice, stream_));
  }
  const float* x_;
  int64_t n_;
  int d_;
  cudaStream_t stream_;
  int64_t chunk_;
  GpuState state_;
  DeviceBuffer<float> buf_, x_aux_;
  DeviceBuffer<int32_t> assign_dev_;
  DeviceBuffer<float> dist_;
  DeviceBuffer<double> partials_;
  std::vector<int32_t> assign_;
};

void check_args(int64_t n, int d, const KMeansParams& p) {
  if (n < 0 || d <= 0) throw std::invalid_argument("kmeans: need n >= 0 and d > 0");
  if (p.k < 1 || n < p.k) throw std::invalid_argument("kmeans: need 1 <= k <= n");
  if (n > 0x7fffffffLL * kBQ) throw std::invalid_argument("kmeans: n too large");
}

}  // namespace

void kmeans_assign_cuda(const float* x, int64_t n, int d, const float* centroids, int k,
                        Metric metric, int32_t* assign, float* dist, cudaStream_t stream) {
  if (metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
  if (n <= 0) return;
  const bool cosine = metric == Metric::kCosine;
  DeviceBuffer<float> x_aux(n, stream), c_sq(cosine ? 0 : k, stream);
  row_aux(x, x_aux.get(), n, d, cosine, stream);
  if (!cosine) row_sq_norms_cuda(centroids, c_sq.get(), k, d, stream);
  launch_assign(x, n, d, centroids, k, c_sq.get(), x_aux.get(), cosine, assign, dist, stream);
}

KMeansResult kmeans_cuda(const float* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream) {
  check_args(n, d, params);
  if (params.metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
  DeviceBackend be(x, n, d, params, stream);
  return detail::kmeans_drive(be, n, d, params);
}

KMeansResult kmeans_cuda_streaming(const float* x, int64_t n, int d, const KMeansParams& params,
                                   cudaStream_t stream) {
  check_args(n, d, params);
  if (params.metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
  StreamingBackend be(x, n, d, params, stream);
  return detail::kmeans_drive(be, n, d, params);
}

}  // namespace portrait::kernels
