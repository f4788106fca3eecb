// bf16 input paths of the CPU references (the baselines the CUDA bf16 paths are compared
// against) and the MathMode plumbing. Label unit: runs in CI without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kmeans.h"
#include "kernels/topk.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

std::vector<bf16_bits> to_bf16(const std::vector<float>& x) {
  std::vector<bf16_bits> b(x.size());
  for (size_t i = 0; i < x.size(); ++i) b[i] = float_to_bf16(x[i]);
  return b;
}

std::vector<float> widen(const std::vector<bf16_bits>& b) {
  std::vector<float> x(b.size());
  for (size_t i = 0; i < b.size(); ++i) x[i] = bf16_to_float(b[i]);
  return x;
}

TEST(Bf16, WideningIsExactAndEveryPatternRoundTrips) {
  for (uint32_t u = 0; u <= 0xffffu; ++u) {
    const auto b = static_cast<bf16_bits>(u);
    const float f = bf16_to_float(b);
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    ASSERT_EQ(bits, u << 16) << u;  // widening only appends zero bits
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f)))) << u;
    } else {
      ASSERT_EQ(float_to_bf16(f), b) << u;
    }
  }
}

TEST(Bf16, RoundsToNearestEvenLikeTorch) {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa.
  EXPECT_EQ(float_to_bf16(1.00390625f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.01171875f), 0x3f82);
  EXPECT_EQ(float_to_bf16(std::nextafter(1.00390625f, 2.f)), 0x3f81);  // above the tie: up
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  // Values above the largest bf16 round to infinity, as torch.tensor(3.4e38).bfloat16().
  EXPECT_EQ(float_to_bf16(3.4e38f), 0x7f80);
}

TEST(KMeansBf16, CpuEqualsFp32RunOnTheWidenedCopy) {
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    const auto xb = to_bf16(testing::random_matrix(2049, 13, 21, -3.f, 3.f));
    const auto xf = widen(xb);
    const KMeansParams p{.k = 11, .max_iter = 8, .metric = m, .seed = 3};
    const auto a = kmeans_cpu(xb.data(), 2049, 13, p);
    const auto b = kmeans_cpu(xf.data(), 2049, 13, p);
    EXPECT_EQ(a.assignments, b.assignments) << metric_name(m);
    EXPECT_EQ(a.centroids, b.centroids) << metric_name(m);
    EXPECT_EQ(a.inertia_history, b.inertia_history) << metric_name(m);
    EXPECT_EQ(a.reseeded, b.reseeded);
  }
}

TEST(KMeansBf16, AssignEqualsFp32OnTheWidenedCopy) {
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    for (auto [n, d, k] : {std::tuple{1, 1, 1}, {33, 31, 32}, {1025, 33, 129}}) {
      const auto xb = to_bf16(testing::random_matrix(n, d, 5 + n));
      const auto xf = widen(xb);
      auto c = testing::random_matrix(k, d, 6 + k);
      if (m == Metric::kCosine) {
        for (int i = 0; i < k; ++i) {
          const float inv = row_inv_norm(c.data() + i * d, d);
          for (int j = 0; j < d; ++j) c[i * d + j] *= inv;
        }
      }
      std::vector<int32_t> a1(n), a2(n);
      std::vector<float> d1(n), d2(n);
      kmeans_assign_cpu(xb.data(), n, d, c.data(), k, m, 2, a1.data(), d1.data());
      kmeans_assign_cpu(xf.data(), n, d, c.data(), k, m, 2, a2.data(), d2.data());
      EXPECT_EQ(a1, a2);
      EXPECT_EQ(d1, d2);
    }
  }
}

TEST(KMeansBf16, RecoversPlantedClustersFromBf16Data) {
  // Blobs at ~U(-50, 50)^d with sigma 0.05: bf16's step at 50 (0.25) wipes out most of the
  // noise but not the separation.
  Rng rng(17);
  const int64_t n = 1500;
  const int d = 24, k = 6;
  std::vector<float> centres(static_cast<size_t>(k) * d), x(static_cast<size_t>(n) * d);
  std::vector<int> label(n);
  for (auto& c : centres) c = static_cast<float>(rng.uniform() * 100.0 - 50.0);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i < k ? i : static_cast<int64_t>(rng.below(k)));
    label[i] = c;
    for (int j = 0; j < d; ++j) x[i * d + j] = centres[c * d + j] + float(0.05 * rng.normal());
  }
  const auto xb = to_bf16(x);
  const auto r = kmeans_cpu(xb.data(), n, d, {.k = k, .seed = 4});
  EXPECT_EQ(testing::adjusted_rand_index({r.assignments.begin(), r.assignments.end()}, label),
            1.0);
}

TEST(KMeansBf16, RejectsNonFiniteBf16) {
  auto xb = to_bf16(testing::random_matrix(10, 2, 1));
  xb[3] = 0x7f80;  // +inf
  EXPECT_THROW(kmeans_cpu(xb.data(), 10, 2, {.k = 2}), std::invalid_argument);
  xb[3] = 0x7fc0;  // NaN
  EXPECT_THROW(kmeans_cpu(xb.data(), 10, 2, {.k = 2}), std::invalid_argument);
}

TEST(TopKBf16, CpuEqualsFp32RunOnTheWidenedCopy) {
  const int64_t q = 17, n = 1025;
  const int d = 19;
  const auto qb = to_bf16(testing::random_matrix(q, d, 1));
  const auto xb = to_bf16(testing::random_matrix(n, d, 2));
  const auto qf = widen(qb), xf = widen(xb);
  std::vector<int64_t> off = {0}, ids;
  for (int64_t i = 0; i < q; ++i) {
    for (int64_t j = i; j < n; j += 7) ids.push_back(j);
    off.push_back(static_cast<int64_t>(ids.size()));
  }
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
    for (int k : {1, 33, 1024}) {
      TopKParams p{.k = k, .metric = m, .exclude_self = true, .self_offset = 3};
      if (k == 33) {
        p.exclude_offsets = off.data();
        p.exclude_ids = ids.data();
      }
      std::vector<float> s1(q * k), s2(q * k);
      std::vector<int64_t> i1(q * k), i2(q * k);
      topk_cpu(qb.data(), q, xb.data(), n, d, p, s1.data(), i1.data());
      topk_cpu(qf.data(), q, xf.data(), n, d, p, s2.data(), i2.data());
      EXPECT_EQ(i1, i2) << metric_name(m) << " k=" << k;
      EXPECT_EQ(s1, s2) << metric_name(m) << " k=" << k;
    }
  }
}

TEST(TopKBf16, ValidatesBeforeWidening) {
  std::vector<bf16_bits> x(4, 0);
  std::vector<float> s(1);
  std::vector<int64_t> i(1);
  EXPECT_THROW(topk_cpu(x.data(), 1, x.data(), 1, 4, {.k = 0}, s.data(), i.data()),
               std::invalid_argument);
  EXPECT_THROW(topk_cpu(x.data(), 1, x.data(), 1, 0, {.k = 1}, s.data(), i.data()),
               std::invalid_argument);
}

TEST(MathModeParams, DefaultsAreAutoAndNamesAreStable) {
  EXPECT_EQ(KMeansParams{}.math, MathMode::kAuto);
  EXPECT_EQ(TopKParams{}.math, MathMode::kAuto);
  EXPECT_STREQ(math_mode_name(MathMode::kAuto), "auto");
  EXPECT_STREQ(math_mode_name(MathMode::kSimt), "simt");
  EXPECT_STREQ(math_mode_name(MathMode::kTf32), "tf32");
  EXPECT_STREQ(math_mode_name(MathMode::kTf32x3), "tf32x3");
  EXPECT_STREQ(math_mode_name(MathMode::kBf16), "bf16");
}

TEST(MathModeParams, CpuReferenceIgnoresMath) {
  const auto x = testing::random_matrix(300, 5, 9);
  KMeansParams p{.k = 4, .max_iter = 5};
  const auto a = kmeans_cpu(x.data(), 300, 5, p);
  p.math = MathMode::kBf16;
  const auto b = kmeans_cpu(x.data(), 300, 5, p);
  EXPECT_EQ(a.assignments, b.assignments);
  EXPECT_EQ(a.centroids, b.centroids);
}

}  // namespace
}  // namespace portrait::kernels
