// Runtime queries about the CUDA installation. Safe to call in every build: without CUDA, or
// without a driver or device, they report "nothing" instead of throwing, so the CLI's
// `version` command and GPU tests (GTEST_SKIP) can use them unconditionally.
#pragma once

#include <string>

namespace portrait {

/// Number of usable CUDA devices; 0 when built without CUDA, with no driver, or no device.
int cuda_device_count();

/// Free memory on CUDA device `device` in bytes (cudaMemGetInfo); -1 without CUDA or device.
long long cuda_free_memory_bytes(int device);

/// CUDA runtime version linked in, e.g. "13.0"; "none" when built without CUDA.
std::string cuda_runtime_version();

/// Version supported by the installed driver, e.g. "13.0"; "none" without CUDA or driver.
std::string cuda_driver_version();

}  // namespace portrait
