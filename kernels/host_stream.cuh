// Double-buffered host -> device streaming of row chunks, shared by the host-streaming paths
// of k-means and top-k (data larger than GPU memory).
//
// Pipeline for chunk i (slot = i % 2):
//   host   : wait until the H2D of chunk i-2 has drained staging[slot], then memcpy chunk i
//            from the (pageable) source into staging[slot] with several CPU threads;
//   copy   : wait until the compute stream has finished with device[slot] (chunk i-2), then
//            cudaMemcpyAsync staging[slot] -> device[slot]; record copied[slot];
//   compute: wait copied[slot], run the caller's kernels on device[slot]; record
//            consumed[slot].
// Chunk i+1 is staged and copied while chunk i's kernels run, so CPU staging, PCIe and
// compute overlap; the host runs at most two chunks ahead. The compute work itself is
// exactly what a non-overlapped loop would enqueue, in the same order on the same stream,
// so results are bit-identical to it.
//
// If the source is already page-locked (cudaHostAlloc / cudaHostRegister), staging is
// skipped and chunks are copied straight from it. The copy stream is non-blocking, so it
// overlaps even when the compute stream is the legacy default stream.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cuda_check.h"
#include "kernels/parallel.h"

namespace portrait::kernels::cuda_detail {

template <typename T>
class ChunkStreamer {
 public:
  /// host: [n, d] rows; chunk_rows >= 1; `compute` is the caller's stream; staging copies use
  /// up to num_threads CPU threads (0 = all cores).
  ChunkStreamer(const T* host, int64_t n, int d, int64_t chunk_rows, cudaStream_t compute,
                int num_threads)
      : host_(host), n_(n), d_(d), chunk_(std::max<int64_t>(1, chunk_rows)),
        compute_(compute), threads_(num_threads) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, host) == cudaSuccess) {
      pinned_ = attr.type == cudaMemoryTypeHost;
    } else {
      (void)cudaGetLastError();  // older runtimes report unregistered memory as an error
    }
    try {
      const size_t bytes = static_cast<size_t>(std::min(chunk_, std::max<int64_t>(n, 1))) * d *
                           sizeof(T);
      CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
      for (int s = 0; s < 2; ++s) {
        CUDA_CHECK(cudaEventCreateWithFlags(&copied_[s], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&consumed_[s], cudaEventDisableTiming));
        CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&dev_[s]), bytes));
        if (!pinned_)
          CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&stage_[s]), bytes,
                                   cudaHostAllocDefault));
        // Record both events once so every later wait/synchronize has a defined target.
        CUDA_CHECK(cudaEventRecord(copied_[s], copy_));
        CUDA_CHECK(cudaEventRecord(consumed_[s], compute_));
      }
    } catch (...) {
      release();
      throw;
    }
  }
  ChunkStreamer(const ChunkStreamer&) = delete;
  ChunkStreamer& operator=(const ChunkStreamer&) = delete;
  ~ChunkStreamer() { release(); }

  int64_t chunk_rows() const { return chunk_; }
  bool source_pinned() const { return pinned_; }

  /// Calls fn(row_begin, rows, const T* device_rows) for every chunk in order. fn enqueues
  /// work on the compute stream that reads device_rows; it must not keep the pointer past
  /// its own kernels (the buffer is refilled two chunks later).
  template <class Fn>
  void for_each(Fn&& fn) {
    const int64_t chunks = (n_ + chunk_ - 1) / chunk_;
    if (chunks == 0) return;
    issue(0);
    for (int64_t i = 0; i < chunks; ++i) {
      const int slot = static_cast<int>(i & 1);
      const int64_t b = i * chunk_;
      CUDA_CHECK(cudaStreamWaitEvent(compute_, copied_[slot], 0));
      fn(b, std::min(chunk_, n_ - b), static_cast<const T*>(dev_[slot]));
      CUDA_CHECK(cudaEventRecord(consumed_[slot], compute_));
      if (i + 1 < chunks) issue(i + 1);
    }
  }

 private:
  void issue(int64_t j) {
    const int slot = static_cast<int>(j & 1);
    const int64_t b = j * chunk_, rows = std::min(chunk_, n_ - b);
    const size_t row_bytes = sizeof(T) * static_cast<size_t>(d_);
    const T* src = host_ + b * d_;
    if (!pinned_) {
      // staging[slot] was last read by the H2D copy of chunk j-2.
      CUDA_CHECK(cudaEventSynchronize(copied_[slot]));
      T* dst = stage_[slot];
      parallel_for(rows, threads_, [&](int64_t r0, int64_t r1) {
        std::memcpy(dst + r0 * d_, src + r0 * d_, static_cast<size_t>(r1 - r0) * row_bytes);
      }, std::max<int64_t>(1, (int64_t{8} << 20) / static_cast<int64_t>(row_bytes)));
      src = dst;
    }
    // device[slot] was last read by chunk j-2's kernels on the compute stream.
    CUDA_CHECK(cudaStreamWaitEvent(copy_, consumed_[slot], 0));
    CUDA_CHECK(cudaMemcpyAsync(dev_[slot], src, static_cast<size_t>(rows) * row_bytes,
                               cudaMemcpyHostToDevice, copy_));
    CUDA_CHECK(cudaEventRecord(copied_[slot], copy_));
  }

  void release() noexcept {  // never throws: also runs during stack unwinding
    if (copy_ != nullptr) (void)cudaStreamSynchronize(copy_);
    (void)cudaStreamSynchronize(compute_);
    for (int s = 0; s < 2; ++s) {
      if (dev_[s] != nullptr) (void)cudaFree(dev_[s]);
      if (stage_[s] != nullptr) (void)cudaFreeHost(stage_[s]);
      if (copied_[s] != nullptr) (void)cudaEventDestroy(copied_[s]);
      if (consumed_[s] != nullptr) (void)cudaEventDestroy(consumed_[s]);
      dev_[s] = nullptr;
      stage_[s] = nullptr;
      copied_[s] = consumed_[s] = nullptr;
    }
    if (copy_ != nullptr) (void)cudaStreamDestroy(copy_);
    copy_ = nullptr;
  }

  const T* host_;
  int64_t n_;
  int d_;
  int64_t chunk_;
  cudaStream_t compute_;
  int threads_;
  bool pinned_ = false;
  cudaStream_t copy_ = nullptr;
  cudaEvent_t copied_[2] = {nullptr, nullptr};
  cudaEvent_t consumed_[2] = {nullptr, nullptr};
  T* dev_[2] = {nullptr, nullptr};
  T* stage_[2] = {nullptr, nullptr};
};

}  // namespace portrait::kernels::cuda_detail
