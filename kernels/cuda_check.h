// Error checking for CUDA runtime and cuBLAS calls. Failures THROW (never abort) so that a
// long-running job can report the failing expression and exit through the normal error path.
// Only included from .cu files and CUDA-aware .cpp files.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace portrait::detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* expr, const char* file,
                                          int line) {
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ") in `" + expr + "` at " + file + ":" +
                           std::to_string(line));
}

}  // namespace portrait::detail

/// Evaluates a cudaError_t expression and throws std::runtime_error unless it is cudaSuccess.
#define CUDA_CHECK(expr)                                                        \
  do {                                                                          \
    const cudaError_t portrait_cuda_err_ = (expr);                              \
    if (portrait_cuda_err_ != cudaSuccess)                                      \
      ::portrait::detail::throw_cuda_error(portrait_cuda_err_, #expr, __FILE__, \
                                           __LINE__);                           \
  } while (0)

// Launch errors (bad config, too much shared memory) surface only through cudaGetLastError.
// Define PORTRAIT_CUDA_SYNC_CHECK to also synchronise the device after every launch, so that
// asynchronous faults are attributed to the right kernel while debugging.
#ifdef PORTRAIT_CUDA_SYNC_CHECK
#define CUDA_CHECK_LAUNCH()                      \
  do {                                           \
    CUDA_CHECK(cudaGetLastError());              \
    CUDA_CHECK(cudaDeviceSynchronize());         \
  } while (0)
#else
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif
