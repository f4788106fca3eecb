// See kmeans_assign.h.
#include "kernels/kmeans_assign.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu_gemm.h"
#include "kernels/parallel.h"

namespace portrait::kernels::detail {

namespace {

inline float widen(float v) { return v; }
inline float widen(bf16_bits v) { return bf16_to_float(v); }

template <typename T>
std::vector<float> point_aux_impl(const T* x, int64_t n, int d, bool cosine, int threads) {
  std::vector<float> aux(static_cast<size_t>(n));
  parallel_for(n, threads, [&](int64_t b, int64_t e) {
    if (!cosine) {
      cpu::row_sqnorms(x + b * d, e - b, d, aux.data() + b);
      return;
    }
    std::vector<float> row(static_cast<size_t>(d));
    for (int64_t i = b; i < e; ++i) {
      for (int j = 0; j < d; ++j) row[j] = widen(x[i * d + j]);
      aux[i] = row_inv_norm(row.data(), d);
    }
  }, 4096);
  return aux;
}

}  // namespace

std::vector<float> kmeans_point_aux(const float* x, int64_t n, int d, bool cosine, int threads) {
  return point_aux_impl(x, n, d, cosine, threads);
}
std::vector<float> kmeans_point_aux(const bf16_bits* x, int64_t n, int d, bool cosine,
                                    int threads) {
  return point_aux_impl(x, n, d, cosine, threads);
}

KMeansCentroids kmeans_pack_centroids(const float* centroids, int k, int d, bool cosine) {
  KMeansCentroids c;
  c.k = k;
  c.d = d;
  c.cosine = cosine;
  c.panels.resize(cpu::packed_floats(k, d));
  cpu::pack_panels(centroids, k, d, c.panels.data());
  c.norms.resize(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) {
    const float* r = centroids + static_cast<int64_t>(i) * d;
    c.norms[i] = cpu::dot_ref(r, r, d);
  }
  return c;
}

KMeansBlockAssigner::KMeansBlockAssigner(const KMeansCentroids& c)
    : c_(c), ldc_(cpu::round_up(c.k, cpu::kPanel)),
      a_(static_cast<size_t>(kRows) * c.d), tile_(static_cast<size_t>(kRows * ldc_)) {}

template <typename T>
void KMeansBlockAssigner::run_impl(const T* x, int64_t i0, int64_t rows, const float* aux,
                                   int32_t* assign, float* dist) {
  const int d = c_.d;
  const int64_t mrows = cpu::round_up(rows, cpu::kRows);
  rows_ = nullptr;
  if constexpr (std::is_same_v<T, float>) {
    if (rows == mrows) {
      // fp32 rows in whole micro-tiles are read in place: a copy would cost as much as a
      // K = 64 score tile.
      rows_ = x + i0 * d;
    }
  }
  if (rows_ == nullptr) {
    for (int64_t r = 0; r < mrows; ++r) {
      float* ar = a_.data() + r * d;
      if (r < rows) {
        for (int j = 0; j < d; ++j) ar[j] = widen(x[(i0 + r) * d + j]);
      } else {
        std::fill(ar, ar + d, 0.f);
      }
    }
    rows_ = a_.data();
  }
  cpu::score_block(rows_, mrows, c_.panels.data(), c_.k, d, cpu::ScoreOp::kDot,
                   tile_.data(), ldc_);
  for (int64_t r = 0; r < rows; ++r) {
    float key;
    assign[r] = cpu::argmin_keys(tile_.data() + r * ldc_, c_.k, c_.norms.data(), c_.cosine,
                                 aux[i0 + r], &key);
    dist[r] = c_.cosine ? key : std::max(0.f, key + aux[i0 + r]);
  }
}

void KMeansBlockAssigner::run(const float* x, int64_t i0, int64_t rows, const float* aux,
                              int32_t* assign, float* dist) {
  run_impl(x, i0, rows, aux, assign, dist);
}
void KMeansBlockAssigner::run(const bf16_bits* x, int64_t i0, int64_t rows, const float* aux,
                              int32_t* assign, float* dist) {
  run_impl(x, i0, rows, aux, assign, dist);
}

void kmeans_assign_reference(const float* x, int64_t n, int d, const float* centroids, int k,
                             Metric metric, int32_t* assign, float* dist) {
  const bool cosine = metric == Metric::kCosine;
  std::vector<float> cn(static_cast<size_t>(k)), s(static_cast<size_t>(k));
  for (int c = 0; c < k; ++c) {
    const float* cr = centroids + static_cast<int64_t>(c) * d;
    cn[c] = cpu::dot_ref(cr, cr, d);
  }
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    const float aux = cosine ? row_inv_norm(row, d) : cpu::dot_ref(row, row, d);
    // Plain loops: keys, then the first smallest (the documented arithmetic, spelled out).
    for (int c = 0; c < k; ++c) {
      const float sc = cpu::dot_ref(row, centroids + static_cast<int64_t>(c) * d, d);
      s[c] = cosine ? std::max(0.f, 1.f - sc * aux) : std::fma(-2.f, sc, cn[c]);
    }
    int32_t best = 0;
    for (int c = 1; c < k; ++c)
      if (s[c] < s[best]) best = c;
    assign[i] = best;
    dist[i] = cosine ? s[best] : std::max(0.f, s[best] + aux);
  }
}

}  // namespace portrait::kernels::detail
