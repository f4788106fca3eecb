// Blocked SIMD score GEMM shared by the CPU paths of top-k, k-means and the heads.
//
// Why our own micro-kernel and not a BLAS: every (row, column) score is defined as ONE
// sequential fp32 fused-multiply-add chain over j = 0..d-1 (dot_ref / sqdiff_ref below). The
// micro-kernel vectorises across 32 packed columns, never along j, so each lane computes
// exactly that chain: results are bit-identical to the scalar references, for any tile
// position, block size, thread count and SIMD width (AVX-512, AVX2 or scalar). Exact top-k
// ties, k-means assignments and the thread-count determinism of k-means follow from that;
// a BLAS sgemm reorders the sum over j (and OpenBLAS would also bring its own thread pool
// beside torch's and interpose its sgemm_ under libtorch's).
//
// Layout: B (the side that is reused: items, centroids, weights) is packed into panels of
// kPanel rows; panel p holds rows [p*kPanel, p*kPanel + kPanel) transposed, [d][kPanel],
// zero-padded past the last row. A is row-major with its rows padded to a multiple of kRows.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/common.h"

namespace portrait::kernels::cpu {

/// Columns per packed panel (two AVX-512 vectors).
inline constexpr int kPanel = 32;
/// Rows of A per micro-tile; callers pad A to a multiple of it.
inline constexpr int kRows = 8;

/// What a score is.
enum class ScoreOp {
  kDot,     ///< s = sum_j a_j * b_j        (dot_ref)
  kSqDiff,  ///< s = sum_j (a_j - b_j)^2    (sqdiff_ref)
};

/// The defining arithmetic: s = 0; for j: s = fma(a_j, b_j, s).
inline float dot_ref(const float* a, const float* b, int d) {
  float s = 0.f;
  for (int j = 0; j < d; ++j) s = std::fma(a[j], b[j], s);
  return s;
}
/// s = 0; for j: t = a_j - b_j; s = fma(t, t, s).
inline float sqdiff_ref(const float* a, const float* b, int d) {
  float s = 0.f;
  for (int j = 0; j < d; ++j) {
    const float t = a[j] - b[j];
    s = std::fma(t, t, s);
  }
  return s;
}

/// Rounds n up to a multiple of m.
inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/// Floats needed to pack n rows of width d.
inline size_t packed_floats(int64_t n, int d) {
  return static_cast<size_t>(round_up(n, kPanel)) * static_cast<size_t>(d);
}

/// Packs rows [0, n) of b [n, d] (row stride d) into out (packed_floats(n, d) floats).
void pack_panels(const float* b, int64_t n, int d, float* out);
/// Same from bf16 rows, widened exactly.
void pack_panels(const bf16_bits* b, int64_t n, int d, float* out);

/// c[i * ldc + j] = score(a row i, b row j) for i < m, j < round_up(n, kPanel) (columns past
/// n are scores against zero rows: ignore them). a: [m, d] row-major with m a multiple of
/// kRows; bp: pack_panels(b, n, d); ldc >= round_up(n, kPanel).
void score_block(const float* a, int64_t m, const float* bp, int64_t n, int d, ScoreOp op,
                 float* c, int64_t ldc);

/// sums[j] += llrint(double(row[j] * mul) * scale) for j < d: the fixed-point centroid
/// accumulation of k-means (vectorised; identical to the scalar expression).
void accumulate_fixed(const float* row, float mul, double scale, int d, int64_t* sums);

/// out[i] = dot_ref(row i, row i) for the n rows of x [n, d] (32 rows per SIMD pass).
void row_sqnorms(const float* x, int64_t n, int d, float* out);
void row_sqnorms(const bf16_bits* x, int64_t n, int d, float* out);

/// The k-means argmin over one point's scores s[0..k) (s = dot_ref(x, c)), overwritten by
/// the keys: kL2 key = cnorm[c] - 2 s (one rounding: 2 s is exact, so this equals
/// fma(-2, s, cnorm)); cosine key = max(0, 1 - s * aux). Returns the lowest index of the
/// smallest key and stores that key in *best. Inputs must be finite.
int32_t argmin_keys(float* s, int k, const float* cnorm, bool cosine, float aux, float* best);

/// Top-k pre-filter over one score row: keys[t] = -s[t] (negate), s[t] * scale[t] (scale
/// non-null) or s[t], written over s; the positions t < n with keys[t] > thr (so never NaN)
/// go to pos in ascending order. Returns their count.
int select_above(float* s, const float* scale, bool negate, int n, float thr, int32_t* pos);

/// erf(x) in fp32 by the clamped rational approximation of Eigen / XLA (odd degree-13
/// numerator over even degree-8 denominator in x^2, |x| clamped to 4; abs. error ~1e-7),
/// spelled out so the SIMD twin (gelu_erf_inplace) gives the same bits.
inline float erf_approx(float a) {
  float x = a < 4.f ? a : 4.f;  // the order of min_ps / max_ps
  x = x > -4.f ? x : -4.f;
  const float x2 = x * x;
  float p = std::fma(x2, -2.72614225801306e-10f, 2.77068142495902e-08f);
  p = std::fma(x2, p, -2.10102402082508e-06f);
  p = std::fma(x2, p, -5.69250639462346e-05f);
  p = std::fma(x2, p, -7.34990630326855e-04f);
  p = std::fma(x2, p, -2.95459980854025e-03f);
  p = std::fma(x2, p, -1.60960333262415e-02f);
  p = x * p;
  float q = std::fma(x2, -1.45660718464996e-05f, -2.13374055278905e-04f);
  q = std::fma(x2, q, -1.68282697438203e-03f);
  q = std::fma(x2, q, -7.37332916720468e-03f);
  q = std::fma(x2, q, -1.42647390514189e-02f);
  return p / q;
}
/// GELU with erf: (0.5 x) * (1 + erf_approx(x * 1/sqrt(2))).
inline float gelu_erf(float x) {
  return (0.5f * x) * (1.f + erf_approx(x * 0.70710678118654752f));
}
/// v[i] = gelu_erf(v[i]) for i < n, vectorised, same bits.
void gelu_erf_inplace(float* v, int64_t n);

/// Which micro-kernel score_block uses on this machine: "avx512", "avx2" or "scalar".
const char* simd_level();

/// Tests only (not thread-safe): switch to "scalar", "avx2", "avx512" or "best"; false when
/// this CPU cannot run that level. Every level must give bit-identical results.
bool force_simd_level(const char* name);

}  // namespace portrait::kernels::cpu
