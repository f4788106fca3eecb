// Tensor-core, bf16-input and overlapped-streaming paths of k-means and top-k against the
// CPU references. Label `gpu`: every test GTEST_SKIP()s without a device (and the
// tensor-core modes below sm_80).
//
// Tolerances (MathMode in common.h): kSimt and kTf32x3 must agree with the CPU to fp32
// rounding; kTf32 / kBf16 may pick a different winner only inside a near-tie band of
// 8u * sum_j |x_j y_j| (u = 2^-11 TF32, 2^-9 BF16): two scores each off by <= 2u * sum|x y|
// (both operands rounded) can swap when their true gap is below the sum of both errors.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/device.h"
#include "kernels/kmeans.cuh"
#include "kernels/l2_normalize.h"
#include "kernels/topk.cuh"
#include "gpu_util.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {


// Page-locks a host vector for the lifetime of the guard (exercises the no-staging path).
class PinGuard {
 public:
  PinGuard(void* p, size_t bytes) : p_(p) {
    CUDA_CHECK(cudaHostRegister(p, bytes, cudaHostRegisterDefault));
  }
  ~PinGuard() { (void)cudaHostUnregister(p_); }
  PinGuard(const PinGuard&) = delete;
  PinGuard& operator=(const PinGuard&) = delete;

 private:
  void* p_;
};

bool tensor_cores() {
  int dev = 0, major = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major >= 8;
}

class TcGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    if (!tensor_cores()) GTEST_SKIP() << "tensor-core modes need sm_80+";
  }
};

class KMeansTc : public TcGpu {};
class TopKTc : public TcGpu {};

constexpr MathMode kModes[] = {MathMode::kSimt, MathMode::kTf32, MathMode::kTf32x3,
                               MathMode::kBf16};

// Unit roundoff of the GEMM operands of `m`; 0 = fp32-grade.
double roundoff(MathMode m) {
  if (m == MathMode::kTf32) return std::ldexp(1.0, -11);
  if (m == MathMode::kBf16) return std::ldexp(1.0, -9);
  return 0.0;
}

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

std::string label(MathMode m, Metric metric, int64_t n, int d, int k, bool bf16) {
  return std::string(math_mode_name(m)) + " " + metric_name(metric) + (bf16 ? " bf16" : " fp32") +
         " n=" + std::to_string(n) + " d=" + std::to_string(d) + " k=" + std::to_string(k);
}

// ---------------------------------------------------------------------------------------
// k-means assignment

// True distance (double) of point x to centroid c: squared L2, or 1 - x.c/|x|.
double true_dist(const float* x, const float* c, int d, Metric m) {
  double dot = 0, xx = 0, l2 = 0;
  for (int j = 0; j < d; ++j) {
    dot += double(x[j]) * c[j];
    xx += double(x[j]) * x[j];
    l2 += (double(x[j]) - c[j]) * (double(x[j]) - c[j]);
  }
  if (m == Metric::kL2) return l2;
  return xx == 0 ? 1.0 : 1.0 - dot / std::sqrt(xx);
}

// max over centroids of sum_j |x_j c_j| (divided by |x| for cosine): the scale of the
// GEMM's rounding error for this point.
double gemm_scale(const float* x, const float* C, int k, int d, Metric m) {
  double best = 0, xx = 0;
  for (int j = 0; j < d; ++j) xx += double(x[j]) * x[j];
  for (int c = 0; c < k; ++c) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += std::fabs(double(x[j]) * C[c * d + j]);
    best = std::max(best, s);
  }
  if (m == Metric::kCosine) return xx == 0 ? 0 : best / std::sqrt(xx);
  return best;
}

// GPU assignment (`ga`, `gd`) vs the truth: valid index, dist = its true distance (fp32
// rounding), and no centroid truly nearer than the tolerance band of `math`.
void expect_assignment_ok(const std::vector<float>& x, int64_t n, int d,
                          const std::vector<float>& C, int k, Metric metric, MathMode math,
                          const std::vector<int32_t>& ga, const std::vector<float>& gd) {
  const double u = roundoff(math);
  for (int64_t i = 0; i < n; ++i) {
    SCOPED_TRACE("point " + std::to_string(i));
    ASSERT_GE(ga[i], 0);
    ASSERT_LT(ga[i], k);
    const float* xi = x.data() + i * d;
    double best = std::numeric_limits<double>::infinity();
    for (int c = 0; c < k; ++c) best = std::min(best, true_dist(xi, C.data() + c * d, d, metric));
    const double mine = true_dist(xi, C.data() + int64_t(ga[i]) * d, d, metric);
    const double slack = 1e-4 * std::max(1.0, best);
    ASSERT_NEAR(gd[i], mine, slack) << "reported distance is not the winner's distance";
    ASSERT_LE(mine, best + 8 * u * gemm_scale(xi, C.data(), k, d, metric) + slack)
        << "winner outside the near-tie band";
  }
}

template <typename P>
void run_assign_case(const std::vector<P>& xin, const std::vector<float>& xf, int64_t n, int d,
                     const std::vector<float>& C, int k, Metric metric, MathMode math) {
  DeviceBuffer<P> dx(xin);
  DeviceBuffer<float> dc(C), dd(n);
  DeviceBuffer<int32_t> da(n);
  kmeans_assign_cuda(dx.get(), n, d, dc.get(), k, metric, da.get(), dd.get(), nullptr, math);
  expect_assignment_ok(xf, n, d, C, k, metric, math, da.to_host(), dd.to_host());
}

TEST_F(KMeansTc, AssignmentWithinPrecisionBandOnOddSizes) {
  // n straddles the 64 / 128-row tiles, k the 128-centroid tiles, d the 16 / 32-column
  // slabs and the 8-element vector loads; k == n included.
  const std::tuple<int64_t, int, int> shapes[] = {
      {1, 1, 1},     {31, 7, 31},    {32, 33, 5},     {33, 31, 33},   {127, 64, 127},
      {129, 130, 17}, {1023, 32, 128}, {1025, 33, 129}, {1025, 64, 257}, {257, 16, 257},
      {4099, 128, 1}};
  for (auto [n, d, k] : shapes) {
    const auto x = testing::random_matrix(n, d, 11 + n + d);
    const auto xb = to_bf16(x);
    const auto xw = widen(xb);
    for (Metric metric : {Metric::kL2, Metric::kCosine}) {
      auto C = testing::random_matrix(k, d, 12 + k);
      if (metric == Metric::kCosine) l2_normalize_cpu(C.data(), C.data(), k, d);
      for (MathMode math : kModes) {
        {
          SCOPED_TRACE(label(math, metric, n, d, k, false));
          run_assign_case(x, x, n, d, C, k, metric, math);
        }
        {
          SCOPED_TRACE(label(math, metric, n, d, k, true));
          run_assign_case(xb, xw, n, d, C, k, metric, math);
        }
      }
    }
  }
}

TEST_F(KMeansTc, ExactTiesPickTheLowestIndexInEveryMode) {
  // Small integers: every product and sum is exact in TF32, BF16 and fp32, so all modes
  // must reproduce the CPU exactly, including the lowest-index rule on duplicated centroids.
  const int64_t n = 1025;
  const int d = 9, k = 40;
  const auto x = testing::grid_matrix(n, d, 1);
  auto C = testing::grid_matrix(k, d, 2);
  for (int c = 20; c < k; ++c)
    std::copy(C.begin() + (c - 20) * d, C.begin() + (c - 19) * d, C.begin() + c * d);
  std::vector<int32_t> ca(n);
  std::vector<float> cd(n);
  kmeans_assign_cpu(x.data(), n, d, C.data(), k, Metric::kL2, 0, ca.data(), cd.data());
  const auto xb = to_bf16(x);
  for (MathMode math : kModes) {
    SCOPED_TRACE(math_mode_name(math));
    DeviceBuffer<float> dx(x), dc(C), dd(n);
    DeviceBuffer<bf16_bits> dxb(xb);
    DeviceBuffer<int32_t> da(n);
    kmeans_assign_cuda(dx.get(), n, d, dc.get(), k, Metric::kL2, da.get(), dd.get(), nullptr,
                       math);
    EXPECT_EQ(da.to_host(), ca);
    EXPECT_EQ(dd.to_host(), cd);
    kmeans_assign_cuda(dxb.get(), n, d, dc.get(), k, Metric::kL2, da.get(), dd.get(), nullptr,
                       math);
    EXPECT_EQ(da.to_host(), ca);
    EXPECT_EQ(dd.to_host(), cd);
  }
}

struct Blobs {
  std::vector<float> x;
  std::vector<int> label;
};
Blobs planted(int64_t n, int d, int k, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> centres(static_cast<size_t>(k) * d);
  Blobs b{std::vector<float>(static_cast<size_t>(n) * d), std::vector<int>(n)};
  for (auto& c : centres) c = static_cast<float>(rng.uniform() * 100.0 - 50.0);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i < k ? i : static_cast<int64_t>(rng.below(k)));
    b.label[i] = c;
    for (int j = 0; j < d; ++j) b.x[i * d + j] = centres[c * d + j] + float(0.05 * rng.normal());
  }
  return b;
}

TEST_F(KMeansTc, PlantedClustersMatchCpuInEveryModeAndInputType) {
  const int64_t n = 3000;
  const int d = 40, k = 7;
  const auto b = planted(n, d, k, 8);
  const auto xb = to_bf16(b.x);
  for (MathMode math : kModes) {
    SCOPED_TRACE(math_mode_name(math));
    const KMeansParams p{.k = k, .tol = 0.0, .seed = 5, .math = math};
    {
      const auto cpu = kmeans_cpu(b.x.data(), n, d, p);
      DeviceBuffer<float> dx(b.x);
      const auto gpu = kmeans_cuda(dx.get(), n, d, p, nullptr);
      EXPECT_EQ(testing::adjusted_rand_index({gpu.assignments.begin(), gpu.assignments.end()},
                                             b.label),
                1.0);
      // Separated blobs: no near-ties, so the same assignments, hence (exact fixed-point
      // sums) bit-identical centroids.
      EXPECT_EQ(gpu.assignments, cpu.assignments);
      EXPECT_EQ(gpu.centroids, cpu.centroids);
      EXPECT_NEAR(gpu.inertia, cpu.inertia, 1e-4 * cpu.inertia);
    }
    {
      const auto cpu = kmeans_cpu(xb.data(), n, d, p);
      DeviceBuffer<bf16_bits> dx(xb);
      const auto gpu = kmeans_cuda(dx.get(), n, d, p, nullptr);
      EXPECT_EQ(gpu.assignments, cpu.assignments);
      EXPECT_EQ(gpu.centroids, cpu.centroids);
      EXPECT_NEAR(gpu.inertia, cpu.inertia, 1e-4 * cpu.inertia);
    }
  }
}

TEST_F(KMeansTc, KEqualsNAndKEqualsOne) {
  const int64_t n = 33;
  const int d = 8;
  const auto x = testing::random_matrix(n, d, 3);
  DeviceBuffer<float> dx(x);
  for (MathMode math : kModes) {
    SCOPED_TRACE(math_mode_name(math));
    const auto all = kmeans_cuda(dx.get(), n, d, {.k = int(n), .math = math}, nullptr);
    EXPECT_NEAR(all.inertia, 0.0, 1e-9);  // every point is its own centroid, dist is exact
    const auto one = kmeans_cuda(dx.get(), n, d, {.k = 1, .math = math}, nullptr);
    for (int j = 0; j < d; ++j) {
      double mean = 0;
      for (int64_t i = 0; i < n; ++i) mean += x[i * d + j];
      EXPECT_NEAR(one.centroids[j], mean / n, 1e-6);
    }
  }
}

template <typename P>
void expect_streaming_equals_device(const std::vector<P>& x, int64_t n, int d,
                                    const KMeansParams& p) {
  DeviceBuffer<P> dx(x);
  const auto a = kmeans_cuda(dx.get(), n, d, p, nullptr);
  const auto b = kmeans_cuda_streaming(x.data(), n, d, p, nullptr);
  EXPECT_EQ(a.assignments, b.assignments);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_EQ(a.inertia_history, b.inertia_history);
  EXPECT_EQ(a.iterations, b.iterations);
}

TEST_F(KMeansTc, StreamingWithTinyChunksEqualsDeviceResident) {
  // chunk_rows = 1 rounds up to the 4096-row minimum: 4 chunks with a ragged last one, i.e.
  // both double-buffer slots reused across chunks and across iterations.
  const int64_t n = 3 * 4096 + 77;
  for (int d : {33, 64}) {  // scalar and 16-byte vector loads
    auto x = testing::random_matrix(n, d, 40 + d);
    const auto xb = to_bf16(x);
    for (MathMode math : {MathMode::kAuto, MathMode::kSimt}) {
      for (Metric m : {Metric::kL2, Metric::kCosine}) {
        for (int64_t chunk : {int64_t{1}, int64_t{4096}, int64_t{8192}}) {
          SCOPED_TRACE(label(math, m, n, d, 37, false) + " chunk=" + std::to_string(chunk));
          const KMeansParams p{.k = 37, .max_iter = 4, .metric = m, .chunk_rows = chunk,
                               .math = math};
          expect_streaming_equals_device(x, n, d, p);
          expect_streaming_equals_device(xb, n, d, p);
        }
      }
    }
    // Page-locked source: chunks are copied straight from it (no staging).
    SCOPED_TRACE("pinned source d=" + std::to_string(d));
    PinGuard pin(x.data(), x.size() * sizeof(float));
    expect_streaming_equals_device(x, n, d, {.k = 37, .max_iter = 4, .chunk_rows = 4096});
  }
}

// ---------------------------------------------------------------------------------------
// top-k

using testing::exact_score;

// Scale of the GEMM rounding error of (query, id): sum |q_t x_t|, normalised for cosine.
double pair_scale(const std::vector<float>& qs, const std::vector<float>& db, int64_t qi,
                  int64_t id, int d, Metric m) {
  double s = 0, qq = 0, xx = 0;
  for (int t = 0; t < d; ++t) {
    const double a = qs[qi * d + t], b = db[id * d + t];
    s += std::fabs(a * b);
    qq += a * a;
    xx += b * b;
  }
  if (m == Metric::kCosine) return (qq == 0 || xx == 0) ? 0.0 : s / std::sqrt(qq * xx);
  return s;
}

struct TopKOut {
  std::vector<float> s;
  std::vector<int64_t> i;
};

template <typename P>
TopKOut gpu_topk(const std::vector<P>& qs, int64_t q, const std::vector<P>& db, int64_t n,
                 int d, const TopKParams& p) {
  DeviceBuffer<P> dq(qs), ddb(db);
  DeviceBuffer<float> ds(static_cast<size_t>(q) * p.k);
  DeviceBuffer<int64_t> di(static_cast<size_t>(q) * p.k);
  topk_cuda(dq.get(), q, ddb.get(), n, d, p, ds.get(), di.get(), nullptr);
  return {ds.to_host(), di.to_host()};
}

template <typename P>
TopKOut cpu_topk(const std::vector<P>& qs, int64_t q, const std::vector<P>& db, int64_t n,
                 int d, const TopKParams& p) {
  TopKOut o{std::vector<float>(q * p.k), std::vector<int64_t>(q * p.k)};
  topk_cpu(qs.data(), q, db.data(), n, d, p, o.s.data(), o.i.data());
  return o;
}

// Scores rank-by-rank within tol of the CPU and of the truth, ids distinct (fp32-grade modes).
void expect_topk_close(const std::vector<float>& qs, const std::vector<float>& db, int64_t q,
                       int d, const TopKParams& p, const TopKOut& c, const TopKOut& g,
                       double tol) {
  const int k = p.k;
  for (int64_t i = 0; i < q; ++i) {
    std::set<int64_t> seen;
    for (int r = 0; r < k; ++r) {
      SCOPED_TRACE("query " + std::to_string(i) + " rank " + std::to_string(r));
      const int64_t c_id = c.i[i * k + r], g_id = g.i[i * k + r];
      ASSERT_EQ(c_id < 0, g_id < 0);
      if (g_id < 0) {
        ASSERT_EQ(g.s[i * k + r], topk_fill_score(p.metric));
        continue;
      }
      const double scale = std::max(1.0, std::fabs(double(c.s[i * k + r])));
      ASSERT_NEAR(g.s[i * k + r], c.s[i * k + r], tol * scale);
      ASSERT_NEAR(exact_score(qs, db, i, g_id, d, p.metric), g.s[i * k + r], tol * scale);
      ASSERT_TRUE(seen.insert(g_id).second) << "duplicate id";
    }
  }
}

// TF32 / BF16 modes: ids distinct and valid, each reported score within its pair's error
// band of the truth, and recall: every CPU result whose true score beats the GPU's k-th
// true score by more than both bands is returned.
void expect_topk_within_band(const std::vector<float>& qs, const std::vector<float>& db,
                             int64_t q, int64_t n, int d, const TopKParams& p, MathMode math,
                             const TopKOut& c, const TopKOut& g) {
  const int k = p.k;
  const double u = roundoff(math);
  const bool l2 = p.metric == Metric::kL2;
  // Per-pair band: 2u*scale for the dot product (x2 for L2's -2 q.x), plus fp32 slack.
  auto band = [&](int64_t qi, int64_t id) {
    const double e = 2 * u * pair_scale(qs, db, qi, id, d, p.metric) * (l2 ? 2 : 1);
    return e + 1e-4 * std::max(1.0, std::fabs(exact_score(qs, db, qi, id, d, p.metric)));
  };
  for (int64_t i = 0; i < q; ++i) {
    SCOPED_TRACE("query " + std::to_string(i));
    std::set<int64_t> got;
    double kth = 0, kth_band = 0;
    int filled = 0;
    for (int r = 0; r < k; ++r) {
      const int64_t id = g.i[i * k + r];
      if (id < 0) continue;
      ASSERT_LT(id, n);
      ASSERT_TRUE(got.insert(id).second) << "duplicate id";
      const double t = exact_score(qs, db, i, id, d, p.metric);
      ASSERT_NEAR(g.s[i * k + r], t, band(i, id)) << "rank " << r;
      ++filled;
      kth = t;
      kth_band = band(i, id);
    }
    int c_filled = 0;
    for (int r = 0; r < k; ++r) c_filled += c.i[i * k + r] >= 0;
    ASSERT_EQ(filled, c_filled);
    for (int r = 0; r < k; ++r) {
      const int64_t id = c.i[i * k + r];
      if (id < 0 || got.count(id)) continue;
      const double t = exact_score(qs, db, i, id, d, p.metric);
      const double margin = band(i, id) + kth_band;
      // Missed: must be a near-tie with the GPU's k-th result.
      if (l2) ASSERT_GE(t, kth - margin) << "missed id " << id;
      else ASSERT_LE(t, kth + margin) << "missed id " << id;
    }
  }
}

TEST_F(TopKTc, Fp32GradeModesMatchCpuOnOddSizes) {
  for (MathMode math : {MathMode::kAuto, MathMode::kTf32x3, MathMode::kSimt}) {
    for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
      for (int64_t n : {1, 31, 32, 33, 127, 1023, 1025}) {
        for (int d : {1, 33, 64}) {
          for (int64_t q : {1, 17, 65}) {
            const auto qs = testing::random_matrix(q, d, 1 + n + d + q);
            const auto db = testing::random_matrix(n, d, 2 + n * 7 + d);
            for (int k : {1, 33, 129, static_cast<int>(std::min<int64_t>(n, kTopKMax))}) {
              SCOPED_TRACE(label(math, m, n, d, k, false) + " q=" + std::to_string(q));
              const TopKParams p{.k = k, .metric = m, .math = math};
              expect_topk_close(qs, db, q, d, p, cpu_topk(qs, q, db, n, d, p),
                                gpu_topk(qs, q, db, n, d, p), 1e-4);
            }
          }
        }
      }
    }
  }
}

TEST_F(TopKTc, ApproximateModesStayInTheirBand) {
  for (MathMode math : {MathMode::kTf32, MathMode::kBf16}) {
    for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
      for (auto [n, d, q] : {std::tuple{33, 33, 17}, {1025, 64, 65}, {1023, 130, 3}}) {
        const auto qs = testing::random_matrix(q, d, 3 + n);
        const auto db = testing::random_matrix(n, d, 4 + n);
        for (int k : {1, 10, 129, 1024}) {
          SCOPED_TRACE(label(math, m, n, d, k, false) + " q=" + std::to_string(q));
          const TopKParams p{.k = k, .metric = m, .math = math};
          expect_topk_within_band(qs, db, q, n, d, p, math, cpu_topk(qs, q, db, n, d, p),
                                  gpu_topk(qs, q, db, n, d, p));
        }
      }
    }
  }
}

TEST_F(TopKTc, Bf16InputMatchesCpuReferenceInEveryMode) {
  // bf16 x bf16 products are exact in every mode, so fp32-grade agreement is required.
  for (MathMode math : {MathMode::kAuto, MathMode::kBf16, MathMode::kTf32, MathMode::kTf32x3,
                        MathMode::kSimt}) {
    for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
      for (auto [n, d, q] : {std::tuple{1, 8, 1}, {31, 31, 33}, {1025, 64, 65}, {127, 40, 16}}) {
        const auto qb = to_bf16(testing::random_matrix(q, d, 5 + n));
        const auto xb = to_bf16(testing::random_matrix(n, d, 6 + n));
        const auto qf = widen(qb), xf = widen(xb);
        for (int k : {1, 33, static_cast<int>(n)}) {
          SCOPED_TRACE(label(math, m, n, d, k, true) + " q=" + std::to_string(q));
          const TopKParams p{.k = k, .metric = m, .math = math};
          expect_topk_close(qf, xf, q, d, p, cpu_topk(qb, q, xb, n, d, p),
                            gpu_topk(qb, q, xb, n, d, p), 1e-4);
        }
      }
    }
  }
}

TEST_F(TopKTc, KEqualsNReturnsEveryRowOnce) {
  for (MathMode math : kModes) {
    for (int64_t n : {1, 31, 1023}) {
      const int d = 17;
      const auto qs = testing::random_matrix(3, d, 7);
      const auto db = testing::random_matrix(n, d, 8);
      const TopKParams p{.k = static_cast<int>(n), .math = math};
      const auto g = gpu_topk(qs, 3, db, n, d, p);
      for (int64_t i = 0; i < 3; ++i) {
        std::vector<int64_t> ids(g.i.begin() + i * n, g.i.begin() + (i + 1) * n);
        std::sort(ids.begin(), ids.end());
        for (int64_t j = 0; j < n; ++j) ASSERT_EQ(ids[j], j) << math_mode_name(math);
      }
    }
  }
}

TEST_F(TopKTc, ExactTiesInEveryMode) {
  // Values in {-1, 0, 1}: exact in every mode, so scores must equal the CPU's exactly.
  const auto qs = testing::grid_matrix(9, 5, 1);
  const auto db = testing::grid_matrix(2000, 5, 2);
  for (MathMode math : kModes) {
    for (int k : {1, 100, 1024}) {
      SCOPED_TRACE(std::string(math_mode_name(math)) + " k=" + std::to_string(k));
      const TopKParams p{.k = k, .math = math};
      expect_topk_close(qs, db, 9, 5, p, cpu_topk(qs, 9, db, 2000, 5, p),
                        gpu_topk(qs, 9, db, 2000, 5, p), 0.0);
    }
  }
}

template <typename P>
void expect_topk_streaming_equals_device(const std::vector<P>& qs, int64_t q,
                                         const std::vector<P>& db, int64_t n, int d,
                                         const TopKParams& p, int64_t chunk) {
  const auto g = gpu_topk(qs, q, db, n, d, p);
  std::vector<float> s(q * p.k);
  std::vector<int64_t> i(q * p.k);
  topk_cuda_streaming(qs.data(), q, db.data(), n, d, p, s.data(), i.data(), nullptr, chunk);
  // A pair's score does not depend on where its rows sit in a tile (same MMA / FMA sequence
  // over d), and the order (score, id) is total, so the results must be identical.
  EXPECT_EQ(s, g.s);
  EXPECT_EQ(i, g.i);
}

TEST_F(TopKTc, StreamingWithTinyChunksEqualsDeviceResident) {
  const int64_t q = 33, n = 1025;
  for (int d : {24, 40}) {  // scalar / vector loads
    auto qs = testing::random_matrix(q, d, 8);
    auto db = testing::random_matrix(n, d, 9);
    const auto qb = to_bf16(qs), xb = to_bf16(db);
    for (MathMode math : {MathMode::kAuto, MathMode::kTf32, MathMode::kSimt}) {
      for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
        for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{129}, int64_t{1000}}) {
          SCOPED_TRACE(label(math, m, n, d, 20, false) + " chunk=" + std::to_string(chunk));
          const TopKParams p{.k = 20, .metric = m, .math = math};
          expect_topk_streaming_equals_device(qs, q, db, n, d, p, chunk);
          expect_topk_streaming_equals_device(qb, q, xb, n, d, p, chunk);
        }
      }
    }
    SCOPED_TRACE("pinned database d=" + std::to_string(d));
    PinGuard pin(db.data(), db.size() * sizeof(float));
    expect_topk_streaming_equals_device(qs, q, db, n, d, {.k = 20}, 100);
  }
}

}  // namespace
}  // namespace portrait::kernels
