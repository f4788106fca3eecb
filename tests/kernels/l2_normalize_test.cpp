#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/l2_normalize.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

TEST(L2Normalize, RowsHaveUnitNorm) {
  for (int d : {1, 3, 64, 257}) {
    const int64_t n = 33;
    auto x = testing::random_matrix(n, d, 7 + d, -3.f, 5.f);
    std::vector<float> out(x.size());
    l2_normalize_cpu(x.data(), out.data(), n, d);
    for (int64_t i = 0; i < n; ++i) {
      double ss = 0, ref_ss = 0;
      for (int j = 0; j < d; ++j) ss += double(out[i * d + j]) * out[i * d + j];
      for (int j = 0; j < d; ++j) ref_ss += double(x[i * d + j]) * x[i * d + j];
      EXPECT_NEAR(ss, 1.0, 1e-5) << "row " << i << " d " << d;
      // direction preserved
      for (int j = 0; j < d; ++j)
        EXPECT_NEAR(out[i * d + j], x[i * d + j] / std::sqrt(ref_ss), 1e-6);
    }
  }
}

TEST(L2Normalize, ZeroRowsStayZero) {
  std::vector<float> x = {0, 0, 0, 3, 4, 0};
  std::vector<float> out(6, 9.f);
  l2_normalize_cpu(x.data(), out.data(), 2, 3);
  EXPECT_EQ(out[0], 0.f);
  EXPECT_EQ(out[1], 0.f);
  EXPECT_EQ(out[2], 0.f);
  EXPECT_FLOAT_EQ(out[3], 0.6f);
  EXPECT_FLOAT_EQ(out[4], 0.8f);
}

TEST(L2Normalize, InPlaceEqualsOutOfPlace) {
  auto x = testing::random_matrix(1025, 31, 3);
  std::vector<float> out(x.size());
  l2_normalize_cpu(x.data(), out.data(), 1025, 31);
  l2_normalize_cpu(x.data(), x.data(), 1025, 31);
  EXPECT_EQ(x, out);
}

TEST(L2Normalize, NonFiniteRowsBecomeNaNWithoutThrowing) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1, inf, 2, std::nanf(""), 1, 1};
  std::vector<float> out(6);
  EXPECT_NO_THROW(l2_normalize_cpu(x.data(), out.data(), 3, 2));
  EXPECT_TRUE(std::isnan(out[1]));
  EXPECT_TRUE(std::isnan(out[2]) && std::isnan(out[3]));
  EXPECT_FLOAT_EQ(out[4], 1.f / std::sqrt(2.f));
}

TEST(L2Normalize, MultithreadedEqualsSingleThreaded) {
  auto x = testing::random_matrix(5000, 17, 11);
  std::vector<float> a(x.size()), b(x.size());
  l2_normalize_cpu(x.data(), a.data(), 5000, 17, {.num_threads = 1});
  l2_normalize_cpu(x.data(), b.data(), 5000, 17, {.num_threads = 4});
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace portrait::kernels
