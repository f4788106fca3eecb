// Device buffers for the GPU kernel tests (CUDA runtime only; no torch).
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "kernels/cuda_check.h"

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

}  // namespace portrait::kernels::testing
