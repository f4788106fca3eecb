#include "kernels/heads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu_gemm.h"
#include "kernels/parallel.h"

namespace portrait::kernels {

float heads_activation(float x, Activation a) {
  switch (a) {
    case Activation::kRelu:
      return x > 0.f ? x : 0.f;
    case Activation::kGeluErf:
      return cpu::gelu_erf(x);  // rational erf: the SIMD path gives the same bits
    case Activation::kGeluTanh: {
      const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.f + std::tanh(u));
    }
  }
  return x;
}

void heads_validate(int64_t n, const HeadsWeights& w, int top_m) {
  if (n < 0) throw std::invalid_argument("heads: n must be >= 0");
  if (w.d <= 0 || w.c <= 0 || w.h <= 0 || w.h > kHeadsMaxHidden)
    throw std::invalid_argument("heads: need d > 0, C > 0 and 0 < h <= " +
                                std::to_string(kHeadsMaxHidden));
  if (w.w1 == nullptr || w.w2 == nullptr)
    throw std::invalid_argument("heads: W1 and W2 are required");
  if (top_m != 0 && (top_m < 1 || top_m > kHeadsMaxTopM))
    throw std::invalid_argument("heads: m must be in [1, " + std::to_string(kHeadsMaxTopM) +
                                "]");
}

namespace {

inline float load(const float* x, int64_t i) { return x[i]; }
inline float load(const bf16_bits* x, int64_t i) { return bf16_to_float(x[i]); }

inline float sigmoid(float z) { return 1.f / (1.f + std::exp(-z)); }

// One user by plain loops: the reference arithmetic (dot_ref chains, then bias, activation;
// sigmoid of dot_ref + bias).
template <typename T>
void mlp_row(const T* xrow, const HeadsWeights& w, Activation act, float* xs, float* hidden,
             float* probs) {
  for (int j = 0; j < w.d; ++j) xs[j] = load(xrow, j);
  for (int u = 0; u < w.h; ++u) {
    const float s = cpu::dot_ref(w.w1 + static_cast<int64_t>(u) * w.d, xs, w.d);
    hidden[u] = heads_activation(s + (w.b1 ? w.b1[u] : 0.f), act);
  }
  for (int c = 0; c < w.c; ++c) {
    const float s = cpu::dot_ref(w.w2 + static_cast<int64_t>(c) * w.h, hidden, w.h);
    probs[c] = sigmoid(s + (w.b2 ? w.b2[c] : 0.f));
  }
}

// Both layers' weights packed once per call (kernels/cpu_gemm.h panels).
struct PackedHeads {
  std::vector<float> w1, w2;
  int64_t ldh, ldp;  // score-tile strides: h and C rounded up to a panel
  explicit PackedHeads(const HeadsWeights& w)
      : w1(cpu::packed_floats(w.h, w.d)), w2(cpu::packed_floats(w.c, w.h)),
        ldh(cpu::round_up(w.h, cpu::kPanel)), ldp(cpu::round_up(w.c, cpu::kPanel)) {
    cpu::pack_panels(w.w1, w.h, w.d, w1.data());
    cpu::pack_panels(w.w2, w.c, w.h, w2.data());
  }
};

// Per-thread evaluator of up to kRows users: one score GEMM per layer over the block, the
// bias + activation applied once per hidden value in between. Same bits as mlp_row.
class HeadsBlock {
 public:
  static constexpr int64_t kRows = 256;
  HeadsBlock(const HeadsWeights& w, const PackedHeads& pk, Activation act)
      : w_(w), pk_(pk), act_(act), a_(static_cast<size_t>(kRows) * w.d),
        tile_(static_cast<size_t>(kRows * std::max(pk.ldh, pk.ldp))),
        hid_(static_cast<size_t>(kRows) * w.h) {}
  // Probabilities of users [i0, i0 + rows): row r at out() + r * ldp().
  template <typename T>
  void run(const T* x, int64_t i0, int64_t rows) {
    const int d = w_.d, h = w_.h;
    const int64_t mrows = cpu::round_up(rows, cpu::kRows);
    for (int64_t r = 0; r < mrows; ++r)
      for (int j = 0; j < d; ++j) a_[r * d + j] = r < rows ? load(x, (i0 + r) * d + j) : 0.f;
    cpu::score_block(a_.data(), mrows, pk_.w1.data(), h, d, cpu::ScoreOp::kDot, tile_.data(), pk_.ldh);
    for (int64_t r = 0; r < mrows; ++r) {
      float* hr = hid_.data() + r * h;
      for (int u = 0; u < h; ++u) hr[u] = tile_[r * pk_.ldh + u] + (w_.b1 ? w_.b1[u] : 0.f);
      if (act_ == Activation::kGeluErf) {
        cpu::gelu_erf_inplace(hr, h);  // one vectorised pass, not h out-of-line erf calls
      } else {
        for (int u = 0; u < h; ++u) hr[u] = heads_activation(hr[u], act_);
      }
    }
    cpu::score_block(hid_.data(), mrows, pk_.w2.data(), w_.c, h, cpu::ScoreOp::kDot, tile_.data(), pk_.ldp);
    for (int64_t r = 0; r < rows; ++r)
      for (int c = 0; c < w_.c; ++c)
        tile_[r * pk_.ldp + c] = sigmoid(tile_[r * pk_.ldp + c] + (w_.b2 ? w_.b2[c] : 0.f));
  }
  const float* out() const { return tile_.data(); }
  int64_t ldp() const { return pk_.ldp; }

 private:
  const HeadsWeights& w_;
  const PackedHeads& pk_;
  Activation act_;
  std::vector<float> a_, tile_, hid_;
};

template <typename T>
void probs_impl(const T* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                float* probs) {
  heads_validate(n, w, 0);
  const PackedHeads pk(w);
  const int64_t rows = HeadsBlock::kRows;
  parallel_for((n + rows - 1) / rows, p.num_threads, [&](int64_t bb, int64_t be) {
    HeadsBlock blk(w, pk, p.activation);
    for (int64_t b = bb; b < be; ++b) {
      const int64_t i0 = b * rows, m = std::min(rows, n - i0);
      blk.run(x, i0, m);
      for (int64_t r = 0; r < m; ++r)
        std::copy_n(blk.out() + r * blk.ldp(), w.c, probs + (i0 + r) * w.c);
    }
  });
}

struct Cand {
  float p;
  int64_t id;
};
inline bool better(const Cand& a, const Cand& b) {
  return a.p > b.p || (a.p == b.p && a.id < b.id);
}

template <typename T>
void topm_impl(const T* x, int64_t n, const HeadsWeights& w, const HeadsParams& p, int m,
               float* out_probs, int64_t* out_ids) {
  heads_validate(n, w, m);
  if (m < 1) throw std::invalid_argument("heads: m must be >= 1");
  const int nt = resolve_threads(p.num_threads);
  // Each thread keeps its own top-m per head over a contiguous user range; the partial lists
  // are merged afterwards. The total order makes the result independent of the split.
  const int64_t per = (n + nt - 1) / std::max(nt, 1);
  std::vector<std::vector<Cand>> partial(static_cast<size_t>(nt) * w.c);
  auto worse_first = [](const Cand& a, const Cand& b) { return better(a, b); };
  const PackedHeads pk(w);
  parallel_for(nt, nt, [&](int64_t tb, int64_t te) {
    HeadsBlock blk(w, pk, p.activation);
    for (int64_t t = tb; t < te; ++t) {
      const int64_t b = std::min(n, t * per), e = std::min(n, b + per);
      for (int64_t i0 = b; i0 < e; i0 += HeadsBlock::kRows) {
        const int64_t rows = std::min(HeadsBlock::kRows, e - i0);
        blk.run(x, i0, rows);  // fused: the block's probabilities go straight to the heaps
        for (int64_t r = 0; r < rows; ++r) {
          const float* pr = blk.out() + r * blk.ldp();
          const int64_t i = i0 + r;
          for (int c = 0; c < w.c; ++c) {
            if (std::isnan(pr[c])) continue;
            auto& heap = partial[static_cast<size_t>(t) * w.c + c];
            const Cand cand{pr[c], i};
            if (static_cast<int>(heap.size()) == m) {
              if (!better(cand, heap.front())) continue;
              std::pop_heap(heap.begin(), heap.end(), worse_first);
              heap.back() = cand;
            } else {
              heap.push_back(cand);
            }
            std::push_heap(heap.begin(), heap.end(), worse_first);
          }
        }
      }
    }
  });
  for (int c = 0; c < w.c; ++c) {
    std::vector<Cand> all;
    for (int t = 0; t < nt; ++t) {
      const auto& h = partial[static_cast<size_t>(t) * w.c + c];
      all.insert(all.end(), h.begin(), h.end());
    }
    const size_t keep = std::min<size_t>(all.size(), static_cast<size_t>(m));
    std::partial_sort(all.begin(), all.begin() + keep, all.end(), better);
    for (int s = 0; s < m; ++s) {
      const bool have = static_cast<size_t>(s) < keep;
      out_probs[static_cast<int64_t>(c) * m + s] =
          have ? all[s].p : -std::numeric_limits<float>::infinity();
      out_ids[static_cast<int64_t>(c) * m + s] = have ? all[s].id : -1;
    }
  }
}

}  // namespace

namespace detail {
void heads_probs_reference(const float* x, int64_t n, const HeadsWeights& w, Activation act,
                           float* probs) {
  heads_validate(n, w, 0);
  std::vector<float> xs(w.d), hidden(w.h);
  for (int64_t i = 0; i < n; ++i)
    mlp_row(x + i * w.d, w, act, xs.data(), hidden.data(), probs + i * w.c);
}
}  // namespace detail

void heads_probs_cpu(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                     float* probs) {
  probs_impl(x, n, w, p, probs);
}
void heads_probs_cpu(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                     const HeadsParams& p, float* probs) {
  probs_impl(x, n, w, p, probs);
}
void heads_topm_cpu(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                    int m, float* out_probs, int64_t* out_ids) {
  topm_impl(x, n, w, p, m, out_probs, out_ids);
}
void heads_topm_cpu(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                    const HeadsParams& p, int m, float* out_probs, int64_t* out_ids) {
  topm_impl(x, n, w, p, m, out_probs, out_ids);
}

}  // namespace portrait::kernels
