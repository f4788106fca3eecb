// Device buffers for the GPU kernel tests (CUDA runtime only; no torch).
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/topk.h"

namespace portrait::kernels::testing {

/// An owning device array of n elements; host() synchronises the device and copies back.
template <typename T>
class Dev {
 public:
  explicit Dev(size_t n) : n_(n) {
    if (n_ > 0) CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n_ * sizeof(T)));
  }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) {
    if (n_ > 0) CUDA_CHECK(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~Dev() {
    if (p_ != nullptr) cudaFree(p_);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  T* get() const { return p_; }
  std::vector<T> host() const {
    std::vector<T> h(n_);
    CUDA_CHECK(cudaDeviceSynchronize());
    if (n_ > 0) CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

/// Brute-force score of (query qi, database row id) in double, for tolerance checks of GPU
/// results. qs [Q, d], db [N, d] row-major.
inline double exact_score(const std::vector<float>& qs, const std::vector<float>& db, int64_t qi,
                   int64_t id, int d, Metric m) {
  double dot = 0, qq = 0, xx = 0, l2 = 0;
  for (int t = 0; t < d; ++t) {
    const double a = qs[qi * d + t], b = db[id * d + t];
    dot += a * b;
    qq += a * a;
    xx += b * b;
    l2 += (a - b) * (a - b);
  }
  if (m == Metric::kL2) return l2;
  if (m == Metric::kCosine) return (qq == 0 || xx == 0) ? 0.0 : dot / std::sqrt(qq * xx);
  return dot;
}

}  // namespace portrait::kernels::testing
