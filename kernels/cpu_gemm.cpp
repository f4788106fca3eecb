// Packed-panel score micro-kernels (see cpu_gemm.h for the arithmetic contract).
#include "kernels/cpu_gemm.h"

#include <algorithm>
#include <limits>
#include <vector>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized inside its own helpers at -O3
// (GCC bug 105593); nothing of ours is uninitialised.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define PORTRAIT_X86 1
#else
#define PORTRAIT_X86 0
#endif

namespace portrait::kernels::cpu {

namespace {

inline float widen(float v) { return v; }
inline float widen(bf16_bits v) { return bf16_to_float(v); }

template <typename T>
void pack_impl(const T* b, int64_t n, int d, float* out) {
  const int64_t panels = round_up(n, kPanel) / kPanel;
  for (int64_t p = 0; p < panels; ++p) {
    float* o = out + p * kPanel * d;
    const int64_t r0 = p * kPanel;
    const int rows = static_cast<int>(std::min<int64_t>(kPanel, n - r0));
    for (int r = 0; r < rows; ++r) {
      const T* src = b + (r0 + r) * d;
      for (int j = 0; j < d; ++j) o[j * kPanel + r] = widen(src[j]);
    }
    for (int r = rows; r < kPanel; ++r)
      for (int j = 0; j < d; ++j) o[j * kPanel + r] = 0.f;
  }
}

// Portable tile: the same per-lane chains as the SIMD kernels, one column at a time.
template <bool kSq>
void tile_scalar(const float* a, int d, const float* bp, float* c, int64_t ldc) {
  for (int r = 0; r < kRows; ++r) {
    float acc[kPanel] = {};
    const float* ar = a + static_cast<int64_t>(r) * d;
    for (int j = 0; j < d; ++j) {
      const float* bj = bp + j * kPanel;
      for (int t = 0; t < kPanel; ++t) {
        if constexpr (kSq) {
          const float u = ar[j] - bj[t];
          acc[t] = std::fma(u, u, acc[t]);
        } else {
          acc[t] = std::fma(ar[j], bj[t], acc[t]);
        }
      }
    }
    std::copy(acc, acc + kPanel, c + r * ldc);
  }
}

int32_t argmin_scalar(float* s, int k, const float* cnorm, bool cosine, float aux, float* best) {
  for (int c = 0; c < k; ++c)
    s[c] = cosine ? std::max(0.f, 1.f - s[c] * aux) : cnorm[c] - 2.f * s[c];
  int32_t arg = 0;
  for (int c = 1; c < k; ++c)
    if (s[c] < s[arg]) arg = c;
  *best = s[arg];
  return arg;
}

// Squared norms of one packed panel: lane r runs row r's sequential FMA chain.
void panel_sqnorms_scalar(const float* panel, int d, float* out) {
  float acc[kPanel] = {};
  for (int j = 0; j < d; ++j)
    for (int t = 0; t < kPanel; ++t) acc[t] = std::fma(panel[j * kPanel + t], panel[j * kPanel + t], acc[t]);
  std::copy(acc, acc + kPanel, out);
}

void gelu_scalar(float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = gelu_erf(v[i]);
}

int select_scalar(float* s, const float* scale, bool negate, int n, float thr, int32_t* pos) {
  int m = 0;
  for (int t = 0; t < n; ++t) {
    const float key = negate ? -s[t] : (scale != nullptr ? s[t] * scale[t] : s[t]);
    s[t] = key;
    if (key > thr) pos[m++] = t;
  }
  return m;
}

#if PORTRAIT_X86
// Target regions: GCC's `#pragma GCC target`, clang's `#pragma clang attribute` (clang ignores
// the GCC form; the sanitizer job builds this file with clang).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq")
#endif
int select_avx512(float* s, const float* scale, bool negate, int n, float thr, int32_t* pos) {
  const __m512 vt = _mm512_set1_ps(thr), sign = _mm512_set1_ps(-0.f);
  __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  int m = 0;
  for (int t = 0; t < n; t += 16) {
    const __mmask16 live = n - t >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - t)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(live, s + t);
    if (negate) v = _mm512_xor_ps(v, sign);
    else if (scale != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(live, scale + t));
    _mm512_mask_storeu_ps(s + t, live, v);
    const __mmask16 hit = _mm512_mask_cmp_ps_mask(live, v, vt, _CMP_GT_OQ);
    _mm512_mask_compressstoreu_epi32(pos + m, hit, idx);
    m += __builtin_popcount(hit);
    idx = _mm512_add_epi32(idx, step);
  }
  return m;
}

void gelu_avx512(float* v, int64_t n) {
  const __m512 c4 = _mm512_set1_ps(4.f), m4 = _mm512_set1_ps(-4.f), half = _mm512_set1_ps(0.5f);
  const __m512 one = _mm512_set1_ps(1.f), rs2 = _mm512_set1_ps(0.70710678118654752f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    const __m512 a = _mm512_maskz_loadu_ps(live, v + i);
    __m512 x = _mm512_mul_ps(a, rs2);
    x = _mm512_max_ps(_mm512_min_ps(x, c4), m4);
    const __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_fmadd_ps(x2, _mm512_set1_ps(-2.72614225801306e-10f), _mm512_set1_ps(2.77068142495902e-08f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.10102402082508e-06f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-5.69250639462346e-05f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-7.34990630326855e-04f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-2.95459980854025e-03f));
    p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-1.60960333262415e-02f));
    p = _mm512_mul_ps(x, p);
    __m512 q = _mm512_fmadd_ps(x2, _mm512_set1_ps(-1.45660718464996e-05f), _mm512_set1_ps(-2.13374055278905e-04f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.68282697438203e-03f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-7.37332916720468e-03f));
    q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-1.42647390514189e-02f));
    const __m512 e = _mm512_div_ps(p, q);
    _mm512_mask_storeu_ps(v + i, live, _mm512_mul_ps(_mm512_mul_ps(half, a), _mm512_add_ps(one, e)));
  }
}

int32_t argmin_avx512(float* s, int k, const float* cnorm, bool cosine, float aux, float* best) {
  const __m512 one = _mm512_set1_ps(1.f), two = _mm512_set1_ps(2.f), zero = _mm512_setzero_ps();
  const __m512 va = _mm512_set1_ps(aux);
  __m512 mn = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int c = 0; c < k; c += 16) {
    const __mmask16 m = k - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (k - c)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, s + c);
    __m512 key;
    if (cosine) {
      key = _mm512_max_ps(zero, _mm512_sub_ps(one, _mm512_mul_ps(v, va)));
    } else {
      key = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, cnorm + c), _mm512_mul_ps(two, v));
    }
    _mm512_mask_storeu_ps(s + c, m, key);
    mn = _mm512_mask_min_ps(mn, m, mn, key);
  }
  const float b = _mm512_reduce_min_ps(mn);
  const __m512 vb = _mm512_set1_ps(b);
  for (int c = 0; c < k; c += 16) {
    const __mmask16 m = k - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (k - c)) - 1);
    const __mmask16 eq = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, s + c), vb, _CMP_EQ_OQ);
    if (eq) {
      *best = b;
      return c + __builtin_ctz(eq);
    }
  }
  return argmin_scalar(s, 0, cnorm, cosine, aux, best);  // unreachable for finite keys
}

void panel_sqnorms_avx512(const float* panel, int d, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (int j = 0; j < d; ++j) {
    const __m512 v0 = _mm512_loadu_ps(panel + j * kPanel), v1 = _mm512_loadu_ps(panel + j * kPanel + 16);
    a0 = _mm512_fmadd_ps(v0, v0, a0);
    a1 = _mm512_fmadd_ps(v1, v1, a1);
  }
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
}

// 8 rows x 32 columns: 16 zmm accumulators keep both FMA ports busy through the 4-cycle
// latency; per j: 2 panel loads and 8 broadcasts.
template <bool kSq>
void tile_avx512(const float* a, int d, const float* bp, float* c, int64_t ldc) {
  __m512 acc0[kRows], acc1[kRows];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int j = 0; j < d; ++j) {
    const __m512 b0 = _mm512_loadu_ps(bp + j * kPanel);
    const __m512 b1 = _mm512_loadu_ps(bp + j * kPanel + 16);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * d + j]);
      if constexpr (kSq) {
        const __m512 t0 = _mm512_sub_ps(av, b0), t1 = _mm512_sub_ps(av, b1);
        acc0[r] = _mm512_fmadd_ps(t0, t0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(t1, t1, acc1[r]);
      } else {
        acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    _mm512_storeu_ps(c + r * ldc, acc0[r]);
    _mm512_storeu_ps(c + r * ldc + 16, acc1[r]);
  }
}

void accumulate_avx512(const float* row, float mul, double scale, int d, int64_t* sums) {
  const __m256 m = _mm256_set1_ps(mul);
  const __m512d s = _mm512_set1_pd(scale);
  int j = 0;
  for (; j + 8 <= d; j += 8) {
    const __m512d v = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_mul_ps(_mm256_loadu_ps(row + j), m)), s);
    const __m512i q = _mm512_cvtpd_epi64(v);  // MXCSR round-to-nearest-even, like llrint
    _mm512_storeu_si512(sums + j, _mm512_add_epi64(_mm512_loadu_si512(sums + j), q));
  }
  for (; j < d; ++j) sums[j] += std::llrint(static_cast<double>(row[j] * mul) * scale);
}
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
// 8 rows x 32 columns in two 16-column halves of 8 rows x 2 ymm = 16 accumulators would
// spill (16 ymm registers in all), so each half runs 4 rows at a time: 4 x 2 accumulators
// per 16 columns, 4 passes per tile.
template <bool kSq>
void tile_avx2(const float* a, int d, const float* bp, float* c, int64_t ldc) {
  for (int rh = 0; rh < kRows; rh += 4) {
    for (int ch = 0; ch < kPanel; ch += 16) {
      __m256 acc0[4], acc1[4];
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
      for (int j = 0; j < d; ++j) {
        const __m256 b0 = _mm256_loadu_ps(bp + j * kPanel + ch);
        const __m256 b1 = _mm256_loadu_ps(bp + j * kPanel + ch + 8);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
          const __m256 av = _mm256_set1_ps(a[(rh + r) * d + j]);
          if constexpr (kSq) {
            const __m256 t0 = _mm256_sub_ps(av, b0), t1 = _mm256_sub_ps(av, b1);
            acc0[r] = _mm256_fmadd_ps(t0, t0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(t1, t1, acc1[r]);
          } else {
            acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
          }
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        _mm256_storeu_ps(c + (rh + r) * ldc + ch, acc0[r]);
        _mm256_storeu_ps(c + (rh + r) * ldc + ch + 8, acc1[r]);
      }
    }
  }
}
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

using TileFn = void (*)(const float*, int, const float*, float*, int64_t);
struct Kernels {
  TileFn dot, sq;
  void (*accumulate)(const float*, float, double, int, int64_t*);
  const char* name;
  int32_t (*argmin)(float*, int, const float*, bool, float, float*) = argmin_scalar;
  void (*sqnorms)(const float*, int, float*) = panel_sqnorms_scalar;
  int (*select)(float*, const float*, bool, int, float, int32_t*) = select_scalar;
  void (*gelu)(float*, int64_t) = gelu_scalar;
};

void accumulate_scalar(const float* row, float mul, double scale, int d, int64_t* sums) {
  for (int j = 0; j < d; ++j) sums[j] += std::llrint(static_cast<double>(row[j] * mul) * scale);
}

Kernels pick() {
#if PORTRAIT_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
    return {tile_avx512<false>, tile_avx512<true>, accumulate_avx512, "avx512", argmin_avx512,
            panel_sqnorms_avx512, select_avx512, gelu_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {tile_avx2<false>, tile_avx2<true>, accumulate_scalar, "avx2"};
#endif
  return {tile_scalar<false>, tile_scalar<true>, accumulate_scalar, "scalar"};
}

Kernels& kernels() {
  static Kernels k = pick();
  return k;
}

}  // namespace

void pack_panels(const float* b, int64_t n, int d, float* out) { pack_impl(b, n, d, out); }
void pack_panels(const bf16_bits* b, int64_t n, int d, float* out) { pack_impl(b, n, d, out); }

void score_block(const float* a, int64_t m, const float* bp, int64_t n, int d, ScoreOp op,
                 float* c, int64_t ldc) {
  const TileFn tile = op == ScoreOp::kDot ? kernels().dot : kernels().sq;
  const int64_t panels = round_up(n, kPanel) / kPanel;
  // Panel-outer: one packed panel (d x 32 floats, 16 KiB at d = 128) stays in L1 while every
  // row tile of A streams past it from L2.
  for (int64_t p = 0; p < panels; ++p) {
    const float* bpp = bp + p * kPanel * d;
    for (int64_t i = 0; i < m; i += kRows)
      tile(a + i * d, d, bpp, c + i * ldc + p * kPanel, ldc);
  }
}

void accumulate_fixed(const float* row, float mul, double scale, int d, int64_t* sums) {
  kernels().accumulate(row, mul, scale, d, sums);
}

int32_t argmin_keys(float* s, int k, const float* cnorm, bool cosine, float aux, float* best) {
  return kernels().argmin(s, k, cnorm, cosine, aux, best);
}

template <typename T>
void sqnorms_impl(const T* x, int64_t n, int d, float* out) {
  std::vector<float> panel(static_cast<size_t>(kPanel) * d);
  float tmp[kPanel];
  for (int64_t r0 = 0; r0 < n; r0 += kPanel) {
    const int64_t rows = std::min<int64_t>(kPanel, n - r0);
    pack_impl(x + r0 * d, rows, d, panel.data());
    kernels().sqnorms(panel.data(), d, tmp);
    std::copy(tmp, tmp + rows, out + r0);
  }
}
void row_sqnorms(const float* x, int64_t n, int d, float* out) { sqnorms_impl(x, n, d, out); }
void row_sqnorms(const bf16_bits* x, int64_t n, int d, float* out) { sqnorms_impl(x, n, d, out); }

int select_above(float* s, const float* scale, bool negate, int n, float thr, int32_t* pos) {
  return kernels().select(s, scale, negate, n, thr, pos);
}

void gelu_erf_inplace(float* v, int64_t n) { kernels().gelu(v, n); }

const char* simd_level() { return kernels().name; }

bool force_simd_level(const char* name) {
  const std::string want = name;
  const Kernels best = pick();
  if (want == "scalar") {
    kernels() = {tile_scalar<false>, tile_scalar<true>, accumulate_scalar, "scalar"};
    return true;
  }
#if PORTRAIT_X86
  if (want == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    kernels() = {tile_avx2<false>, tile_avx2<true>, accumulate_scalar, "avx2"};
    return true;
  }
#endif
  if (want == best.name || want == "best") {
    kernels() = best;
    return true;
  }
  return false;
}

}  // namespace portrait::kernels::cpu
