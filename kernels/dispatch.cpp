// The only CPU/GPU switch of the library's host-pointer API (see dispatch.h). The CUDA
// branch stages host data through DeviceBuffer on the legacy default stream, which orders
// against torch's work on it too.
#include "kernels/dispatch.h"

#include <stdexcept>
#include <string>

#include "kernels/device.h"

#if PORTRAIT_WITH_CUDA
#include "kernels/device_buffer.cuh"
#include "kernels/heads.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/topk.cuh"
#endif

namespace portrait::kernels {

#if !PORTRAIT_WITH_CUDA
namespace {

[[noreturn]] void no_cuda_build(const char* op) {
  throw std::logic_error(std::string(op) + ": Backend::kCuda in a build without CUDA");
}

}  // namespace
#endif

const char* backend_name(Backend b) { return b == Backend::kCuda ? "cuda" : "cpu"; }

Backend choose_backend(std::string_view device, std::string_view key) {
  if (device != "auto" && device != "cpu" && device != "cuda")
    throw std::invalid_argument(std::string(key) + ": unknown device '" + std::string(device) +
                                "' (auto, cpu or cuda)");
  // cuda_device_count() is 0 in builds without CUDA, so "auto" never picks it there.
  const bool gpu = device != "cpu" && cuda_device_count() > 0;
  if (device == "cuda" && !gpu)
    throw std::runtime_error(std::string(key) + "=cuda but no CUDA device");
  return gpu ? Backend::kCuda : Backend::kCpu;
}

KMeansResult kmeans(const float* x, int64_t n, int d, const KMeansParams& params, Backend b) {
  if (b == Backend::kCpu) return kmeans_cpu(x, n, d, params);
#if PORTRAIT_WITH_CUDA
  return kmeans_cuda_streaming(x, n, d, params, nullptr);
#else
  no_cuda_build("kmeans");
#endif
}

void topk(const float* queries, int64_t q, const float* database, int64_t n, int d,
          const TopKParams& params, float* out_scores, int64_t* out_ids, Backend b) {
  if (b == Backend::kCpu) return topk_cpu(queries, q, database, n, d, params, out_scores, out_ids);
#if PORTRAIT_WITH_CUDA
  topk_cuda_streaming(queries, q, database, n, d, params, out_scores, out_ids, nullptr);
#else
  no_cuda_build("topk");
#endif
}

#if PORTRAIT_WITH_CUDA
struct HeadsRunner::DeviceWeights {
  DeviceBuffer<float> w1, b1, w2, b2;
  HeadsWeights w;  // the same shapes, pointing at the buffers above
};
#else
struct HeadsRunner::DeviceWeights {};
#endif

HeadsRunner::HeadsRunner(const HeadsWeights& host_weights, const HeadsParams& params, Backend b)
    : w_(host_weights), p_(params), b_(b) {
  if (b == Backend::kCpu) return;
#if PORTRAIT_WITH_CUDA
  const size_t d = size_t(w_.d), h = size_t(w_.h), c = size_t(w_.c);
  dev_ = std::make_unique<DeviceWeights>();
  dev_->w1 = DeviceBuffer<float>(w_.w1, h * d);
  if (w_.b1 != nullptr) dev_->b1 = DeviceBuffer<float>(w_.b1, h);
  dev_->w2 = DeviceBuffer<float>(w_.w2, c * h);
  if (w_.b2 != nullptr) dev_->b2 = DeviceBuffer<float>(w_.b2, c);
  dev_->w = w_;
  dev_->w.w1 = dev_->w1.get();
  dev_->w.b1 = dev_->b1.get();  // null stays null: zeros (heads.h)
  dev_->w.w2 = dev_->w2.get();
  dev_->w.b2 = dev_->b2.get();
#else
  no_cuda_build("heads");
#endif
}

HeadsRunner::~HeadsRunner() = default;

void HeadsRunner::probs(const float* x, int64_t n, float* probs) const {
  if (b_ == Backend::kCpu) return heads_probs_cpu(x, n, w_, p_, probs);
#if PORTRAIT_WITH_CUDA
  const DeviceBuffer<float> dx(x, size_t(n) * size_t(w_.d));
  DeviceBuffer<float> dp(size_t(n) * size_t(w_.c));
  heads_probs_cuda(dx.get(), n, dev_->w, p_, dp.get(), nullptr);
  dp.copy_to_host(probs, dp.size());
#endif
}

void HeadsRunner::topm(const float* x, int64_t n, int m, float* out_probs,
                       int64_t* out_ids) const {
  if (b_ == Backend::kCpu) return heads_topm_cpu(x, n, w_, p_, m, out_probs, out_ids);
#if PORTRAIT_WITH_CUDA
  const DeviceBuffer<float> dx(x, size_t(n) * size_t(w_.d));
  DeviceBuffer<float> dp(size_t(w_.c) * size_t(m));
  DeviceBuffer<int64_t> di(size_t(w_.c) * size_t(m));
  heads_topm_cuda(dx.get(), n, dev_->w, p_, m, dp.get(), di.get(), nullptr);
  dp.copy_to_host(out_probs, dp.size());
  di.copy_to_host(out_ids, di.size());
#endif
}

}  // namespace portrait::kernels
