// RFM quintile scores and names: see rfm.h.
#include "tags/rfm.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace portrait::tags {

std::vector<int> quintile_scores(const std::vector<double>& values, bool higher_is_better) {
  const size_t n = values.size();
  std::vector<int> out(n, 1);
  if (n == 0) return out;
  // "Worse" = smaller when higher is better; sort by worseness and count strictly worse values.
  std::vector<double> key(n);
  for (size_t i = 0; i < n; ++i) key[i] = higher_is_better ? values[i] : -values[i];
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key[a] < key[b]; });
  size_t k = 0;
  while (k < n) {
    size_t e = k;
    while (e < n && key[order[e]] == key[order[k]]) ++e;
    // `k` values are strictly worse than this tie block.
    const int score = 1 + int((5 * k) / n);
    for (size_t j = k; j < e; ++j) out[order[j]] = std::min(5, score);
    k = e;
  }
  return out;
}

int fm_score(int f, int m) { return (f + m + 1) / 2; }

const char* rfm_name(int r, int f, int m) {
  if (r < 1 || r > 5 || f < 1 || f > 5 || m < 1 || m > 5)
    throw std::invalid_argument("rfm_name: scores must be in 1..5, got r=" + std::to_string(r) +
                                " f=" + std::to_string(f) + " m=" + std::to_string(m));
  // Rows R=1..5, columns FM=1..5 (indices into kRfmNames); see the grid in rfm.h.
  static constexpr int kGrid[5][5] = {
      {10, 9, 7, 7, 8},  // R=1: Lost, Hibernating, At Risk, At Risk, Can't Lose Them
      {9, 9, 7, 7, 8},   // R=2: Hibernating x2, At Risk x2, Can't Lose Them
      {6, 6, 5, 1, 1},   // R=3: About to Sleep x2, Need Attention, Loyal Customers x2
      {4, 2, 2, 1, 1},   // R=4: Promising, Potential Loyalists x2, Loyal Customers x2
      {3, 2, 2, 0, 0},   // R=5: New Customers, Potential Loyalists x2, Champions x2
  };
  return kRfmNames[size_t(kGrid[r - 1][fm_score(f, m) - 1])];
}

}  // namespace portrait::tags
