// CUDA backends of the shared k-means host loop (detail::kmeans_drive, kmeans.cpp): the
// points stay on the device (DeviceBackend) or are streamed from the host every pass
// (StreamingBackend). Both run the same kernels over the same 4096-point blocks, so their
// results are bit-identical; GpuState holds what one run keeps on the device between passes.
//
// bf16 input (bf16_bits = raw torch.bfloat16 / __nv_bfloat16 bits) is read as bf16 and
// widened in registers; centroids, sums and distances stay fp32. kmeans_cpu(const
// bf16_bits*, ...) is the matching CPU reference.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/cuda_util.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/host_stream.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/kmeans_launch.cuh"
#include "kernels/l2_normalize.cuh"

namespace portrait::kernels {

namespace {

using cuda_detail::as_dev;
using cuda_detail::is_bf16_v;
using namespace kmeans_cuda_detail;  // launchers and constants of the k-means .cu files

int64_t inertia_blocks(int64_t n) { return (n + kInertiaBlock - 1) / kInertiaBlock; }

// Shared device state of one k-means run.
class GpuState {
 public:
  GpuState(int k, int d, Metric metric, MathMode math, cudaStream_t stream)
      : k_(k), d_(d), cosine_(metric == Metric::kCosine), math_(math), stream_(stream),
        use_smem_(accumulate_prepare_smem(k, d)), centroids_(static_cast<size_t>(k) * d, stream),
        c_sq_(k, stream), sums_(static_cast<size_t>(k) * d, stream), counts_(k, stream) {}

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
    launch_assign(make_assign_args(x, n, d_, centroids_.get(), k_, c_sq_.get(), x_inv, cosine_,
                                   assign, dist),
                  math_, stream_);
    launch_accumulate(x, n, d_, assign, cosine_ ? x_inv : nullptr, scale, k_, sums_.get(),
                      counts_.get(), use_smem_, stream_);
    launch_inertia_partials(dist, n, partials, stream_);
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
  cudaStream_t stream_;
  bool use_smem_;
  DeviceBuffer<float> centroids_, c_sq_;
  DeviceBuffer<unsigned long long> sums_, counts_;
  std::vector<double> partials_host_;
};

// max |x| over launch_max_abs calls on one zeroed word, read back as a double (NaN when any
// coordinate is not finite: inf/NaN bits compare above every finite value).
class MaxAbs {
 public:
  explicit MaxAbs(cudaStream_t stream) : out_(1, stream) {
    CUDA_CHECK(cudaMemsetAsync(out_.get(), 0, sizeof(unsigned int), stream));
  }
  unsigned int* get() const { return out_.get(); }
  double read() const {
    unsigned int bits = 0;
    out_.copy_to_host(&bits, 1);
    if (bits >= 0x7f800000u) return std::numeric_limits<double>::quiet_NaN();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }

 private:
  DeviceBuffer<unsigned int> out_;
};

// What both backends keep per run: the device state, the n assignments and the inertia
// partials of the last pass.
class GpuBackendBase : public detail::KMeansBackend {
 public:
  GpuBackendBase(int64_t n, int d, const KMeansParams& p, bool bf16_input, cudaStream_t stream)
      : n_(n), d_(d), stream_(stream),
        state_(p.k, d, p.metric, kmeans_math(p.math, bf16_input), stream), assign_(n, stream),
        partials_(inertia_blocks(n), stream) {}
  void fetch_assignments(int32_t* out) override {
    assign_.copy_to_host(out, static_cast<size_t>(n_));
  }

 protected:
  int64_t n_;
  int d_;
  cudaStream_t stream_;
  GpuState state_;
  DeviceBuffer<int32_t> assign_;
  DeviceBuffer<double> partials_;
};

// P: public element type (float or bf16_bits); x is a DEVICE pointer.
template <typename P>
class DeviceBackend final : public GpuBackendBase {
 public:
  DeviceBackend(const P* x, int64_t n, int d, const KMeansParams& p, cudaStream_t stream)
      : GpuBackendBase(n, d, p, is_bf16_v<P>, stream), x_(x),
        x_inv_(state_.cosine() ? n : 0, stream), dist_(n, stream) {
    if (state_.cosine()) row_inv_norms_cuda(x, x_inv_.get(), n, d, stream);
  }
  double max_abs() override {
    MaxAbs m(stream_);
    launch_max_abs(as_dev(x_), n_ * d_, m.get(), stream_);
    return m.read();
  }
  void gather(const int64_t* idx, int64_t m, float* out) override {
    if (m <= 0) return;
    DeviceBuffer<int64_t> didx(idx, static_cast<size_t>(m), stream_);
    DeviceBuffer<float> dout(static_cast<size_t>(m) * d_, stream_);
    launch_gather(as_dev(x_), d_, didx.get(), m, dout.get(), stream_);
    dout.copy_to_host(out, static_cast<size_t>(m) * d_);
  }
  double assign_accumulate(const float* centroids, double scale, int64_t* sums_fx,
                           int64_t* counts) override {
    state_.begin_pass(centroids);
    state_.process(as_dev(x_), x_inv_.get(), n_, scale, assign_.get(), dist_.get(),
                   partials_.get());
    return state_.end_pass(sums_fx, counts, partials_.get(), inertia_blocks(n_));
  }

 private:
  const P* x_;
  DeviceBuffer<float> x_inv_;
  DeviceBuffer<float> dist_;
};

// x is a HOST pointer, streamed through cuda_detail::ChunkStreamer (copy of chunk i+1
// overlapping the kernels of chunk i). Chunks are multiples of 4096 rows, so every inertia
// partial covers the same points as on the device-resident path and the results are
// bit-identical to it. Device memory: 2 chunks of x, one chunk of distances (and 1/|x|),
// n int32 assignments and n/4096 partials.
template <typename P>
class StreamingBackend final : public GpuBackendBase {
 public:
  StreamingBackend(const P* x, int64_t n, int d, const KMeansParams& p, cudaStream_t stream)
      : GpuBackendBase(n, d, p, is_bf16_v<P>, stream), x_(x), chunk_(chunk_rows(p.chunk_rows, n)),
        streamer_(x, n, d, chunk_, stream, p.num_threads),
        x_inv_(state_.cosine() ? chunk_ : 0, stream), dist_(chunk_, stream) {}

  double max_abs() override {
    MaxAbs m(stream_);
    streamer_.for_each([&](int64_t, int64_t nb, const P* dx) {
      launch_max_abs(as_dev(dx), nb * d_, m.get(), stream_);
    });
    return m.read();
  }
  void gather(const int64_t* idx, int64_t m, float* out) override {
    for (int64_t i = 0; i < m; ++i)
      for (int j = 0; j < d_; ++j) out[i * d_ + j] = cuda_detail::host_to_f32(x_[idx[i] * d_ + j]);
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

 private:
  static int64_t chunk_rows(int64_t requested, int64_t n) {
    int64_t c = requested > 0 ? requested : (int64_t{1} << 18);
    c = (c + kInertiaBlock - 1) / kInertiaBlock * kInertiaBlock;
    return std::max<int64_t>(1, std::min(c, std::max<int64_t>(n, 1)));
  }
  const P* x_;
  int64_t chunk_;
  cuda_detail::ChunkStreamer<P> streamer_;
  DeviceBuffer<float> x_inv_;
  DeviceBuffer<float> dist_;
};

void check_args(int64_t n, int d, const KMeansParams& p) {
  if (n < 0 || d <= 0) throw std::invalid_argument("kmeans: need n >= 0 and d > 0");
  if (p.k < 1 || n < p.k) throw std::invalid_argument("kmeans: need 1 <= k <= n");
  if (n > 0x7fffffffLL * kAssignMinRowsPerBlock)
    throw std::invalid_argument("kmeans: n too large");
  if (p.metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
}

template <template <typename> class Backend, typename P>
KMeansResult run(const P* x, int64_t n, int d, const KMeansParams& params, cudaStream_t stream) {
  check_args(n, d, params);
  Backend<P> be(x, n, d, params, stream);
  return detail::kmeans_drive(be, n, d, params);
}

}  // namespace

KMeansResult kmeans_cuda(const float* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream) {
  return run<DeviceBackend>(x, n, d, params, stream);
}

KMeansResult kmeans_cuda(const bf16_bits* x, int64_t n, int d, const KMeansParams& params,
                         cudaStream_t stream) {
  return run<DeviceBackend>(x, n, d, params, stream);
}

KMeansResult kmeans_cuda_streaming(const float* x, int64_t n, int d, const KMeansParams& params,
                                   cudaStream_t stream) {
  return run<StreamingBackend>(x, n, d, params, stream);
}

KMeansResult kmeans_cuda_streaming(const bf16_bits* x, int64_t n, int d,
                                   const KMeansParams& params, cudaStream_t stream) {
  return run<StreamingBackend>(x, n, d, params, stream);
}

}  // namespace portrait::kernels
