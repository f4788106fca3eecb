#include "kernels/device.h"

#if PORTRAIT_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace portrait {

namespace {
[[maybe_unused]] std::string format_version(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
}  // namespace

int cuda_device_count() {
#if PORTRAIT_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    // No driver / no device is a normal situation on build machines: clear the sticky
    // error so later runtime calls do not report it, and say "no devices".
    (void)cudaGetLastError();
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

long long cuda_free_memory_bytes(int device) {
#if PORTRAIT_WITH_CUDA
  if (device < 0 || device >= cuda_device_count()) return -1;
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess) prev = device;
  size_t free = 0, total = 0;
  const bool ok = cudaSetDevice(device) == cudaSuccess && cudaMemGetInfo(&free, &total) == cudaSuccess;
  cudaSetDevice(prev);
  if (!ok) {
    (void)cudaGetLastError();
    return -1;
  }
  return static_cast<long long>(free);
#else
  (void)device;
  return -1;
#endif
}

std::string cuda_runtime_version() {
#if PORTRAIT_WITH_CUDA
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) {
    (void)cudaGetLastError();
    return "unknown";
  }
  return format_version(v);
#else
  return "none";
#endif
}

std::string cuda_driver_version() {
#if PORTRAIT_WITH_CUDA
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess || v == 0) {
    (void)cudaGetLastError();
    return "none";
  }
  return format_version(v);
#else
  return "none";
#endif
}

}  // namespace portrait
