#include "kernels/heads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/parallel.h"

namespace portrait::kernels {

float heads_activation(float x, Activation a) {
  switch (a) {
    case Activation::kRelu:
      return x > 0.f ? x : 0.f;
    case Activation::kGeluErf:
      return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
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

// One user: hidden (scratch [h]) then C probabilities.
template <typename T>
void mlp_row(const T* xrow, const HeadsWeights& w, Activation act, float* xs, float* hidden,
             float* probs) {
  for (int j = 0; j < w.d; ++j) xs[j] = load(xrow, j);
  for (int u = 0; u < w.h; ++u) {
    const float* wr = w.w1 + static_cast<int64_t>(u) * w.d;
    float s = 0.f;
    for (int j = 0; j < w.d; ++j) s += wr[j] * xs[j];
    hidden[u] = heads_activation(s + (w.b1 ? w.b1[u] : 0.f), act);
  }
  for (int c = 0; c < w.c; ++c) {
    const float* wr = w.w2 + static_cast<int64_t>(c) * w.h;
    float s = 0.f;
    for (int u = 0; u < w.h; ++u) s += wr[u] * hidden[u];
    const float z = s + (w.b2 ? w.b2[c] : 0.f);
    probs[c] = 1.f / (1.f + std::exp(-z));
  }
}

template <typename T>
void probs_impl(const T* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                float* probs) {
  heads_validate(n, w, 0);
  parallel_for(n, p.num_threads, [&](int64_t b, int64_t e) {
    std::vector<float> xs(w.d), hidden(w.h);
    for (int64_t i = b; i < e; ++i)
      mlp_row(x + i * w.d, w, p.activation, xs.data(), hidden.data(), probs + i * w.c);
  }, 256);
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
  parallel_for(nt, nt, [&](int64_t tb, int64_t te) {
    std::vector<float> xs(w.d), hidden(w.h), pr(w.c);
    for (int64_t t = tb; t < te; ++t) {
      const int64_t b = std::min(n, t * per), e = std::min(n, b + per);
      for (int64_t i = b; i < e; ++i) {
        mlp_row(x + i * w.d, w, p.activation, xs.data(), hidden.data(), pr.data());
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
