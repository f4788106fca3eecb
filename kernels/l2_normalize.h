// Row-wise L2 normalisation of an [n, d] row-major float matrix (cosine metrics use it).
#pragma once

#include <cstdint>

#include "kernels/common.h"

namespace portrait::kernels {

/// Options for l2_normalize.
struct L2NormalizeParams {
  /// CPU threads; 0 = all cores. Ignored by the CUDA launcher.
  int num_threads = 0;
};

/// out[i, :] = x[i, :] / |x[i, :]| for x, out of shape [n, d] row-major (out may equal x).
/// Zero rows stay zero; rows with inf/NaN produce NaN (0 * inf), never an exception.
/// The norm is accumulated in double, then 1/|x| is rounded to float and multiplied in.
void l2_normalize_cpu(const float* x, float* out, int64_t n, int d,
                      const L2NormalizeParams& params = {});

}  // namespace portrait::kernels
