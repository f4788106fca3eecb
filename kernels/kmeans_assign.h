// k-means assignment on the CPU: the blocked fast path (kernels/cpu_gemm.h micro-kernel fused
// with the per-point argmin) and its plain-loop reference. Internal to kernels/.
//
// Arithmetic (both paths, bit for bit), with s_c = dot_ref(x, c) on the raw (widened) row:
//  * kL2:     key_c = fma(-2, s_c, |c|^2) (= |c|^2 - 2 s_c: 2 s_c is exact); winner = lowest index of the smallest key;
//             dist = max(0, key + |x|^2), |c|^2 = dot_ref(c, c) and |x|^2 = dot_ref(x, x).
//  * kCosine: dist_c = max(0, 1 - s_c * (1/|x|)), 1/|x| = row_inv_norm(x); winner = lowest
//             index of the smallest dist_c. Centroids are unit-norm.
// |x|^2 and 1/|x| depend only on the data, so a k-means run computes them once (point_aux),
// not once per iteration.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common.h"

namespace portrait::kernels::detail {

/// Per-point constant of the assignment: |x|^2 (kL2) or 1/|x| (kCosine).
std::vector<float> kmeans_point_aux(const float* x, int64_t n, int d, bool cosine, int threads);
std::vector<float> kmeans_point_aux(const bf16_bits* x, int64_t n, int d, bool cosine,
                                    int threads);

/// Centroid side of a pass: packed panels and |c|^2.
struct KMeansCentroids {
  std::vector<float> panels, norms;
  int k = 0, d = 0;
  bool cosine = false;
};
KMeansCentroids kmeans_pack_centroids(const float* centroids, int k, int d, bool cosine);

/// Per-thread scratch that assigns up to kRows points at a time.
class KMeansBlockAssigner {
 public:
  static constexpr int64_t kRows = 256;
  explicit KMeansBlockAssigner(const KMeansCentroids& c);
  /// Assigns points [i0, i0 + rows), rows <= kRows: assign[r], dist[r] for r < rows.
  /// aux = kmeans_point_aux of all points. Afterwards row(r) is point i0 + r in fp32.
  void run(const float* x, int64_t i0, int64_t rows, const float* aux, int32_t* assign,
           float* dist);
  void run(const bf16_bits* x, int64_t i0, int64_t rows, const float* aux, int32_t* assign,
           float* dist);
  const float* row(int64_t r) const { return rows_ + r * c_.d; }

 private:
  template <typename T>
  void run_impl(const T* x, int64_t i0, int64_t rows, const float* aux, int32_t* assign,
                float* dist);
  const KMeansCentroids& c_;
  int64_t ldc_;
  std::vector<float> a_, tile_;
  const float* rows_ = nullptr;  // this block's fp32 rows: x itself or a_
};

/// The exact reference (plain loops, single thread): same results as kmeans_assign_cpu.
void kmeans_assign_reference(const float* x, int64_t n, int d, const float* centroids, int k,
                             Metric metric, int32_t* assign, float* dist);

}  // namespace portrait::kernels::detail
