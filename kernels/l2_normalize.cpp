#include "kernels/l2_normalize.h"

#include <stdexcept>

#include "kernels/common.h"
#include "kernels/parallel.h"

namespace portrait::kernels {

void l2_normalize_cpu(const float* x, float* out, int64_t n, int d,
                      const L2NormalizeParams& params) {
  if (n < 0 || d <= 0) throw std::invalid_argument("l2_normalize: need n >= 0 and d > 0");
  parallel_for(
      n, params.num_threads,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const float* row = x + i * d;
          float* o = out + i * d;
          const float inv = row_inv_norm(row, d);
          for (int j = 0; j < d; ++j) o[j] = row[j] * inv;
        }
      },
      1024);
}

}  // namespace portrait::kernels
