// `portrait version`: Portrait, LibTorch, CUDA and NCCL versions, and whether a GPU is visible.
// Torch-free, so the `portrait` front end answers it without loading LibTorch: the LibTorch
// version is the one built against (CMake's Torch_VERSION), GPUs are counted by the CUDA
// runtime the kernels use (the devices torch would see), NCCL is asked through dlopen.
#include <dlfcn.h>
#include <fmt/format.h>

#include <iostream>

#include "apps/commands.h"
#include "core/error.h"
#include "kernels/device.h"

#ifndef PORTRAIT_VERSION
#define PORTRAIT_VERSION "0.0.0"
#endif
#ifndef PORTRAIT_GIT_SHA
#define PORTRAIT_GIT_SHA "unknown"
#endif
#ifndef PORTRAIT_TORCH_VERSION
#define PORTRAIT_TORCH_VERSION "unknown"
#endif

namespace portrait::apps {

namespace {

// NCCL's version from the library torch would load; "not found" on CPU-only installs. By
// soname first (a copy already mapped, or one on the library path), then the copy of the
// torch wheel's nvidia-nccl package found at configure time.
std::string nccl_version() {
  void* h = dlopen("libnccl.so.2", RTLD_LAZY | RTLD_NOLOAD);
  if (!h) h = dlopen("libnccl.so.2", RTLD_LAZY);
#ifdef PORTRAIT_NCCL_LIBRARY
  if (!h) h = dlopen(PORTRAIT_NCCL_LIBRARY, RTLD_LAZY);
#endif
  if (!h) return "not found";
  using Fn = int (*)(int*);
  auto fn = reinterpret_cast<Fn>(dlsym(h, "ncclGetVersion"));
  int v = 0;
  if (!fn || fn(&v) != 0) return "unknown";
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
}

}  // namespace

CommandSpec version_command() {
  CommandSpec c;
  c.name = "version";
  c.summary = "print Portrait, LibTorch, CUDA and NCCL versions and visible GPUs";
  c.creates_run_dir = false;
  c.run = [](JobContext&) {
    const int gpus = cuda_device_count();  // 0 without a driver: not an error for a version query
    std::cout << fmt::format("Portrait  {} ({})\n", PORTRAIT_VERSION, PORTRAIT_GIT_SHA);
    std::cout << fmt::format("LibTorch  {}\n", PORTRAIT_TORCH_VERSION);
#ifdef PORTRAIT_TORCH_CUDA_VERSION
    const char* torch_cuda = PORTRAIT_TORCH_CUDA_VERSION;
#else
    const char* torch_cuda = "none (CPU-only torch)";
#endif
    std::cout << fmt::format("CUDA      torch built with {}; kernels: {} (runtime {}, driver {})\n",
                             torch_cuda, PORTRAIT_WITH_CUDA ? "CUDA" : "CPU only",
                             cuda_runtime_version(), cuda_driver_version());
    std::cout << fmt::format("NCCL      {}\n", nccl_version());
    std::cout << fmt::format("GPUs      {}\n",
                             gpus > 0 ? fmt::format("{} visible", gpus) : std::string("none visible (CPU mode)"));
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
