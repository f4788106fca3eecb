// Helpers for the GPU kernel tests (CUDA runtime only; no torch). Device arrays are
// kernels/device_buffer.cuh's DeviceBuffer, the one the kernels use.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/device_buffer.cuh"
#include "kernels/topk.h"

namespace portrait::kernels::testing {

/// Brute-force score of (query qi, database row id) in double, for tolerance checks of GPU
/// results. qs [Q, d], db [N, d] row-major.
inline double exact_score(const std::vector<float>& qs, const std::vector<float>& db, int64_t qi,
                   int64_t id, int d, Metric m) {
  double dot = 0, qq = 0, xx = 0, l2 = 0;
  for (int t = 0; t < d; ++t) {
    const double a = qs[qi * d + t], b = db[id * d + t];
    dot += a * b;
    qq += a * a;
    xx += b * b;
    l2 += (a - b) * (a - b);
  }
  if (m == Metric::kL2) return l2;
  if (m == Metric::kCosine) return (qq == 0 || xx == 0) ? 0.0 : dot / std::sqrt(qq * xx);
  return dot;
}

}  // namespace portrait::kernels::testing
