#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/heads.h"
#include "test_util.h"

namespace portrait::kernels {
namespace {

struct Mlp {
  int d, h, c;
  std::vector<float> w1, b1, w2, b2;
  HeadsWeights weights() const {
    return {w1.data(), b1.data(), w2.data(), b2.data(), d, h, c};
  }
};

Mlp make_mlp(int d, int h, int c, uint64_t seed) {
  const float s1 = 1.f / std::sqrt(float(d)), s2 = 3.f / std::sqrt(float(h));
  return {d,
          h,
          c,
          testing::random_matrix(h, d, seed, -s1, s1),
          testing::random_matrix(1, h, seed + 1, -s1, s1),
          testing::random_matrix(c, h, seed + 2, -s2, s2),
          testing::random_matrix(1, c, seed + 3, -1.f, 1.f)};
}

// Independent double-precision MLP.
std::vector<double> naive_probs(const std::vector<float>& x, int64_t n, const Mlp& m,
                                Activation act) {
  std::vector<double> out(static_cast<size_t>(n) * m.c);
  std::vector<double> hid(m.h);
  for (int64_t i = 0; i < n; ++i) {
    for (int u = 0; u < m.h; ++u) {
      double s = m.b1[u];
      for (int j = 0; j < m.d; ++j) s += double(m.w1[u * m.d + j]) * x[i * m.d + j];
      if (act == Activation::kRelu) s = std::max(s, 0.0);
      else if (act == Activation::kGeluErf) s = 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
      else s = 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)));
      hid[u] = s;
    }
    for (int c = 0; c < m.c; ++c) {
      double z = m.b2[c];
      for (int u = 0; u < m.h; ++u) z += double(m.w2[c * m.h + u]) * hid[u];
      out[i * m.c + c] = 1 / (1 + std::exp(-z));
    }
  }
  return out;
}

TEST(Heads, ActivationsMatchTorchReferenceValues) {
  // Values of torch.nn.functional.gelu(x) and gelu(x, approximate='tanh').
  EXPECT_NEAR(heads_activation(1.f, Activation::kGeluErf), 0.8413447460685429, 1e-6);
  EXPECT_NEAR(heads_activation(-0.5f, Activation::kGeluErf), -0.15426876936299347, 1e-6);
  EXPECT_NEAR(heads_activation(1.f, Activation::kGeluTanh), 0.8411919906082768, 1e-6);
  EXPECT_NEAR(heads_activation(-3.f, Activation::kGeluTanh), -0.0036373920817729943, 1e-6);
  EXPECT_EQ(heads_activation(-2.f, Activation::kRelu), 0.f);
  EXPECT_EQ(heads_activation(2.5f, Activation::kRelu), 2.5f);
}

TEST(Heads, ProbabilitiesMatchNaiveMlp) {
  for (Activation act : {Activation::kRelu, Activation::kGeluErf, Activation::kGeluTanh}) {
    for (auto [n, d, h, c] : {std::tuple{1, 1, 1, 1}, {33, 31, 17, 3}, {127, 64, 33, 5}}) {
      const Mlp m = make_mlp(d, h, c, 10 + d);
      auto x = testing::random_matrix(n, d, 20 + n);
      std::vector<float> p(static_cast<size_t>(n) * c);
      heads_probs_cpu(x.data(), n, m.weights(), {.activation = act}, p.data());
      const auto ref = naive_probs(x, n, m, act);
      for (size_t i = 0; i < p.size(); ++i) ASSERT_NEAR(p[i], ref[i], 2e-6) << i;
    }
  }
}

TEST(Heads, NullBiasesMeanZero) {
  Mlp m = make_mlp(8, 4, 2, 3);
  std::fill(m.b1.begin(), m.b1.end(), 0.f);
  std::fill(m.b2.begin(), m.b2.end(), 0.f);
  auto x = testing::random_matrix(10, 8, 4);
  std::vector<float> a(20), b(20);
  heads_probs_cpu(x.data(), 10, m.weights(), {}, a.data());
  HeadsWeights w = m.weights();
  w.b1 = nullptr;
  w.b2 = nullptr;
  heads_probs_cpu(x.data(), 10, w, {}, b.data());
  EXPECT_EQ(a, b);
}

TEST(Heads, Bf16InputEqualsFp32OfRoundedInput) {
  const Mlp m = make_mlp(33, 20, 4, 5);
  auto x = testing::random_matrix(31, 33, 6);
  std::vector<bf16_bits> xb(x.size());
  std::vector<float> xr(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    xb[i] = float_to_bf16(x[i]);
    xr[i] = bf16_to_float(xb[i]);
  }
  std::vector<float> a(31 * 4), b(31 * 4);
  heads_probs_cpu(xb.data(), 31, m.weights(), {}, a.data());
  heads_probs_cpu(xr.data(), 31, m.weights(), {}, b.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.00390625f), 0x3f80);  // tie rounds to even
  EXPECT_EQ(float_to_bf16(1.01171875f), 0x3f82);  // tie rounds to even (up)
}

// Expected per head: probabilities sorted descending (independent of the selection code).
void check_topm(const std::vector<float>& probs, int64_t n, int c, int m,
                const std::vector<float>& op, const std::vector<int64_t>& oi) {
  for (int h = 0; h < c; ++h) {
    std::vector<float> col;
    for (int64_t i = 0; i < n; ++i)
      if (!std::isnan(probs[i * c + h])) col.push_back(probs[i * c + h]);
    std::sort(col.begin(), col.end(), std::greater<>());
    std::vector<int64_t> seen;
    for (int r = 0; r < m; ++r) {
      const int64_t id = oi[h * m + r];
      if (static_cast<size_t>(r) < col.size()) {
        ASSERT_EQ(op[h * m + r], col[r]) << "head " << h << " rank " << r;
        ASSERT_GE(id, 0);
        ASSERT_EQ(probs[id * c + h], op[h * m + r]);
        seen.push_back(id);
      } else {
        ASSERT_EQ(id, -1);
        ASSERT_EQ(op[h * m + r], -std::numeric_limits<float>::infinity());
      }
    }
    std::sort(seen.begin(), seen.end());
    ASSERT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end()) << "duplicate";
  }
}

TEST(Heads, TopMUsersMatchSortedProbabilities) {
  for (auto [n, m] : {std::pair{1, 1}, {32, 5}, {1025, 1}, {1025, 100}, {1023, 1023}}) {
    const Mlp mlp = make_mlp(16, 24, 3, 8);
    auto x = testing::random_matrix(n, 16, 9 + n);
    std::vector<float> probs(static_cast<size_t>(n) * 3);
    heads_probs_cpu(x.data(), n, mlp.weights(), {}, probs.data());
    std::vector<float> op(3 * m);
    std::vector<int64_t> oi(3 * m);
    heads_topm_cpu(x.data(), n, mlp.weights(), {}, m, op.data(), oi.data());
    check_topm(probs, n, 3, m, op, oi);
  }
}

TEST(Heads, TopMLargerThanNFillsWithMinusOne) {
  const Mlp mlp = make_mlp(4, 4, 2, 1);
  auto x = testing::random_matrix(3, 4, 2);
  std::vector<float> probs(6), op(20);
  std::vector<int64_t> oi(20);
  heads_probs_cpu(x.data(), 3, mlp.weights(), {}, probs.data());
  heads_topm_cpu(x.data(), 3, mlp.weights(), {}, 10, op.data(), oi.data());
  check_topm(probs, 3, 2, 10, op, oi);
}

TEST(Heads, NaNUsersAreNeverSelected) {
  const Mlp mlp = make_mlp(4, 4, 2, 1);
  auto x = testing::random_matrix(20, 4, 2);
  x[5 * 4 + 1] = std::nanf("");
  std::vector<float> probs(40), op(40);
  std::vector<int64_t> oi(40);
  heads_probs_cpu(x.data(), 20, mlp.weights(), {}, probs.data());
  heads_topm_cpu(x.data(), 20, mlp.weights(), {}, 20, op.data(), oi.data());
  check_topm(probs, 20, 2, 20, op, oi);
  EXPECT_EQ(oi[19], -1);
}

TEST(Heads, SaturatedTiesBreakBySmallerUserId) {
  Mlp mlp = make_mlp(2, 2, 1, 1);
  mlp.b2[0] = 100.f;  // every probability is exactly 1.0f
  auto x = testing::random_matrix(50, 2, 3);
  std::vector<float> op(10);
  std::vector<int64_t> oi(10);
  heads_topm_cpu(x.data(), 50, mlp.weights(), {.num_threads = 3}, 10, op.data(), oi.data());
  for (int r = 0; r < 10; ++r) {
    EXPECT_EQ(op[r], 1.f);
    EXPECT_EQ(oi[r], r);
  }
}

TEST(Heads, MultithreadedEqualsSingleThreaded) {
  const Mlp mlp = make_mlp(12, 10, 4, 2);
  auto x = testing::random_matrix(2049, 12, 3);
  std::vector<float> a(2049 * 4), b(2049 * 4), oa(4 * 50), ob(4 * 50);
  std::vector<int64_t> ia(4 * 50), ib(4 * 50);
  heads_probs_cpu(x.data(), 2049, mlp.weights(), {.num_threads = 1}, a.data());
  heads_probs_cpu(x.data(), 2049, mlp.weights(), {.num_threads = 4}, b.data());
  EXPECT_EQ(a, b);
  heads_topm_cpu(x.data(), 2049, mlp.weights(), {.num_threads = 1}, 50, oa.data(), ia.data());
  heads_topm_cpu(x.data(), 2049, mlp.weights(), {.num_threads = 4}, 50, ob.data(), ib.data());
  EXPECT_EQ(oa, ob);
  EXPECT_EQ(ia, ib);
}

TEST(Heads, RejectsBadShapes) {
  const Mlp mlp = make_mlp(4, 4, 2, 1);
  std::vector<float> x(8), p(4);
  HeadsWeights w = mlp.weights();
  w.h = kHeadsMaxHidden + 1;
  EXPECT_THROW(heads_probs_cpu(x.data(), 2, w, {}, p.data()), std::invalid_argument);
  w = mlp.weights();
  w.w1 = nullptr;
  EXPECT_THROW(heads_probs_cpu(x.data(), 2, w, {}, p.data()), std::invalid_argument);
  std::vector<int64_t> ids(4);
  EXPECT_THROW(heads_topm_cpu(x.data(), 2, mlp.weights(), {}, kHeadsMaxTopM + 1, p.data(),
                              ids.data()),
               std::invalid_argument);
}

}  // namespace
}  // namespace portrait::kernels
