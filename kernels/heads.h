// Fused purchase-probability heads: a 2-layer MLP d -> h -> C with a sigmoid per output,
//   p[i, c] = sigmoid(W2[c, :] . act(W1 x_i + b1) + b2[c]),
// weights in torch.nn.Linear layout (row-major [out, in]). Either all probabilities [n, C]
// are written, or, for audience selection, the top-M users per head (p never materialised
// on the GPU).
#pragma once

#include <cstdint>

#include "kernels/common.h"

namespace portrait::kernels {

/// Hidden-layer activation.
enum class Activation {
  kRelu,      ///< max(x, 0)
  kGeluErf,   ///< x * Phi(x) with erf: torch.nn.GELU() default (approximate='none'); the CPU
              ///< uses a rational erf (cpu_gemm.h erf_approx, abs. error ~1e-7)
  kGeluTanh,  ///< tanh approximation: torch.nn.GELU(approximate='tanh')
};

/// Largest supported hidden width h (the GPU keeps a [tile, h] hidden block on chip).
inline constexpr int kHeadsMaxHidden = 1024;
/// Largest supported top-M.
inline constexpr int kHeadsMaxTopM = 1024;

/// MLP weights (host pointers for the CPU API, device pointers for the CUDA API).
struct HeadsWeights {
  /// W1 [h, d] row-major (nn.Linear(d, h).weight).
  const float* w1 = nullptr;
  /// b1 [h]; null means zeros.
  const float* b1 = nullptr;
  /// W2 [C, h] row-major (nn.Linear(h, C).weight).
  const float* w2 = nullptr;
  /// b2 [C]; null means zeros.
  const float* b2 = nullptr;
  /// Input width d.
  int d = 0;
  /// Hidden width h, 1 <= h <= kHeadsMaxHidden.
  int h = 0;
  /// Number of heads C >= 1.
  int c = 0;
};

/// Options for the heads.
struct HeadsParams {
  /// Hidden activation; default matches torch.nn.GELU().
  Activation activation = Activation::kGeluErf;
  /// CPU threads (0 = all cores). Ignored by the CUDA launchers.
  int num_threads = 0;
};

/// Scalar activation shared by the CPU twin (and mirrored on the GPU).
float heads_activation(float x, Activation a);

/// Throws std::invalid_argument for bad shapes / null weights / out-of-range m.
void heads_validate(int64_t n, const HeadsWeights& w, int top_m);

/// probs [n, C] = heads(x), x [n, d] fp32 (host pointers). CPU arithmetic (bit for bit):
/// hidden_u = act(dot_ref(W1[u], x) + b1[u]), p_c = 1 / (1 + exp(-(dot_ref(W2[c], hidden) +
/// b2[c]))) (kernels/cpu_gemm.h). Blocks of 256 users, one packed score GEMM per layer,
/// parallel over blocks.
void heads_probs_cpu(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                     float* probs);
/// Same with bf16 input (raw bits, see common.h); math is fp32.
void heads_probs_cpu(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                     const HeadsParams& p, float* probs);

/// Top-M users per head: out_probs / out_ids are [C, m] row-major, best first, ordered by
/// probability then by smaller user id. NaN probabilities are never selected; slots beyond
/// the number of selectable users hold id -1 and probability -inf. 1 <= m <= kHeadsMaxTopM.
/// Fused: each 256-user block's probabilities feed the per-head heaps directly (no [n, C]
/// buffer).
void heads_topm_cpu(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                    int m, float* out_probs, int64_t* out_ids);
/// Same with bf16 input.
void heads_topm_cpu(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                    const HeadsParams& p, int m, float* out_probs, int64_t* out_ids);

namespace detail {
/// The exact reference (plain loops, one user at a time, single thread): same bits as
/// heads_probs_cpu.
void heads_probs_reference(const float* x, int64_t n, const HeadsWeights& w, Activation act,
                           float* probs);
}  // namespace detail

}  // namespace portrait::kernels
