// Helpers shared by the kernel tests: deterministic data, brute-force references, ARI.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

#include "core/rng.h"

namespace portrait::kernels::testing {

inline std::vector<float> random_matrix(int64_t rows, int d, uint64_t seed, float lo = -1.f,
                                        float hi = 1.f) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(rows) * d);
  for (auto& x : v) x = lo + static_cast<float>(rng.uniform()) * (hi - lo);
  return v;
}

/// Values on a coarse grid so that many scores tie exactly.
inline std::vector<float> grid_matrix(int64_t rows, int d, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(rows) * d);
  for (auto& x : v) x = static_cast<float>(static_cast<int>(rng.below(3)) - 1);
  return v;
}

/// Adjusted Rand index between two labelings of the same points (1.0 = identical
/// partitions up to relabeling).
inline double adjusted_rand_index(const std::vector<int>& a, const std::vector<int>& b) {
  const size_t n = a.size();
  std::map<std::pair<int, int>, int64_t> joint;
  std::map<int, int64_t> ca, cb;
  for (size_t i = 0; i < n; ++i) {
    ++joint[{a[i], b[i]}];
    ++ca[a[i]];
    ++cb[b[i]];
  }
  auto c2 = [](int64_t x) { return static_cast<double>(x) * (x - 1) / 2.0; };
  double sum_ij = 0, sum_a = 0, sum_b = 0;
  for (auto& [k, v] : joint) sum_ij += c2(v);
  for (auto& [k, v] : ca) sum_a += c2(v);
  for (auto& [k, v] : cb) sum_b += c2(v);
  const double expected = sum_a * sum_b / c2(static_cast<int64_t>(n));
  const double max_index = 0.5 * (sum_a + sum_b);
  if (max_index == expected) return 1.0;  // both labelings trivial
  return (sum_ij - expected) / (max_index - expected);
}

}  // namespace portrait::kernels::testing
