#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "kernels/l2_normalize.h"
#include "kernels/topk.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Full [q, n] score matrix with plain loops, by the documented CPU arithmetic (topk.h): one
// sequential FMA chain per score; cosine normalises the query and applies 1/|x| afterwards.
std::vector<float> score_matrix(const std::vector<float>& qs, int64_t q,
                                const std::vector<float>& db, int64_t n, int d, Metric m) {
  std::vector<float> qn = qs;
  if (m == Metric::kCosine) l2_normalize_cpu(qs.data(), qn.data(), q, d, {.num_threads = 1});
  std::vector<float> s(static_cast<size_t>(q * n));
  for (int64_t i = 0; i < q; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.f;
      for (int t = 0; t < d; ++t) {
        if (m == Metric::kL2) {
          const float diff = qn[i * d + t] - db[j * d + t];
          acc = std::fma(diff, diff, acc);
        } else {
          acc = std::fma(qn[i * d + t], db[j * d + t], acc);
        }
      }
      if (m == Metric::kCosine) acc *= row_inv_norm(db.data() + j * d, d);
      s[i * n + j] = acc;
    }
  return s;
}

using ExcludedFn = std::function<bool(int64_t qi, int64_t id)>;

// Independent check: expected best-first scores via std::partial_sort of every qualifying
// candidate; any id whose score equals the returned score is accepted (ties).
void check_topk(const std::vector<float>& s, int64_t q, int64_t n, int k, Metric m,
                const std::vector<float>& out_s, const std::vector<int64_t>& out_i,
                const ExcludedFn& excluded = nullptr) {
  const bool l2 = m == Metric::kL2;
  const float fill = l2 ? kInf : -kInf;
  for (int64_t i = 0; i < q; ++i) {
    std::vector<float> valid;
    for (int64_t j = 0; j < n; ++j) {
      const float v = s[i * n + j];
      if (std::isnan(v) || v == fill) continue;
      if (excluded && excluded(i, j)) continue;
      valid.push_back(v);
    }
    const size_t keep = std::min<size_t>(valid.size(), static_cast<size_t>(k));
    if (l2)
      std::partial_sort(valid.begin(), valid.begin() + keep, valid.end());
    else
      std::partial_sort(valid.begin(), valid.begin() + keep, valid.end(), std::greater<>());
    std::set<int64_t> seen;
    for (int r = 0; r < k; ++r) {
      const float got = out_s[i * k + r];
      const int64_t id = out_i[i * k + r];
      SCOPED_TRACE("query " + std::to_string(i) + " rank " + std::to_string(r));
      if (static_cast<size_t>(r) < keep) {
        ASSERT_EQ(got, valid[r]);
        ASSERT_GE(id, 0);
        ASSERT_LT(id, n);
        ASSERT_EQ(s[i * n + id], got) << "returned id does not have the returned score";
        ASSERT_TRUE(seen.insert(id).second) << "duplicate id " << id;
        if (excluded) {
          ASSERT_FALSE(excluded(i, id));
        }
      } else {
        ASSERT_EQ(id, -1);
        ASSERT_EQ(got, fill);
      }
    }
  }
}

struct Run {
  std::vector<float> s;
  std::vector<int64_t> i;
};

Run run_topk(const std::vector<float>& qs, int64_t q, const std::vector<float>& db, int64_t n,
             int d, const TopKParams& p) {
  Run r{std::vector<float>(q * p.k), std::vector<int64_t>(q * p.k)};
  topk_cpu(qs.data(), q, db.data(), n, d, p, r.s.data(), r.i.data());
  return r;
}

TEST(TopK, MatchesBruteForceOnOddSizes) {
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
    for (int64_t n : {1, 31, 32, 33, 127, 1025}) {
      for (int d : {1, 7, 33}) {
        const int64_t q = 5;
        auto qs = testing::random_matrix(q, d, 100 + n + d);
        auto db = testing::random_matrix(n, d, 200 + n * 3 + d);
        const auto s = score_matrix(qs, q, db, n, d, m);
        for (int k : {1, 10, static_cast<int>(std::min<int64_t>(n, kTopKMax))}) {
          SCOPED_TRACE(std::string(metric_name(m)) + " n=" + std::to_string(n) + " d=" +
                       std::to_string(d) + " k=" + std::to_string(k));
          TopKParams p{.k = k, .metric = m};
          auto r = run_topk(qs, q, db, n, d, p);
          check_topk(s, q, n, k, m, r.s, r.i);
        }
      }
    }
  }
}

TEST(TopK, KLargerThanNFillsWithMinusOneAndWorstScore) {
  for (Metric m : {Metric::kInnerProduct, Metric::kL2}) {
    auto qs = testing::random_matrix(2, 4, 1);
    auto db = testing::random_matrix(3, 4, 2);
    TopKParams p{.k = 8, .metric = m};
    auto r = run_topk(qs, 2, db, 3, 4, p);
    check_topk(score_matrix(qs, 2, db, 3, 4, m), 2, 3, 8, m, r.s, r.i);
    EXPECT_EQ(r.i[3], -1);
    EXPECT_EQ(r.s[7], topk_fill_score(m));
  }
}

TEST(TopK, EmptyDatabaseReturnsOnlyFill) {
  auto qs = testing::random_matrix(2, 4, 1);
  std::vector<float> db;
  auto r = run_topk(qs, 2, db, 0, 4, {.k = 3});
  for (auto id : r.i) EXPECT_EQ(id, -1);
}

TEST(TopK, KEquals1024WithLargerDatabase) {
  auto qs = testing::random_matrix(2, 8, 5);
  auto db = testing::random_matrix(1030, 8, 6);
  TopKParams p{.k = 1024, .metric = Metric::kL2};
  auto r = run_topk(qs, 2, db, 1030, 8, p);
  check_topk(score_matrix(qs, 2, db, 1030, 8, Metric::kL2), 2, 1030, 1024, Metric::kL2, r.s,
             r.i);
}

TEST(TopK, TiesReturnEqualScoresWithoutDuplicateIds) {
  auto qs = testing::grid_matrix(7, 3, 9);
  auto db = testing::grid_matrix(1023, 3, 10);  // only 27 distinct rows -> massive ties
  for (Metric m : {Metric::kInnerProduct, Metric::kL2}) {
    for (int k : {1, 40, 1023}) {
      TopKParams p{.k = k, .metric = m};
      auto r = run_topk(qs, 7, db, 1023, 3, p);
      check_topk(score_matrix(qs, 7, db, 1023, 3, m), 7, 1023, k, m, r.s, r.i);
      // Documented tie-break of the CPU twin: smaller id first among equal scores.
      for (int64_t i = 0; i < 7; ++i)
        for (int j = 1; j < k; ++j)
          if (r.s[i * k + j] == r.s[i * k + j - 1]) {
            EXPECT_LT(r.i[i * k + j - 1], r.i[i * k + j]);
          }
    }
  }
}

TEST(TopK, NaNScoresAreNeverSelected) {
  auto qs = testing::random_matrix(3, 5, 1);
  auto db = testing::random_matrix(40, 5, 2);
  for (int64_t j = 0; j < 40; j += 3) db[j * 5 + 2] = std::nanf("");
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
    TopKParams p{.k = 40, .metric = m};
    auto r = run_topk(qs, 3, db, 40, 5, p);
    check_topk(score_matrix(qs, 3, db, 40, 5, m), 3, 40, 40, m, r.s, r.i);
    for (int64_t i = 0; i < 3; ++i) {
      for (int j = 0; j < 40; ++j) {
        if (r.i[i * 40 + j] >= 0) {
          EXPECT_NE(r.i[i * 40 + j] % 3, 0);
        }
      }
      EXPECT_EQ(r.i[i * 40 + 26], -1);  // 14 NaN rows -> 26 valid
    }
  }
  // A NaN query matches nothing.
  qs[0] = std::nanf("");
  auto r = run_topk(qs, 3, db, 40, 5, {.k = 4});
  for (int j = 0; j < 4; ++j) EXPECT_EQ(r.i[j], -1);
}

TEST(TopK, InfinitiesFollowTheFillRule) {
  std::vector<float> qs = {1.f, 1.f};
  std::vector<float> db = {0.5f, 0.5f, kInf, 0.f, -kInf, 0.f, 0.25f, 0.f};
  // IP: +inf ranks first, -inf is never returned.
  auto r = run_topk(qs, 1, db, 4, 2, {.k = 4});
  EXPECT_EQ(r.i[0], 1);
  EXPECT_EQ(r.s[0], kInf);
  EXPECT_EQ(r.i[1], 0);
  EXPECT_EQ(r.i[2], 3);
  EXPECT_EQ(r.i[3], -1);
  // L2: infinite distances are never returned.
  r = run_topk(qs, 1, db, 4, 2, {.k = 4, .metric = Metric::kL2});
  EXPECT_EQ(r.i[0], 0);
  EXPECT_EQ(r.i[1], 3);
  EXPECT_EQ(r.i[2], -1);
  EXPECT_EQ(r.s[2], kInf);
}

TEST(TopK, ExcludedIdsNeverReturned) {
  const int64_t q = 6, n = 127;
  const int d = 9;
  auto qs = testing::random_matrix(q, d, 31);
  auto db = testing::random_matrix(n, d, 32);
  // Query i excludes every id with (id % (i + 2)) == 0, plus nothing for query 5.
  std::vector<int64_t> offsets = {0}, ids;
  for (int64_t i = 0; i < q; ++i) {
    if (i != 5)
      for (int64_t j = 0; j < n; ++j)
        if (j % (i + 2) == 0) ids.push_back(j);
    offsets.push_back(static_cast<int64_t>(ids.size()));
  }
  auto excluded = [&](int64_t i, int64_t j) { return i != 5 && j % (i + 2) == 0; };
  for (Metric m : {Metric::kInnerProduct, Metric::kL2}) {
    for (int k : {1, 20, 127}) {
      TopKParams p{.k = k, .metric = m, .exclude_offsets = offsets.data(),
                   .exclude_ids = ids.data()};
      auto r = run_topk(qs, q, db, n, d, p);
      check_topk(score_matrix(qs, q, db, n, d, m), q, n, k, m, r.s, r.i, excluded);
    }
  }
}

TEST(TopK, ExcludeSelfSkipsTheQueryRow) {
  const int64_t n = 50;
  const int d = 6;
  auto db = testing::random_matrix(n, d, 77);
  // Queries are database rows 10..19: self_offset = 10.
  std::vector<float> qs(db.begin() + 10 * d, db.begin() + 20 * d);
  TopKParams p{.k = 5, .metric = Metric::kL2, .exclude_self = true, .self_offset = 10};
  auto r = run_topk(qs, 10, db, n, d, p);
  check_topk(score_matrix(qs, 10, db, n, d, Metric::kL2), 10, n, 5, Metric::kL2, r.s, r.i,
             [](int64_t i, int64_t j) { return j == i + 10; });
  for (int64_t i = 0; i < 10; ++i) EXPECT_GT(r.s[i * 5], 0.f);  // self (distance 0) skipped
}

TEST(TopK, MultithreadedEqualsSingleThreaded) {
  auto qs = testing::random_matrix(33, 16, 1);
  auto db = testing::random_matrix(1025, 16, 2);
  for (Metric m : {Metric::kInnerProduct, Metric::kCosine, Metric::kL2}) {
    auto a = run_topk(qs, 33, db, 1025, 16, {.k = 17, .metric = m, .num_threads = 1});
    auto b = run_topk(qs, 33, db, 1025, 16, {.k = 17, .metric = m, .num_threads = 4});
    EXPECT_EQ(a.s, b.s);
    EXPECT_EQ(a.i, b.i);
  }
}

TEST(TopK, RejectsOutOfRangeK) {
  std::vector<float> x(8, 1.f);
  std::vector<float> s(2000);
  std::vector<int64_t> i(2000);
  EXPECT_THROW(topk_cpu(x.data(), 1, x.data(), 2, 4, {.k = 0}, s.data(), i.data()),
               std::invalid_argument);
  EXPECT_THROW(topk_cpu(x.data(), 1, x.data(), 2, 4, {.k = 1025}, s.data(), i.data()),
               std::invalid_argument);
}

}  // namespace
}  // namespace portrait::kernels
