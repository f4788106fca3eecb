#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/kmeans.h"
#include "kernels/l2_normalize.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

struct Planted {
  std::vector<float> x;
  std::vector<int> label;
};

// k well-separated Gaussian blobs (centres ~U(-50, 50)^d, noise sigma 0.05), shuffled.
Planted planted(int64_t n, int d, int k, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> centres(static_cast<size_t>(k) * d);
  for (auto& c : centres) c = static_cast<float>(rng.uniform() * 100.0 - 50.0);
  Planted p;
  p.x.resize(static_cast<size_t>(n) * d);
  p.label.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i < k ? i : static_cast<int64_t>(rng.below(k)));
    p.label[i] = c;
    for (int j = 0; j < d; ++j)
      p.x[i * d + j] = centres[c * d + j] + static_cast<float>(0.05 * rng.normal());
  }
  return p;
}

std::vector<int> as_int(const std::vector<int32_t>& a) { return {a.begin(), a.end()}; }

TEST(KMeans, AdjustedRandIndexHelperSanity) {
  EXPECT_DOUBLE_EQ(testing::adjusted_rand_index({0, 0, 1, 1}, {5, 5, 3, 3}), 1.0);
  EXPECT_LT(testing::adjusted_rand_index({0, 0, 1, 1}, {0, 1, 0, 1}), 0.0);
  EXPECT_NEAR(testing::adjusted_rand_index({0, 0, 0, 1, 1, 1}, {0, 0, 1, 1, 2, 2}),
              0.24242424242424243, 1e-12);  // sklearn.metrics.adjusted_rand_score
}

TEST(KMeans, RecoversPlantedClustersExactly) {
  for (auto [n, d, k] : {std::tuple{1023, 2, 5}, {1025, 33, 7}, {127, 64, 3}, {500, 7, 10}}) {
    auto p = planted(n, d, k, 42 + n);
    KMeansParams params{.k = k, .seed = 7};
    const auto r = kmeans_cpu(p.x.data(), n, d, params);
    EXPECT_EQ(testing::adjusted_rand_index(as_int(r.assignments), p.label), 1.0)
        << "n=" << n << " d=" << d << " k=" << k;
    EXPECT_LE(r.iterations, params.max_iter);
    EXPECT_EQ(r.inertia_history.size(), static_cast<size_t>(r.iterations) + 1);
  }
}

TEST(KMeans, CosineRecoversPlantedDirections) {
  const int64_t n = 600;
  const int d = 16, k = 4;
  auto p = planted(n, d, k, 5);
  // Scale every point by a random positive factor: cosine must not care.
  Rng rng(9);
  for (int64_t i = 0; i < n; ++i) {
    const float s = static_cast<float>(0.1 + 10 * rng.uniform());
    for (int j = 0; j < d; ++j) p.x[i * d + j] *= s;
  }
  const auto r = kmeans_cpu(p.x.data(), n, d, {.k = k, .metric = Metric::kCosine});
  EXPECT_EQ(testing::adjusted_rand_index(as_int(r.assignments), p.label), 1.0);
  for (int c = 0; c < k; ++c) {
    double ss = 0;
    for (int j = 0; j < d; ++j) ss += double(r.centroids[c * d + j]) * r.centroids[c * d + j];
    EXPECT_NEAR(ss, 1.0, 1e-5);
  }
}

TEST(KMeans, InertiaNeverIncreases) {
  // Overlapping uniform data: many iterations, no planted structure.
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    auto x = testing::random_matrix(2000, 5, 3);
    KMeansParams params{.k = 16, .max_iter = 50, .tol = 0.0, .metric = m, .seed = 11};
    const auto r = kmeans_cpu(x.data(), 2000, 5, params);
    ASSERT_GE(r.iterations, 3);
    for (size_t i = 1; i < r.inertia_history.size(); ++i)
      EXPECT_LE(r.inertia_history[i], r.inertia_history[i - 1] * (1 + 1e-6))
          << metric_name(m) << " iteration " << i;
  }
}

TEST(KMeans, InertiaEqualsSumOfDistancesToReturnedCentroids) {
  auto x = testing::random_matrix(1023, 6, 8);
  const auto r = kmeans_cpu(x.data(), 1023, 6, {.k = 9, .max_iter = 5});
  double s = 0;
  for (int64_t i = 0; i < 1023; ++i) {
    const int c = r.assignments[i];
    for (int j = 0; j < 6; ++j) {
      const double t = double(x[i * 6 + j]) - r.centroids[c * 6 + j];
      s += t * t;
    }
  }
  EXPECT_NEAR(r.inertia, s, 1e-4 * s);
}

TEST(KMeans, AssignmentMatchesBruteForce) {
  auto x = testing::random_matrix(1025, 31, 1);
  auto c = testing::random_matrix(33, 31, 2);
  std::vector<int32_t> a(1025);
  std::vector<float> dist(1025);
  kmeans_assign_cpu(x.data(), 1025, 31, c.data(), 33, Metric::kL2, 0, a.data(), dist.data());
  for (int64_t i = 0; i < 1025; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int k = 0; k < 33; ++k) {
      double s = 0;
      for (int j = 0; j < 31; ++j) {
        const double t = double(x[i * 31 + j]) - c[k * 31 + j];
        s += t * t;
      }
      best = std::min(best, s);
    }
    double got = 0;
    for (int j = 0; j < 31; ++j) {
      const double t = double(x[i * 31 + j]) - c[a[i] * 31 + j];
      got += t * t;
    }
    EXPECT_NEAR(got, best, 1e-4) << i;
    EXPECT_NEAR(dist[i], best, 1e-4) << i;
  }
}

TEST(KMeans, SameSeedGivesIdenticalResults) {
  auto x = testing::random_matrix(1500, 8, 4);
  KMeansParams p{.k = 12, .seed = 99};
  const auto a = kmeans_cpu(x.data(), 1500, 8, p);
  const auto b = kmeans_cpu(x.data(), 1500, 8, p);
  EXPECT_EQ(a.assignments, b.assignments);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_EQ(a.inertia_history, b.inertia_history);
  p.seed = 100;
  const auto c = kmeans_cpu(x.data(), 1500, 8, p);
  EXPECT_NE(a.centroids, c.centroids);
}

TEST(KMeans, MultithreadedEqualsSingleThreaded) {
  auto x = testing::random_matrix(9000, 5, 4);  // > 2 fixed 4096-point inertia blocks
  for (Metric m : {Metric::kL2, Metric::kCosine}) {
    KMeansParams p{.k = 10, .max_iter = 8, .metric = m, .num_threads = 1};
    const auto a = kmeans_cpu(x.data(), 9000, 5, p);
    p.num_threads = 3;
    const auto b = kmeans_cpu(x.data(), 9000, 5, p);
    EXPECT_EQ(a.assignments, b.assignments);
    EXPECT_EQ(a.centroids, b.centroids);
    EXPECT_EQ(a.inertia_history, b.inertia_history);
  }
}

TEST(KMeans, EmptyClustersAreReseeded) {
  auto p = planted(400, 3, 4, 12);
  // Initial centroids: two copies of point 0 and two far-away points nobody is close to.
  std::vector<float> init(4 * 3);
  for (int j = 0; j < 3; ++j) {
    init[0 * 3 + j] = p.x[j];
    init[1 * 3 + j] = p.x[j];  // duplicate: loses every tie -> empty
    init[2 * 3 + j] = 1e4f;
    init[3 * 3 + j] = -1e4f;
  }
  KMeansParams params{.k = 4, .max_iter = 50, .tol = 0.0, .initial_centroids = init.data()};
  const auto r = kmeans_cpu(p.x.data(), 400, 3, params);
  EXPECT_GE(r.reseeded, 3);
  std::vector<int> counts(4, 0);
  for (int a : r.assignments) ++counts[a];
  for (int c = 0; c < 4; ++c) EXPECT_GT(counts[c], 0) << "cluster " << c << " still empty";
  EXPECT_EQ(testing::adjusted_rand_index(as_int(r.assignments), p.label), 1.0);
  for (size_t i = 1; i < r.inertia_history.size(); ++i)
    EXPECT_LE(r.inertia_history[i], r.inertia_history[i - 1] * (1 + 1e-6));
}

TEST(KMeans, AllReduceHookSeesEveryPassAndCanCombineRanks) {
  auto x = testing::random_matrix(800, 4, 6);
  KMeansParams p{.k = 5, .max_iter = 6, .tol = 0.0};
  const auto single = kmeans_cpu(x.data(), 800, 4, p);
  // Two "ranks" holding the same data: the hook doubles everything, which must not change
  // centroids (means) and must double inertia.
  int calls = 0;
  p.allreduce = [&](double* sums, int64_t* counts, double* inertia, int k, int d) {
    ++calls;
    for (int i = 0; i < k * d; ++i) sums[i] *= 2;
    for (int i = 0; i < k; ++i) counts[i] *= 2;
    *inertia *= 2;
  };
  const auto twice = kmeans_cpu(x.data(), 800, 4, p);
  EXPECT_EQ(calls, twice.iterations + 1);
  EXPECT_EQ(twice.assignments, single.assignments);
  EXPECT_EQ(twice.centroids, single.centroids);
  EXPECT_DOUBLE_EQ(twice.inertia, 2 * single.inertia);
}

TEST(KMeans, MaxIterZeroOnlyAssigns) {
  auto x = testing::random_matrix(100, 3, 6);
  auto c = testing::random_matrix(4, 3, 7);
  const auto r = kmeans_cpu(x.data(), 100, 3, {.k = 4, .max_iter = 0, .initial_centroids = c.data()});
  EXPECT_EQ(r.iterations, 0);
  EXPECT_EQ(r.centroids, c);
  std::vector<int32_t> a(100);
  std::vector<float> dist(100);
  kmeans_assign_cpu(x.data(), 100, 3, c.data(), 4, Metric::kL2, 1, a.data(), dist.data());
  EXPECT_EQ(r.assignments, a);
}

TEST(KMeans, KEqualsNAndKEqualsOne) {
  auto x = testing::random_matrix(31, 3, 6);
  const auto all = kmeans_cpu(x.data(), 31, 3, {.k = 31});
  EXPECT_NEAR(all.inertia, 0.0, 1e-9);
  const auto one = kmeans_cpu(x.data(), 31, 3, {.k = 1});
  for (int j = 0; j < 3; ++j) {
    double mean = 0;
    for (int i = 0; i < 31; ++i) mean += x[i * 3 + j];
    EXPECT_NEAR(one.centroids[j], mean / 31, 1e-6);
  }
}

TEST(KMeans, RejectsNonFiniteInputAndBadArguments) {
  auto x = testing::random_matrix(10, 2, 1);
  x[7] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(kmeans_cpu(x.data(), 10, 2, {.k = 2}), std::invalid_argument);
  x[7] = std::nanf("");
  EXPECT_THROW(kmeans_cpu(x.data(), 10, 2, {.k = 2}), std::invalid_argument);
  x[7] = 0.f;
  EXPECT_THROW(kmeans_cpu(x.data(), 10, 2, {.k = 11}), std::invalid_argument);
  EXPECT_THROW(kmeans_cpu(x.data(), 10, 2, {.k = 2, .metric = Metric::kInnerProduct}),
               std::invalid_argument);
}

TEST(KMeans, FixedPointScaleKeepsSumsInRange) {
  const double s = detail::kmeans_fixed_point_scale(100'000'000, 1000.0);
  EXPECT_LT(1e8 * 1000.0 * s, std::ldexp(1.0, 62));
  EXPECT_GT(1e8 * 1000.0 * s, std::ldexp(1.0, 60));
  EXPECT_EQ(detail::kmeans_fixed_point_scale(10, 0.0), 1.0);
}

}  // namespace
}  // namespace portrait::kernels
