// The one owning device array of the project: stream-ordered allocation (cudaMallocAsync)
// with RAII release, so launchers that throw half-way do not leak device memory, plus the
// host copies every user needs (kernels' launchers, kernels/dispatch.cpp, the GPU tests).
// CUDA runtime only, no torch; errors throw through kernels/cuda_check.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "kernels/cuda_check.h"

namespace portrait::kernels {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  /// `count` uninitialised elements, allocated and later freed in `stream`'s order
  /// (nullptr = the legacy default stream, which orders against every blocking stream).
  explicit DeviceBuffer(size_t count, cudaStream_t stream = nullptr)
      : stream_(stream), count_(count) {
    if (count > 0)
      CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&ptr_), count * sizeof(T), stream));
  }
  /// A device copy of host [count]. The host array may be reused on return (pageable
  /// sources are staged by the driver before cudaMemcpyAsync returns).
  DeviceBuffer(const T* host, size_t count, cudaStream_t stream = nullptr)
      : DeviceBuffer(count, stream) {
    if (count > 0)
      CUDA_CHECK(cudaMemcpyAsync(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
  explicit DeviceBuffer(const std::vector<T>& host, cudaStream_t stream = nullptr)
      : DeviceBuffer(host.data(), host.size(), stream) {}
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

  /// Copies the first `count` elements into host, after the work queued on the buffer's
  /// stream; returns when they are there.
  void copy_to_host(T* host, size_t count) const {
    if (count > 0)
      CUDA_CHECK(cudaMemcpyAsync(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  /// All elements, as copy_to_host.
  std::vector<T> to_host() const {
    std::vector<T> h(count_);
    copy_to_host(h.data(), h.size());
    return h;
  }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(stream_, o.stream_);
    std::swap(count_, o.count_);
  }
  T* ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
  size_t count_ = 0;
};

}  // namespace portrait::kernels
