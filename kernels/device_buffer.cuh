// Stream-ordered scratch allocation (cudaMallocAsync) with RAII release, so that launchers
// that throw half-way do not leak device memory.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_check.h"

namespace portrait::kernels::cuda_detail {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t count, cudaStream_t stream) : stream_(stream), count_(count) {
    if (count > 0) CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&ptr_), count * sizeof(T), stream));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) (void)cudaFreeAsync(ptr_, stream_);  // never throw from a destructor
  }
  T* get() const { return ptr_; }
  size_t size() const { return count_; }

 private:
  void swap(DeviceBuffer& o) noexcept {
    T* p = ptr_;
    ptr_ = o.ptr_;
    o.ptr_ = p;
    cudaStream_t s = stream_;
    stream_ = o.stream_;
    o.stream_ = s;
    size_t c = count_;
    count_ = o.count_;
    o.count_ = c;
  }
  T* ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
  size_t count_ = 0;
};

/// Upper bound of dynamic shared memory per block on the current device (opt-in limit).
inline int max_dynamic_smem() {
  int dev = 0, bytes = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return bytes;
}

inline int sm_count() {
  int dev = 0, n = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

}  // namespace portrait::kernels::cuda_detail
