// CUDA kernels vs their CPU twins. Label `gpu`: every test GTEST_SKIP()s without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <set>

#include "kernels/cuda_check.h"
#include "kernels/device.h"
#include "kernels/heads.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/l2_normalize.cuh"
#include "kernels/topk.cuh"
#include "gpu_util.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {


class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

class L2NormalizeCuda : public Gpu {};
class TopKCuda : public Gpu {};
class HeadsCuda : public Gpu {};
class KMeansCuda : public Gpu {};

TEST_F(L2NormalizeCuda, MatchesCpuOnOddSizes) {
  for (int64_t n : {1, 31, 33, 1025}) {
    for (int d : {1, 31, 64, 257}) {
      auto x = testing::random_matrix(n, d, n + d);
      x[0] = 0.f;
      std::vector<float> ref(x.size());
      l2_normalize_cpu(x.data(), ref.data(), n, d);
      DeviceBuffer<float> dx(x), dout(x.size());
      l2_normalize_cuda(dx.get(), dout.get(), n, d, nullptr);
      const auto got = dout.to_host();
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-6) << i;
    }
  }
}

using testing::exact_score;

// GPU result vs CPU twin: same number of filled slots, scores equal within tol rank by
// rank, every returned id distinct, allowed, and truly scoring what was reported.
void expect_topk_close(const std::vector<float>& qs, const std::vector<float>& db, int64_t q,
                       int d, const TopKParams& p, const std::vector<float>& cs,
                       const std::vector<int64_t>& ci, const std::vector<float>& gs,
                       const std::vector<int64_t>& gi, double tol) {
  const int k = p.k;
  for (int64_t i = 0; i < q; ++i) {
    std::set<int64_t> seen;
    for (int r = 0; r < k; ++r) {
      SCOPED_TRACE("query " + std::to_string(i) + " rank " + std::to_string(r));
      const int64_t c_id = ci[i * k + r], g_id = gi[i * k + r];
      ASSERT_EQ(c_id < 0, g_id < 0);
      if (g_id < 0) {
        ASSERT_EQ(gs[i * k + r], topk_fill_score(p.metric));
        continue;
      }
      const double scale = std::max(1.0, std::fabs(double(cs[i * k + r])));
      ASSERT_NEAR(gs[i * k + r], cs[i * k + r], tol * scale);
      ASSERT_NEAR(exact_score(qs, db, i, g_id, d, p.metric), gs[i * k + r], tol * scale);
      ASSERT_TRUE(seen.insert(g_id).second) << "duplicate id";
      if (p.exclude_self) {
        ASSERT_NE(g_id, i + p.self_offset);
      }
      if (p.exclude_offsets != nullptr) {
        const int64_t* b = p.exclude_ids + p.exclude_offsets[i];
        const int64_t* e = p.exclude_ids + p.exclude_offsets[i + 1];
        ASSERT_FALSE(std::binary_search(b, e, g_id)) << "excluded id returned";
      }
    }
  }
}

struct TopKOut {
  std::vector<float> s;
  std::vector<int64_t> i;
};

TopKOut gpu_topk(const std::vector<float>& qs, int64_t q, const std::vector<float>& db,
                 int64_t n, int d, TopKParams p) {
  DeviceBuffer<float> dq(qs), ddb(db), ds(static_cast<size_t>(q) * p.k);
  DeviceBuffer<int64_t> di(static_cast<size_t>(q) * p.k);
  std::vector<int64_t> off, ids;
  std::unique_ptr<DeviceBuffer<int64_t>> doff, dids;
  if (p.exclude_offsets != nullptr) {
    off.assign(p.exclude_offsets, p.exclude_offsets + q + 1);
    ids.assign(p.exclude_ids, p.exclude_ids + std::max<int64_t>(off[q], 1));
    doff = std::make_unique<DeviceBuffer<int64_t>>(off);
    dids = std::make_unique<DeviceBuffer<int64_t>>(ids);
    p.exclude_offsets = doff->get();
    p.exclude_ids = dids->get();
  }
  topk_cuda(dq.get(), q, ddb.get(), n, d, p, ds.get(), di.get(), nullptr);
  return {ds.to_host(), di.to_host()};
}

TopKOut cpu_topk(const std::vector<float>& qs, int64_t q, const std::vector<float>& db,
                 int64_t n, int d, const TopKParams& p) {
  TopKOut o{std::vector<float>(q * p.k), std::vector<int64_t>(q * p.k)};
  topk_cpu(qs.data(), q, db.data(), n, d, p, o.s.data(), o.i.data());
  return o;
}

TEST_F(TopKCuda, MatchesCpuOnOddSizes) {
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
    for (int64_t n : {1, 31, 32, 33, 127, 1025, 5000}) {
      for (int d : {1, 33, 64}) {
        for (int64_t q : {1, 65, 200}) {
          auto qs = testing::random_matrix(q, d, 1 + n + d);
          auto db = testing::random_matrix(n, d, 2 + n * 7 + d);
          for (int k : {1, 10, 129, 1024}) {
            SCOPED_TRACE(std::string(metric_name(m)) + " n=" + std::to_string(n) + " d=" +
                         std::to_string(d) + " q=" + std::to_string(q) + " k=" +
                         std::to_string(k));
            const TopKParams p{.k = k, .metric = m};
            const auto c = cpu_topk(qs, q, db, n, d, p);
            const auto g = gpu_topk(qs, q, db, n, d, p);
            expect_topk_close(qs, db, q, d, p, c.s, c.i, g.s, g.i, 1e-4);
          }
        }
      }
    }
  }
}

TEST_F(TopKCuda, ExcludedIdsAndSelfNeverReturned) {
  const int64_t q = 70, n = 1025;
  const int d = 16;
  auto db = testing::random_matrix(n, d, 4);
  std::vector<float> qs(db.begin() + 100 * d, db.begin() + (100 + q) * d);
  std::vector<int64_t> off = {0}, ids;
  for (int64_t i = 0; i < q; ++i) {
    for (int64_t j = i % 5; j < n; j += 3) ids.push_back(j);
    off.push_back(static_cast<int64_t>(ids.size()));
  }
  for (int k : {1, 50, 700}) {
    TopKParams p{.k = k, .metric = Metric::kL2, .exclude_self = true, .self_offset = 100,
                 .exclude_offsets = off.data(), .exclude_ids = ids.data()};
    const auto c = cpu_topk(qs, q, db, n, d, p);
    const auto g = gpu_topk(qs, q, db, n, d, p);
    expect_topk_close(qs, db, q, d, p, c.s, c.i, g.s, g.i, 1e-4);
  }
}

TEST_F(TopKCuda, NaNNeverSelectedAndKBeyondNIsFilled) {
  const int64_t q = 3, n = 40;
  const int d = 5;
  auto qs = testing::random_matrix(q, d, 1);
  auto db = testing::random_matrix(n, d, 2);
  for (int64_t j = 0; j < n; j += 3) db[j * d + 1] = std::nanf("");
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
    const TopKParams p{.k = 64, .metric = m};
    const auto c = cpu_topk(qs, q, db, n, d, p);
    const auto g = gpu_topk(qs, q, db, n, d, p);
    expect_topk_close(qs, db, q, d, p, c.s, c.i, g.s, g.i, 1e-4);
  }
}

TEST_F(TopKCuda, TiesReturnEqualScoresWithoutDuplicates) {
  auto qs = testing::grid_matrix(9, 3, 1);
  auto db = testing::grid_matrix(2000, 3, 2);
  for (int k : {1, 100, 1024}) {
    const TopKParams p{.k = k};
    const auto c = cpu_topk(qs, 9, db, 2000, 3, p);
    const auto g = gpu_topk(qs, 9, db, 2000, 3, p);
    expect_topk_close(qs, db, 9, 3, p, c.s, c.i, g.s, g.i, 0.0);  // small ints: exact
  }
}

TEST_F(TopKCuda, StreamingEqualsDeviceResident) {
  const int64_t q = 33, n = 3001;
  const int d = 24;
  auto qs = testing::random_matrix(q, d, 8);
  auto db = testing::random_matrix(n, d, 9);
  for (Metric m : {Metric::kInnerProduct, Metric::kL2}) {
    const TopKParams p{.k = 20, .metric = m};
    const auto g = gpu_topk(qs, q, db, n, d, p);
    std::vector<float> s(q * 20);
    std::vector<int64_t> i(q * 20);
    topk_cuda_streaming(qs.data(), q, db.data(), n, d, p, s.data(), i.data(), nullptr, 500);
    // Scores of a (query, row) pair do not depend on tiling, so results are identical.
    EXPECT_EQ(s, g.s);
    EXPECT_EQ(i, g.i);
  }
}

struct Mlp {
  int d, h, c;
  std::vector<float> w1, b1, w2, b2;
};
Mlp make_mlp(int d, int h, int c, uint64_t seed) {
  const float s1 = 1.f / std::sqrt(float(d)), s2 = 3.f / std::sqrt(float(h));
  return {d, h, c, testing::random_matrix(h, d, seed, -s1, s1),
          testing::random_matrix(1, h, seed + 1, -s1, s1),
          testing::random_matrix(c, h, seed + 2, -s2, s2),
          testing::random_matrix(1, c, seed + 3, -1.f, 1.f)};
}

struct DevMlp {
  DeviceBuffer<float> w1, b1, w2, b2;
  HeadsWeights w;
  explicit DevMlp(const Mlp& m)
      : w1(m.w1), b1(m.b1), w2(m.w2), b2(m.b2),
        w{w1.get(), b1.get(), w2.get(), b2.get(), m.d, m.h, m.c} {}
};

HeadsWeights host_weights(const Mlp& m) {
  return {m.w1.data(), m.b1.data(), m.w2.data(), m.b2.data(), m.d, m.h, m.c};
}

TEST_F(HeadsCuda, ProbabilitiesMatchCpu) {
  for (Activation act : {Activation::kRelu, Activation::kGeluErf, Activation::kGeluTanh}) {
    for (auto [n, d, h, c] : {std::tuple{1, 1, 1, 1}, {33, 31, 129, 3}, {1025, 64, 256, 7},
                              {127, 256, 1024, 2}}) {
      const Mlp m = make_mlp(d, h, c, 3 + d);
      auto x = testing::random_matrix(n, d, 4 + n);
      std::vector<float> ref(static_cast<size_t>(n) * c);
      heads_probs_cpu(x.data(), n, host_weights(m), {.activation = act}, ref.data());
      DevMlp dm(m);
      DeviceBuffer<float> dx(x), dp(ref.size());
      heads_probs_cuda(dx.get(), n, dm.w, {.activation = act}, dp.get(), nullptr);
      const auto got = dp.to_host();
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-5) << i;
      // bf16 input
      std::vector<bf16_bits> xb(x.size());
      for (size_t i = 0; i < x.size(); ++i) xb[i] = float_to_bf16(x[i]);
      heads_probs_cpu(xb.data(), n, host_weights(m), {.activation = act}, ref.data());
      DeviceBuffer<bf16_bits> dxb(xb);
      heads_probs_cuda(dxb.get(), n, dm.w, {.activation = act}, dp.get(), nullptr);
      const auto gotb = dp.to_host();
      for (size_t i = 0; i < gotb.size(); ++i) ASSERT_NEAR(gotb[i], ref[i], 1e-5) << i;
    }
  }
}

TEST_F(HeadsCuda, TopMMatchesCpu) {
  for (auto [n, m, c] : {std::tuple{1, 1, 1}, {33, 5, 3}, {1025, 100, 4}, {5000, 1024, 9},
                         {20, 64, 2}}) {
    const Mlp mlp = make_mlp(32, 64, c, 5);
    auto x = testing::random_matrix(n, 32, 6 + n);
    std::vector<float> probs(static_cast<size_t>(n) * c), cp(c * m);
    std::vector<int64_t> ci(c * m);
    heads_probs_cpu(x.data(), n, host_weights(mlp), {}, probs.data());
    heads_topm_cpu(x.data(), n, host_weights(mlp), {}, m, cp.data(), ci.data());
    DevMlp dm(mlp);
    DeviceBuffer<float> dx(x), dp(c * m);
    DeviceBuffer<int64_t> di(c * m);
    heads_topm_cuda(dx.get(), n, dm.w, {}, m, dp.get(), di.get(), nullptr);
    const auto gp = dp.to_host();
    const auto gi = di.to_host();
    for (int h = 0; h < c; ++h) {
      std::set<int64_t> seen;
      for (int r = 0; r < m; ++r) {
        const int64_t g = gi[h * m + r];
        ASSERT_EQ(g < 0, ci[h * m + r] < 0) << "head " << h << " rank " << r;
        if (g < 0) continue;
        ASSERT_NEAR(gp[h * m + r], cp[h * m + r], 1e-5);
        ASSERT_NEAR(probs[g * c + h], gp[h * m + r], 1e-5);
        ASSERT_TRUE(seen.insert(g).second);
      }
    }
  }
}

// Planted blobs, as in the CPU tests.
std::pair<std::vector<float>, std::vector<int>> planted(int64_t n, int d, int k, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> centres(static_cast<size_t>(k) * d), x(static_cast<size_t>(n) * d);
  std::vector<int> label(n);
  for (auto& c : centres) c = static_cast<float>(rng.uniform() * 100.0 - 50.0);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i < k ? i : static_cast<int64_t>(rng.below(k)));
    label[i] = c;
    for (int j = 0; j < d; ++j) x[i * d + j] = centres[c * d + j] + float(0.05 * rng.normal());
  }
  return {x, label};
}

TEST_F(KMeansCuda, AssignmentMatchesCpu) {
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    for (auto [n, d, k] : {std::tuple{1, 1, 1}, {1025, 31, 33}, {5000, 64, 300}, {127, 7, 129}}) {
      auto x = testing::random_matrix(n, d, 1 + n);
      auto c = testing::random_matrix(k, d, 2 + k);
      if (m == Metric::kCosine) l2_normalize_cpu(c.data(), c.data(), k, d);
      std::vector<int32_t> ca(n);
      std::vector<float> cd(n);
      kmeans_assign_cpu(x.data(), n, d, c.data(), k, m, 0, ca.data(), cd.data());
      DeviceBuffer<float> dx(x), dc(c), dd(n);
      DeviceBuffer<int32_t> da(n);
      // fp32 SIMT: same arithmetic as the CPU twin up to summation order. The tensor-core
      // modes have their own bounds (gpu_tc_test.cpp).
      kmeans_assign_cuda(dx.get(), n, d, dc.get(), k, m, da.get(), dd.get(), nullptr,
                         MathMode::kSimt);
      const auto ga = da.to_host();
      const auto gd = dd.to_host();
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_GE(ga[i], 0);
        ASSERT_LT(ga[i], k);
        // Either the same centroid or an equally near one (within rounding).
        ASSERT_NEAR(gd[i], cd[i], 1e-4 * std::max(1.f, cd[i])) << i;
      }
    }
  }
}

TEST_F(KMeansCuda, RecoversPlantedClustersAndMatchesCpuCentroids) {
  auto [x, label] = planted(5000, 32, 9, 3);
  const KMeansParams p{.k = 9, .tol = 0.0, .seed = 5};
  const auto cpu = kmeans_cpu(x.data(), 5000, 32, p);
  DeviceBuffer<float> dx(x);
  const auto gpu = kmeans_cuda(dx.get(), 5000, 32, p, nullptr);
  EXPECT_EQ(testing::adjusted_rand_index({gpu.assignments.begin(), gpu.assignments.end()}, label),
            1.0);
  // Same init, same assignments -> identical fixed-point sums -> identical centroids.
  EXPECT_EQ(gpu.assignments, cpu.assignments);
  EXPECT_EQ(gpu.centroids, cpu.centroids);
  EXPECT_NEAR(gpu.inertia, cpu.inertia, 1e-3 * cpu.inertia);
}

TEST_F(KMeansCuda, StreamingEqualsDeviceResident) {
  for (MathMode math : {MathMode::kSimt, MathMode::kAuto}) {
    for (Metric m : {Metric::kL2, Metric::kCosine}) {
      auto x = testing::random_matrix(10000, 16, 7);
      KMeansParams p{.k = 20, .max_iter = 6, .metric = m, .chunk_rows = 4096, .math = math};
      DeviceBuffer<float> dx(x);
      const auto a = kmeans_cuda(dx.get(), 10000, 16, p, nullptr);
      const auto b = kmeans_cuda_streaming(x.data(), 10000, 16, p, nullptr);
      EXPECT_EQ(a.assignments, b.assignments);
      EXPECT_EQ(a.centroids, b.centroids);
      EXPECT_EQ(a.inertia_history, b.inertia_history);
      // Lloyd's monotonicity holds for an exact argmin; TF32 near-tie flips may break it
      // by up to their error bound (kmeans.h), so only the SIMT run checks it.
      if (math == MathMode::kSimt) {
        for (size_t i = 1; i < a.inertia_history.size(); ++i)
          EXPECT_LE(a.inertia_history[i], a.inertia_history[i - 1] * (1 + 1e-5));
      }
    }
  }
}

TEST_F(KMeansCuda, SameSeedIdenticalAcrossRuns) {
  auto x = testing::random_matrix(4097, 8, 3);
  const KMeansParams p{.k = 50, .max_iter = 10};
  DeviceBuffer<float> dx(x);
  const auto a = kmeans_cuda(dx.get(), 4097, 8, p, nullptr);
  const auto b = kmeans_cuda(dx.get(), 4097, 8, p, nullptr);
  EXPECT_EQ(a.assignments, b.assignments);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_EQ(a.inertia_history, b.inertia_history);
}

}  // namespace
}  // namespace portrait::kernels
