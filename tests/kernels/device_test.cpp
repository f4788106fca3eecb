#include <gtest/gtest.h>

#include "kernels/device.h"

namespace portrait {
namespace {

TEST(Device, CountNeverThrowsAndIsNonNegative) {
  int n = -1;
  EXPECT_NO_THROW(n = cuda_device_count());
  EXPECT_GE(n, 0);
  EXPECT_NO_THROW(n = cuda_device_count());  // a second call after a failed probe too
  EXPECT_GE(n, 0);
}

TEST(Device, VersionStringsAreReported) {
  const std::string rt = cuda_runtime_version();
  EXPECT_FALSE(rt.empty());
#if PORTRAIT_WITH_CUDA
  EXPECT_NE(rt, "none");
#else
  EXPECT_EQ(rt, "none");
#endif
  EXPECT_FALSE(cuda_driver_version().empty());
}

}  // namespace
}  // namespace portrait
