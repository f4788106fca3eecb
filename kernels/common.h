// Types shared by several ops. Includable without CUDA.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace portrait::kernels {

/// Similarity / distance used by top-k search and k-means.
enum class Metric {
  kInnerProduct,  ///< score = <q, x>; higher is better.
  kCosine,        ///< score = <q/|q|, x/|x|>; zero vectors score 0; higher is better.
  kL2,            ///< score = |q - x|^2 (squared distance); lower is better.
};

/// Human-readable metric name ("ip", "cosine", "l2").
inline const char* metric_name(Metric m) {
  switch (m) {
    case Metric::kInnerProduct: return "ip";
    case Metric::kCosine: return "cosine";
    case Metric::kL2: return "l2";
  }
  return "?";
}

/// Arithmetic of the distance / score GEMM inside the fused CUDA kernels (k-means assignment,
/// top-k search). CPU references always compute in fp32 and ignore it.
///
///  * kSimt   fp32 FMA on CUDA cores. Matches the CPU twin to fp32 rounding (summation order
///            differs). Slowest: ~67 TFLOP/s peak on H100.
///  * kTf32   tensor cores, both operands rounded to TF32 (10-bit mantissa, unit roundoff
///            u = 2^-11), fp32 accumulation. |error of x.y| <~ 2u * sum_j |x_j y_j|, i.e. about
///            1e-3 relative: near-ties reorder (another, almost equally near centroid; a
///            different k-th neighbour at the boundary). bf16 input is exact in TF32, so only
///            the fp32 operand (centroids) is rounded.
///  * kTf32x3 tensor cores, "3xTF32": each fp32 operand is split into big + small TF32 parts
///            and a.b ~ a_big.b_small + a_small.b_big + a_big.b_big (3 MMAs). Error about
///            fp32 SIMT's (residual ~2^-22 relative per product), at 3x the TF32 cost, which is
///            still ~2.5x fp32 SIMT's peak on H100 (165 vs 67 TFLOP/s).
///  * kBf16   tensor cores, both operands rounded to bf16 (u = 2^-9), fp32 accumulation; 2x
///            TF32's throughput. Exact products when the input is already bf16 (top-k with bf16
///            queries and database); for k-means the fp32 centroids are rounded, an error of
///            the same size as the bf16 input's own quantisation.
///  * kAuto   the documented per-op default: see KMeansParams::math and TopKParams::math.
enum class MathMode { kAuto, kSimt, kTf32, kTf32x3, kBf16 };

/// "auto", "simt", "tf32", "tf32x3", "bf16".
inline const char* math_mode_name(MathMode m) {
  switch (m) {
    case MathMode::kAuto: return "auto";
    case MathMode::kSimt: return "simt";
    case MathMode::kTf32: return "tf32";
    case MathMode::kTf32x3: return "tf32x3";
    case MathMode::kBf16: return "bf16";
  }
  return "?";
}

/// bfloat16 stored as its raw 16 bits on the host (same bit layout as __nv_bfloat16 and
/// torch.bfloat16), so the CPU code needs no CUDA headers.
using bf16_bits = std::uint16_t;

inline float bf16_to_float(bf16_bits b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// Round-to-nearest-even, NaN stays NaN (matches __float2bfloat16_rn and torch).
inline bf16_bits float_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_bits>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16_bits>(u >> 16);
}

/// 1/|x| for one row, or 0 for an all-zero row (so normalised zero rows stay zero). Shared
/// by l2_normalize and the cosine paths so every CPU op normalises bit-identically.
inline float row_inv_norm(const float* x, int d) {
  double ss = 0.0;  // double: the reference should not lose bits for d=256 rows
  for (int j = 0; j < d; ++j) ss += static_cast<double>(x[j]) * x[j];
  if (!(ss > 0.0)) return ss == 0.0 ? 0.0f : std::nanf("");
  return static_cast<float>(1.0 / std::sqrt(ss));
}

}  // namespace portrait::kernels
