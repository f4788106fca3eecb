#include "kernels/topk.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/parallel.h"

namespace portrait::kernels {

float topk_fill_score(Metric metric) {
  return metric == Metric::kL2 ? std::numeric_limits<float>::infinity()
                               : -std::numeric_limits<float>::infinity();
}

void topk_validate(int64_t q, int64_t n, int d, const TopKParams& p) {
  if (q < 0 || n < 0) throw std::invalid_argument("topk: q and n must be >= 0");
  if (d <= 0) throw std::invalid_argument("topk: d must be > 0");
  if (p.k < 1 || p.k > kTopKMax)
    throw std::invalid_argument("topk: k must be in [1, " + std::to_string(kTopKMax) +
                                "], got " + std::to_string(p.k));
  if ((p.exclude_offsets == nullptr) != (p.exclude_ids == nullptr))
    throw std::invalid_argument("topk: exclude_offsets and exclude_ids go together");
}

namespace {

struct Cand {
  float key;  // "higher is better" key: score, or -distance for L2
  int64_t id;
};

// Total order used everywhere: larger key first, then smaller id.
inline bool better(const Cand& a, const Cand& b) {
  return a.key > b.key || (a.key == b.key && a.id < b.id);
}

inline bool is_excluded(const TopKParams& p, int64_t qi, int64_t id) {
  if (p.exclude_self && id == qi + p.self_offset) return true;
  if (p.exclude_offsets != nullptr) {
    const int64_t* b = p.exclude_ids + p.exclude_offsets[qi];
    const int64_t* e = p.exclude_ids + p.exclude_offsets[qi + 1];
    return std::binary_search(b, e, id);
  }
  return false;
}

}  // namespace

void topk_cpu(const float* queries, int64_t q, const float* database, int64_t n, int d,
              const TopKParams& p, float* out_scores, int64_t* out_ids) {
  topk_validate(q, n, d, p);
  const int k = p.k;
  const bool cosine = p.metric == Metric::kCosine;
  const bool l2 = p.metric == Metric::kL2;

  std::vector<float> db_inv;
  if (cosine) {
    db_inv.resize(static_cast<size_t>(n));
    parallel_for(n, p.num_threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) db_inv[i] = row_inv_norm(database + i * d, d);
    }, 4096);
  }

  parallel_for(q, p.num_threads, [&](int64_t qb, int64_t qe) {
    std::vector<Cand> heap;  // min-heap on `better`: heap.front() is the worst kept
    heap.reserve(static_cast<size_t>(k));
    std::vector<float> qn(static_cast<size_t>(d));
    auto worse_first = [](const Cand& a, const Cand& b) { return better(a, b); };
    for (int64_t qi = qb; qi < qe; ++qi) {
      const float* qrow = queries + qi * d;
      if (cosine) {
        const float inv = row_inv_norm(qrow, d);
        for (int j = 0; j < d; ++j) qn[j] = qrow[j] * inv;
        qrow = qn.data();
      }
      heap.clear();
      for (int64_t i = 0; i < n; ++i) {
        const float* x = database + i * d;
        float key;
        if (l2) {
          float s = 0.f;
          for (int j = 0; j < d; ++j) {
            const float t = qrow[j] - x[j];
            s += t * t;
          }
          key = -s;
        } else if (cosine) {
          const float inv = db_inv[i];
          float s = 0.f;
          for (int j = 0; j < d; ++j) s += qrow[j] * (x[j] * inv);
          key = s;
        } else {
          float s = 0.f;
          for (int j = 0; j < d; ++j) s += qrow[j] * x[j];
          key = s;
        }
        // NaN and the fill value (-inf key) never qualify.
        if (!(key > -std::numeric_limits<float>::infinity())) continue;
        const Cand c{key, i};
        if (static_cast<int>(heap.size()) == k && !better(c, heap.front())) continue;
        if (is_excluded(p, qi, i)) continue;
        if (static_cast<int>(heap.size()) == k) {
          std::pop_heap(heap.begin(), heap.end(), worse_first);
          heap.back() = c;
        } else {
          heap.push_back(c);
        }
        std::push_heap(heap.begin(), heap.end(), worse_first);
      }
      std::sort_heap(heap.begin(), heap.end(), worse_first);  // best first
      float* os = out_scores + qi * k;
      int64_t* oi = out_ids + qi * k;
      for (int s = 0; s < k; ++s) {
        if (s < static_cast<int>(heap.size())) {
          os[s] = l2 ? -heap[s].key : heap[s].key;
          oi[s] = heap[s].id;
        } else {
          os[s] = topk_fill_score(p.metric);
          oi[s] = -1;
        }
      }
    }
  }, 1);
}

void topk_cpu(const bf16_bits* queries, int64_t q, const bf16_bits* database, int64_t n, int d,
              const TopKParams& params, float* out_scores, int64_t* out_ids) {
  topk_validate(q, n, d, params);
  auto widen = [&](const bf16_bits* x, int64_t rows) {
    std::vector<float> v(static_cast<size_t>(rows) * d);
    parallel_for(rows, params.num_threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b * d; i < e * d; ++i) v[i] = bf16_to_float(x[i]);
    }, 4096);
    return v;
  };
  const std::vector<float> qf = widen(queries, q), xf = widen(database, n);
  topk_cpu(qf.data(), q, xf.data(), n, d, params, out_scores, out_ids);
}

}  // namespace portrait::kernels
