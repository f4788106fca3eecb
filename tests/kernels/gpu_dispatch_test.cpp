// kernels/dispatch.h on Backend::kCuda: host pointers in, the CUDA launchers underneath,
// results matching the CPU twins to the launchers' own tolerances.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/device.h"
#include "kernels/dispatch.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

class DispatchCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(DispatchCuda, AutoPicksCuda) { EXPECT_EQ(choose_backend("auto", "x"), Backend::kCuda); }

TEST_F(DispatchCuda, HeadsRunnerMatchesCpuTwin) {
  const int d = 31, h = 129, c = 3;
  const int64_t n = 1025;
  const float s1 = 1.f / std::sqrt(float(d)), s2 = 3.f / std::sqrt(float(h));
  const auto w1 = testing::random_matrix(h, d, 1, -s1, s1), b1 = testing::random_matrix(1, h, 2, -s1, s1),
             w2 = testing::random_matrix(c, h, 3, -s2, s2), b2 = testing::random_matrix(1, c, 4);
  const auto x = testing::random_matrix(n, d, 5);
  const HeadsWeights w{w1.data(), b1.data(), w2.data(), b2.data(), d, h, c};
  const HeadsParams hp{};
  const HeadsRunner gpu(w, hp, Backend::kCuda);
  std::vector<float> got(size_t(n * c)), ref(got.size());
  gpu.probs(x.data(), n, got.data());
  heads_probs_cpu(x.data(), n, w, hp, ref.data());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-5) << i;
  const int m = 7;
  std::vector<float> tg(size_t(c * m)), tr(tg.size());
  std::vector<int64_t> ig(tg.size()), ir(tg.size());
  gpu.topm(x.data(), n, m, tg.data(), ig.data());
  heads_topm_cpu(x.data(), n, w, hp, m, tr.data(), ir.data());
  for (size_t i = 0; i < tg.size(); ++i) ASSERT_NEAR(tg[i], tr[i], 1e-5) << i;
}

TEST_F(DispatchCuda, TopKScoresMatchCpuTwin) {
  const int64_t q = 9, n = 2000;
  const int d = 64;
  const auto qs = testing::random_matrix(q, d, 6), db = testing::random_matrix(n, d, 7);
  TopKParams p;
  p.k = 33;
  p.metric = Metric::kCosine;
  p.math = MathMode::kSimt;
  std::vector<float> sg(size_t(q * p.k)), sr(sg.size());
  std::vector<int64_t> ig(sg.size()), ir(sg.size());
  topk(qs.data(), q, db.data(), n, d, p, sg.data(), ig.data(), Backend::kCuda);
  topk_cpu(qs.data(), q, db.data(), n, d, p, sr.data(), ir.data());
  for (size_t i = 0; i < sg.size(); ++i) ASSERT_NEAR(sg[i], sr[i], 1e-5) << i;
}

TEST_F(DispatchCuda, KMeansMatchesCpuTwinWithSimtMath) {
  const int64_t n = 5000;
  const int d = 8;
  const auto x = testing::random_matrix(n, d, 8);
  KMeansParams p;
  p.k = 6;
  p.max_iter = 5;
  p.math = MathMode::kSimt;
  const KMeansResult g = kmeans(x.data(), n, d, p, Backend::kCuda);
  const KMeansResult r = kmeans_cpu(x.data(), n, d, p);
  ASSERT_EQ(g.centroids.size(), r.centroids.size());
  // SIMT assignments equal the CPU's up to fp32 near-ties, so the runs agree closely.
  EXPECT_NEAR(g.inertia, r.inertia, 1e-2 * r.inertia);
}

}  // namespace
}  // namespace portrait::kernels
