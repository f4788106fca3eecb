// kernels/dispatch.h: the backend choice, and that the CPU branch is the CPU twin bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/device.h"
#include "kernels/dispatch.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TEST(Dispatch, CpuIsAlwaysHonoured) {
  EXPECT_EQ(choose_backend("cpu", "x.device"), Backend::kCpu);
  EXPECT_STREQ(backend_name(Backend::kCpu), "cpu");
  EXPECT_STREQ(backend_name(Backend::kCuda), "cuda");
}

TEST(Dispatch, AutoPicksCudaExactlyWhenADeviceIsPresent) {
  const Backend want = cuda_device_count() > 0 ? Backend::kCuda : Backend::kCpu;
  EXPECT_EQ(choose_backend("auto", "x.device"), want);
}

TEST(Dispatch, CudaWithoutADeviceNamesTheConfigKey) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    choose_backend("cuda", "segment.device");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "segment.device=cuda but no CUDA device");
  }
}

TEST(Dispatch, UnknownDeviceIsRejected) {
  EXPECT_THROW(choose_backend("gpu", "x.device"), std::invalid_argument);
}

TEST(Dispatch, CpuKMeansIsKMeansCpuBitForBit) {
  const int64_t n = 700;
  const int d = 9;
  const auto x = testing::random_matrix(n, d, 5);
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    KMeansParams p;
    p.k = 7;
    p.metric = m;
    p.num_threads = 3;
    const KMeansResult a = kmeans(x.data(), n, d, p, Backend::kCpu);
    const KMeansResult b = kmeans_cpu(x.data(), n, d, p);
    EXPECT_EQ(a.assignments, b.assignments);
    EXPECT_TRUE(same_bits(a.centroids, b.centroids));
    EXPECT_TRUE(same_bits(a.distances, b.distances));
    EXPECT_EQ(std::memcmp(&a.inertia, &b.inertia, sizeof a.inertia), 0);
    EXPECT_EQ(a.iterations, b.iterations);
  }
}

TEST(Dispatch, CpuTopKIsTopKCpuBitForBit) {
  const int64_t q = 13, n = 301;
  const int d = 17;
  const auto qs = testing::random_matrix(q, d, 6), db = testing::random_matrix(n, d, 7);
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
    TopKParams p;
    p.k = 11;
    p.metric = m;
    std::vector<float> sa(size_t(q * p.k)), sb(sa.size());
    std::vector<int64_t> ia(sa.size()), ib(sa.size());
    topk(qs.data(), q, db.data(), n, d, p, sa.data(), ia.data(), Backend::kCpu);
    topk_cpu(qs.data(), q, db.data(), n, d, p, sb.data(), ib.data());
    EXPECT_TRUE(same_bits(sa, sb));
    EXPECT_EQ(ia, ib);
  }
}

TEST(Dispatch, CpuHeadsRunnerIsHeadsCpuBitForBit) {
  const int d = 12, h = 20, c = 3;
  const int64_t n = 257;
  const auto w1 = testing::random_matrix(h, d, 8), b1 = testing::random_matrix(1, h, 9),
             w2 = testing::random_matrix(c, h, 10), b2 = testing::random_matrix(1, c, 11);
  const auto x = testing::random_matrix(n, d, 12);
  const HeadsWeights w{w1.data(), b1.data(), w2.data(), b2.data(), d, h, c};
  const HeadsParams hp{.activation = Activation::kGeluErf, .num_threads = 2};
  const HeadsRunner run(w, hp, Backend::kCpu);
  std::vector<float> pa(size_t(n * c)), pb(pa.size());
  run.probs(x.data(), n, pa.data());
  heads_probs_cpu(x.data(), n, w, hp, pb.data());
  EXPECT_TRUE(same_bits(pa, pb));
  const int m = 5;
  std::vector<float> ta(size_t(c * m)), tb(ta.size());
  std::vector<int64_t> ia(ta.size()), ib(ta.size());
  run.topm(x.data(), n, m, ta.data(), ia.data());
  heads_topm_cpu(x.data(), n, w, hp, m, tb.data(), ib.data());
  EXPECT_TRUE(same_bits(ta, tb));
  EXPECT_EQ(ia, ib);
}

}  // namespace
}  // namespace portrait::kernels
