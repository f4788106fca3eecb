// The blocked CPU paths against their exact plain-loop references, bit for bit, on odd sizes
// straddling the 8-row / 32-column micro-tile and the 256-query / 1024-item block boundaries,
// for every SIMD level this machine runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu_gemm.h"
#include "kernels/heads.h"
#include "kernels/kmeans.h"
#include "kernels/kmeans_assign.h"
#include "kernels/topk.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

std::vector<std::string> levels() {
  std::vector<std::string> out;
  for (const char* l : {"scalar", "avx2", "avx512"})
    if (cpu::force_simd_level(l)) out.push_back(l);
  cpu::force_simd_level("best");
  return out;
}

// Bitwise float equality (distinguishes -0 / +0 and compares NaN payloads).
bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(CpuGemm, ScoreBlockEqualsTheScalarChainsAtEveryLevel) {
  for (const std::string& level : levels()) {
    ASSERT_TRUE(cpu::force_simd_level(level.c_str()));
    for (int d : {1, 7, 16, 33, 128}) {
      for (int64_t n : {1, 31, 32, 33, 95}) {
        const int64_t m = 17, mpad = cpu::round_up(m, cpu::kRows), ldc = cpu::round_up(n, 32) + 3;
        auto a = testing::random_matrix(mpad, d, 10 + d + n);
        auto b = testing::random_matrix(n, d, 20 + d * 7 + n);
        std::vector<float> bp(cpu::packed_floats(n, d)), c(static_cast<size_t>(mpad * ldc));
        cpu::pack_panels(b.data(), n, d, bp.data());
        for (auto op : {cpu::ScoreOp::kDot, cpu::ScoreOp::kSqDiff}) {
          cpu::score_block(a.data(), mpad, bp.data(), n, d, op, c.data(), ldc);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              const float want = op == cpu::ScoreOp::kDot
                                     ? cpu::dot_ref(a.data() + i * d, b.data() + j * d, d)
                                     : cpu::sqdiff_ref(a.data() + i * d, b.data() + j * d, d);
              ASSERT_TRUE(same_bits(c[i * ldc + j], want))
                  << level << " d=" << d << " n=" << n << " i=" << i << " j=" << j << ": "
                  << c[i * ldc + j] << " vs " << want;
            }
        }
      }
    }
  }
  cpu::force_simd_level("best");
}

TEST(CpuGemm, AccumulateFixedEqualsLlrint) {
  auto row = testing::random_matrix(1, 37, 3);
  std::vector<int64_t> got(37, 5), want(37, 5);
  const double scale = std::ldexp(1.0, 40);
  cpu::accumulate_fixed(row.data(), 0.37f, scale, 37, got.data());
  for (int j = 0; j < 37; ++j) want[j] += std::llrint(static_cast<double>(row[j] * 0.37f) * scale);
  EXPECT_EQ(got, want);
}

void expect_topk_equal(const std::vector<float>& qs, int64_t q, const std::vector<float>& db,
                       int64_t n, int d, const TopKParams& p, const std::string& what) {
  std::vector<float> s1(q * p.k), s2(q * p.k);
  std::vector<int64_t> i1(q * p.k), i2(q * p.k);
  topk_cpu(qs.data(), q, db.data(), n, d, p, s1.data(), i1.data());
  detail::topk_reference_cpu(qs.data(), q, db.data(), n, d, p, s2.data(), i2.data());
  for (int64_t t = 0; t < q * p.k; ++t) {
    ASSERT_EQ(i1[t], i2[t]) << what << " slot " << t;
    ASSERT_TRUE(same_bits(s1[t], s2[t])) << what << " slot " << t << ": " << s1[t] << " vs " << s2[t];
  }
}

TEST(CpuTopK, BlockedEqualsReferenceOnOddSizes) {
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2})
    for (int64_t q : {1, 9, 263})
      for (int64_t n : {1, 33, 511, 513, 1100})
        for (int d : {5, 33})
          for (int k : {1, 17, 600})
            for (int threads : {1, 3}) {
              auto qs = testing::random_matrix(q, d, q * 31 + d);
              auto db = testing::random_matrix(n, d, n * 17 + d);
              TopKParams p{.k = k, .metric = m, .num_threads = threads};
              expect_topk_equal(qs, q, db, n, d, p,
                                std::string(metric_name(m)) + " q=" + std::to_string(q) +
                                    " n=" + std::to_string(n) + " d=" + std::to_string(d) +
                                    " k=" + std::to_string(k) + " t=" + std::to_string(threads));
            }
}

TEST(CpuTopK, PerBlockPackingTiesAndExclusionsEqualReference) {
  // Coarse grid values: thousands of exact ties, resolved by smaller id on both paths.
  const int64_t q = 40, n = 1500;
  const int d = 6;
  auto qs = testing::grid_matrix(q, d, 1);
  auto db = testing::grid_matrix(n, d, 2);
  std::vector<int64_t> offs{0}, ids;
  for (int64_t i = 0; i < q; ++i) {
    for (int64_t j = i % 7; j < n; j += 97) ids.push_back(j);
    offs.push_back(static_cast<int64_t>(ids.size()));
  }
  for (size_t budget : {size_t{64} << 20, size_t{0}})  // shared packing, then per-block
    for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2})
      for (int k : {1, 50, 1024}) {
        const size_t old = detail::topk_set_shared_pack_budget(budget);
        TopKParams p{.k = k, .metric = m, .exclude_self = true, .self_offset = 3,
                     .exclude_offsets = offs.data(), .exclude_ids = ids.data(), .num_threads = 2};
        expect_topk_equal(qs, q, db, n, d, p, std::string(metric_name(m)) + " k=" + std::to_string(k) +
                                                  " budget=" + std::to_string(budget));
        detail::topk_set_shared_pack_budget(old);
      }
}

TEST(CpuTopK, EveryLevelGivesIdenticalResults) {
  auto qs = testing::random_matrix(21, 130, 5);
  auto db = testing::random_matrix(700, 130, 6);
  std::vector<std::vector<int64_t>> all_ids;
  for (const std::string& level : levels()) {
    ASSERT_TRUE(cpu::force_simd_level(level.c_str()));
    expect_topk_equal(qs, 21, db, 700, 130, {.k = 64, .metric = Metric::kCosine}, level);
  }
  cpu::force_simd_level("best");
}

TEST(CpuKMeans, BlockedAssignmentEqualsReference) {
  for (Metric m : {Metric::kL2, Metric::kCosine})
    for (int d : {3, 31, 128})
      for (int k : {1, 7, 33, 65})
        for (int threads : {1, 3}) {
          const int64_t n = 1025;
          auto x = testing::random_matrix(n, d, d * 3 + k);
          auto c = testing::random_matrix(k, d, d * 5 + k);
          if (m == Metric::kCosine)
            for (int i = 0; i < k; ++i) {
              const float inv = row_inv_norm(c.data() + i * d, d);
              for (int j = 0; j < d; ++j) c[i * d + j] *= inv;
            }
          std::vector<int32_t> a1(n), a2(n);
          std::vector<float> d1(n), d2(n);
          kmeans_assign_cpu(x.data(), n, d, c.data(), k, m, threads, a1.data(), d1.data());
          detail::kmeans_assign_reference(x.data(), n, d, c.data(), k, m, a2.data(), d2.data());
          for (int64_t i = 0; i < n; ++i) {
            ASSERT_EQ(a1[i], a2[i]) << metric_name(m) << " d=" << d << " k=" << k << " i=" << i;
            ASSERT_TRUE(same_bits(d1[i], d2[i])) << metric_name(m) << " d=" << d << " i=" << i;
          }
        }
}

TEST(CpuKMeans, ResultDistancesBelongToTheReturnedCentroids) {
  const int64_t n = 3001;
  const int d = 19;
  auto x = testing::random_matrix(n, d, 8);
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    KMeansParams p{.k = 9, .max_iter = 6, .metric = m, .num_threads = 2};
    const KMeansResult r = kmeans_cpu(x.data(), n, d, p);
    ASSERT_EQ(r.distances.size(), size_t(n));
    std::vector<int32_t> a(n);
    std::vector<float> dist(n);
    detail::kmeans_assign_reference(x.data(), n, d, r.centroids.data(), p.k, m, a.data(), dist.data());
    double inertia = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(r.assignments[i], a[i]) << i;
      ASSERT_TRUE(same_bits(r.distances[i], dist[i])) << i;
      inertia += dist[i];
    }
    EXPECT_NEAR(r.inertia, inertia, 1e-9 * inertia);
  }
}

TEST(CpuKMeans, TolZeroRunsExactlyMaxIter) {
  // Two well separated blobs converge after a couple of updates; tol = 0 must keep going.
  std::vector<float> x;
  for (int i = 0; i < 400; ++i) {
    x.push_back(i % 2 ? 10.f : -10.f);
    x.push_back(static_cast<float>(i % 5) * 0.01f);
  }
  KMeansParams p{.k = 2, .max_iter = 17, .tol = 0.0};
  const KMeansResult r = kmeans_cpu(x.data(), 400, 2, p);
  EXPECT_EQ(r.iterations, 17);
  EXPECT_EQ(r.inertia_history.size(), 18u);
  p.tol = 1e-4;
  EXPECT_LT(kmeans_cpu(x.data(), 400, 2, p).iterations, 17);
}

TEST(CpuHeads, RationalErfIsAccurateAndTheSimdGeluMatchesIt) {
  double worst = 0;
  std::vector<float> v;
  for (int i = -60000; i <= 60000; ++i) {
    const float x = static_cast<float>(i) * 1e-4f;  // [-6, 6], past the clamp
    worst = std::max(worst, std::fabs(double(cpu::erf_approx(x)) - std::erf(double(x))));
    v.push_back(x);
  }
  EXPECT_LT(worst, 5e-7);
  for (const std::string& level : levels()) {
    ASSERT_TRUE(cpu::force_simd_level(level.c_str()));
    std::vector<float> g = v;
    cpu::gelu_erf_inplace(g.data(), static_cast<int64_t>(g.size()));
    for (size_t i = 0; i < v.size(); ++i) ASSERT_TRUE(same_bits(g[i], cpu::gelu_erf(v[i]))) << level << " x=" << v[i];
  }
  cpu::force_simd_level("best");
}

TEST(CpuHeads, BlockedLayersEqualReferenceOnOddSizes) {
  for (int d : {3, 33})
    for (int h : {1, 31, 33, 70})
      for (int c : {1, 17, 33})
        for (Activation act : {Activation::kRelu, Activation::kGeluErf, Activation::kGeluTanh}) {
          const int64_t n = 517;  // two full 256-user blocks and a ragged one
          auto x = testing::random_matrix(n, d, d + h + c);
          auto w1 = testing::random_matrix(h, d, 1), b1 = testing::random_matrix(1, h, 2);
          auto w2 = testing::random_matrix(c, h, 3), b2 = testing::random_matrix(1, c, 4);
          HeadsWeights w{w1.data(), b1.data(), w2.data(), b2.data(), d, h, c};
          std::vector<float> got(n * c), want(n * c);
          heads_probs_cpu(x.data(), n, w, {.activation = act, .num_threads = 3}, got.data());
          detail::heads_probs_reference(x.data(), n, w, act, want.data());
          for (int64_t i = 0; i < n * c; ++i)
            ASSERT_TRUE(same_bits(got[i], want[i])) << "d=" << d << " h=" << h << " c=" << c << " i=" << i;
          // Fused top-M: exactly the best M of the reference probabilities (ties: smaller id).
          const int m = 40;
          std::vector<float> tp(c * m);
          std::vector<int64_t> ti(c * m);
          heads_topm_cpu(x.data(), n, w, {.activation = act, .num_threads = 2}, m, tp.data(), ti.data());
          for (int hc = 0; hc < c; ++hc) {
            std::vector<int64_t> order(n);
            for (int64_t i = 0; i < n; ++i) order[i] = i;
            std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
              return want[a * c + hc] > want[b * c + hc];
            });
            for (int r = 0; r < m; ++r) {
              ASSERT_EQ(ti[hc * m + r], order[r]) << "head " << hc << " rank " << r;
              ASSERT_TRUE(same_bits(tp[hc * m + r], want[order[r] * c + hc]));
            }
          }
        }
}

}  // namespace
}  // namespace portrait::kernels
