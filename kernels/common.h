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
