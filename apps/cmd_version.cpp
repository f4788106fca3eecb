// `portrait version`: Portrait, LibTorch, CUDA and NCCL versions, and whether a GPU is visible.
// The only apps/ translation unit that includes torch headers (they are slow to compile).
#include <dlfcn.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/version.h>

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

namespace portrait::apps {

namespace {

// NCCL's version from the library torch loaded (or would load); "not found" on CPU-only
// installs. dlopen by soname finds the copy already mapped by libtorch_cuda.
std::string nccl_version() {
  void* h = dlopen("libnccl.so.2", RTLD_LAZY | RTLD_NOLOAD);
  if (!h) h = dlopen("libnccl.so.2", RTLD_LAZY);
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
    int gpus = 0;
    try {
      gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
    } catch (const std::exception&) {
      gpus = 0;  // no driver: not an error for a version query
    }
    std::cout << fmt::format("Portrait  {} ({})\n", PORTRAIT_VERSION, PORTRAIT_GIT_SHA);
    std::cout << fmt::format("LibTorch  {}\n", TORCH_VERSION);
#ifdef PORTRAIT_TORCH_CUDA_VERSION
    const char* torch_cuda = PORTRAIT_TORCH_CUDA_VERSION;
#else
    const char* torch_cuda = "none (CPU-only torch)";
#endif
    std::cout << fmt::format("CUDA      torch built with {}; kernels: {} (runtime {}, driver {})\n",
                             torch_cuda, PORTRAIT_WITH_CUDA ? "CUDA" : "CPU only",
                             cuda_runtime_version(), cuda_driver_version());
    std::cout << fmt::format("NCCL      {}\n", nccl_version());
    std::cout << fmt::format("GPUs      {} (kernels see {})\n",
                             gpus > 0 ? fmt::format("{} visible", gpus) : std::string("none visible (CPU mode)"),
                             cuda_device_count());
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
