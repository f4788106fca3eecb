#include "kernels/topk.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu_gemm.h"
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

inline float widen(float v) { return v; }
inline float widen(bf16_bits v) { return bf16_to_float(v); }

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

namespace {

// Running top-k of one query: a min-heap on `better` (front = worst kept). Candidates must
// arrive in ascending id order: then an equal key never beats the front (its id is larger),
// so "strictly above the threshold" is the whole admission test.
class TopKHeap {
 public:
  explicit TopKHeap(int k) : k_(k) { h_.reserve(static_cast<size_t>(k)); }
  void clear() { h_.clear(); }
  float threshold() const {
    return static_cast<int>(h_.size()) == k_ ? h_.front().key
                                             : -std::numeric_limits<float>::infinity();
  }
  void push(const Cand& c) {
    if (static_cast<int>(h_.size()) == k_) {
      std::pop_heap(h_.begin(), h_.end(), worse_first);
      h_.back() = c;
    } else {
      h_.push_back(c);
    }
    std::push_heap(h_.begin(), h_.end(), worse_first);
  }
  // Best first into out (k slots, fill beyond the kept count); empties the heap.
  void emit(bool l2, Metric metric, float* os, int64_t* oi) {
    std::sort_heap(h_.begin(), h_.end(), worse_first);
    for (int s = 0; s < k_; ++s) {
      if (s < static_cast<int>(h_.size())) {
        os[s] = l2 ? -h_[s].key : h_[s].key;
        oi[s] = h_[s].id;
      } else {
        os[s] = topk_fill_score(metric);
        oi[s] = -1;
      }
    }
    h_.clear();
  }

 private:
  static bool worse_first(const Cand& a, const Cand& b) { return better(a, b); }
  int k_;
  std::vector<Cand> h_;
};

// Floats of packed database shared by all threads (256 MiB); tests lower it.
size_t shared_pack_budget = size_t{64} << 20;

struct Better {
  bool operator()(const Cand& a, const Cand& b) const { return better(a, b); }
};

// Running top-k of the fast path as a binary heap over split key / id arrays, worst at the
// root (smallest key; among equal keys the larger id). An admission replaces the root and
// sifts down once (no pop + push), with the comparison inlined.
class TopKSplitHeap {
 public:
  explicit TopKSplitHeap(int k) : k_(k) {}
  float threshold() const {
    return size_ == k_ ? key_[0] : -std::numeric_limits<float>::infinity();
  }
  void push(const Cand& c) {
    if (key_.empty()) {
      key_.resize(static_cast<size_t>(k_));
      id_.resize(static_cast<size_t>(k_));
    }
    if (size_ < k_) {  // sift up
      int i = size_++;
      while (i > 0) {
        const int parent = (i - 1) / 2;
        if (!worse(c.key, c.id, key_[parent], id_[parent])) break;
        key_[i] = key_[parent];
        id_[i] = id_[parent];
        i = parent;
      }
      key_[i] = c.key;
      id_[i] = c.id;
      return;
    }
    sift_down(0, c.key, c.id);  // replace the root
  }
  // Admits many candidates at once (ascending ids, all above threshold()): the k best of
  // heap + batch by the total order, then one heapify. Cheaper than pushes when the batch
  // is a sizeable fraction of k (the first tiles of a query admit nearly everything).
  void merge(const Cand* c, int m, std::vector<Cand>& scratch_) {
    if (key_.empty()) {
      key_.resize(static_cast<size_t>(k_));
      id_.resize(static_cast<size_t>(k_));
    }
    scratch_.resize(static_cast<size_t>(size_ + m));
    for (int i = 0; i < size_; ++i) scratch_[i] = {key_[i], id_[i]};
    std::copy(c, c + m, scratch_.begin() + size_);
    if (size_ + m > k_)
      std::nth_element(scratch_.begin(), scratch_.begin() + (k_ - 1), scratch_.end(), Better{});
    size_ = std::min(k_, size_ + m);
    for (int i = 0; i < size_; ++i) {
      key_[i] = scratch_[i].key;
      id_[i] = scratch_[i].id;
    }
    for (int i = size_ / 2 - 1; i >= 0; --i) sift_down(i, key_[i], id_[i]);
  }
  void emit(bool l2, Metric metric, float* os, int64_t* oi) {
    std::vector<Cand> all(static_cast<size_t>(size_));
    for (int i = 0; i < size_; ++i) all[i] = {key_[i], id_[i]};
    std::sort(all.begin(), all.end(), Better{});
    for (int s = 0; s < k_; ++s) {
      os[s] = s < size_ ? (l2 ? -all[s].key : all[s].key) : topk_fill_score(metric);
      oi[s] = s < size_ ? all[s].id : -1;
    }
    size_ = 0;
  }

 private:
  static bool worse(float ka, int64_t ia, float kb, int64_t ib) {
    return ka < kb || (ka == kb && ia > ib);
  }
  // Places (key, id) at slot i or below, moving worse-than-it children up.
  void sift_down(int i, float key, int64_t id) {
    for (;;) {
      int child = 2 * i + 1;
      if (child >= size_) break;
      if (child + 1 < size_ && worse(key_[child + 1], id_[child + 1], key_[child], id_[child])) ++child;
      if (!worse(key_[child], id_[child], key, id)) break;
      key_[i] = key_[child];
      id_[i] = id_[child];
      i = child;
    }
    key_[i] = key;
    id_[i] = id;
  }
  int k_, size_ = 0;
  std::vector<float> key_;
  std::vector<int64_t> id_;
};

// The "higher is better" key of raw score s against database row id.
inline float to_key(float s, bool l2, const float* db_inv, int64_t id) {
  return l2 ? -s : (db_inv != nullptr ? s * db_inv[id] : s);
}

template <typename T>
std::vector<float> inverse_norms(const T* x, int64_t n, int d, int threads) {
  std::vector<float> inv(static_cast<size_t>(n));
  parallel_for(n, threads, [&](int64_t b, int64_t e) {
    std::vector<float> row(static_cast<size_t>(d));
    for (int64_t i = b; i < e; ++i) {
      for (int j = 0; j < d; ++j) row[j] = widen(x[i * d + j]);
      inv[i] = row_inv_norm(row.data(), d);
    }
  }, 4096);
  return inv;
}

// Blocked fast path: a block of queries against the packed database, the score tile kept in
// L2 and consumed at once by each query's running top-k.
template <typename T>
void topk_blocked(const T* queries, int64_t q, const T* database, int64_t n, int d,
                  const TopKParams& p, float* out_scores, int64_t* out_ids) {
  const int k = p.k;
  const bool cosine = p.metric == Metric::kCosine;
  const bool l2 = p.metric == Metric::kL2;
  const cpu::ScoreOp op = l2 ? cpu::ScoreOp::kSqDiff : cpu::ScoreOp::kDot;
  const int threads = resolve_threads(p.num_threads);
  std::vector<float> db_inv;
  if (cosine) db_inv = inverse_norms(database, n, d, threads);
  const float* inv = cosine ? db_inv.data() : nullptr;

  // Items per score tile; the packed database is shared when it fits a budget (one copy of
  // the database), otherwise every query block packs its own item blocks (re-read once per
  // query block, amortised over up to 256 queries).
  constexpr int64_t kItems = 1024;
  const bool shared_pack = cpu::packed_floats(n, d) <= shared_pack_budget;
  std::vector<float> packed;
  if (shared_pack && n > 0) {
    packed.resize(cpu::packed_floats(n, d));
    const int64_t panels = cpu::round_up(n, cpu::kPanel) / cpu::kPanel;
    parallel_for(panels, threads, [&](int64_t b, int64_t e) {
      const int64_t r0 = b * cpu::kPanel, r1 = std::min(n, e * cpu::kPanel);
      cpu::pack_panels(database + r0 * d, r1 - r0, d, packed.data() + r0 * d);
    }, 16);
  }
  // Queries per block: enough blocks for every thread, at most 256 rows (A block + score
  // tile stay in L2: 128 KiB + 1 MiB at d = 128).
  const int64_t per_thread = (q + threads - 1) / std::max(threads, 1);
  const int64_t qb_rows = std::clamp<int64_t>(cpu::round_up(per_thread, cpu::kRows), cpu::kRows, 256);
  const int64_t nqb = (q + qb_rows - 1) / qb_rows;

  parallel_for(nqb, threads, [&](int64_t bb, int64_t be) {
    std::vector<float> a(static_cast<size_t>(qb_rows) * d), tile(static_cast<size_t>(qb_rows) * kItems);
    std::vector<float> local_pack(shared_pack ? 0 : cpu::packed_floats(kItems, d));
    std::vector<TopKSplitHeap> heaps(static_cast<size_t>(qb_rows), TopKSplitHeap(k));
    std::vector<int32_t> pos(static_cast<size_t>(kItems));
    std::vector<Cand> batch(static_cast<size_t>(kItems)), scratch;
    for (int64_t blk = bb; blk < be; ++blk) {
      const int64_t q0 = blk * qb_rows, rows = std::min(qb_rows, q - q0);
      const int64_t mrows = cpu::round_up(rows, cpu::kRows);
      for (int64_t r = 0; r < mrows; ++r) {
        float* ar = a.data() + r * d;
        if (r >= rows) {
          std::fill(ar, ar + d, 0.f);
          continue;
        }
        for (int j = 0; j < d; ++j) ar[j] = widen(queries[(q0 + r) * d + j]);
        if (cosine) {
          const float qi = row_inv_norm(ar, d);
          for (int j = 0; j < d; ++j) ar[j] *= qi;
        }
      }
      for (int64_t i0 = 0; i0 < n; i0 += kItems) {
        const int64_t items = std::min(kItems, n - i0);
        const float* bp;
        if (shared_pack) {
          bp = packed.data() + i0 * d;
        } else {
          cpu::pack_panels(database + i0 * d, items, d, local_pack.data());
          bp = local_pack.data();
        }
        cpu::score_block(a.data(), mrows, bp, items, d, op, tile.data(), kItems);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t qi = q0 + r;
          TopKSplitHeap& heap = heaps[r];
          float* sr = tile.data() + r * kItems;
          const int hits = cpu::select_above(sr, inv != nullptr ? inv + i0 : nullptr, l2,
                                             static_cast<int>(items), heap.threshold(), pos.data());
          if (hits > k / 4) {  // batch: exclusions first, then one merge
            int m = 0;
            for (int h = 0; h < hits; ++h) {
              const int64_t id = i0 + pos[h];
              if (!is_excluded(p, qi, id)) batch[m++] = {sr[pos[h]], id};
            }
            if (m > 0) heap.merge(batch.data(), m, scratch);
            continue;
          }
          for (int h = 0; h < hits; ++h) {
            const int64_t id = i0 + pos[h];
            const float key = sr[pos[h]];
            if (!(key > heap.threshold())) continue;  // the threshold rose within this row
            if (is_excluded(p, qi, id)) continue;
            heap.push({key, id});
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r)
        heaps[r].emit(l2, p.metric, out_scores + (q0 + r) * k, out_ids + (q0 + r) * k);
    }
  }, 1);
}

}  // namespace

namespace detail {

size_t topk_set_shared_pack_budget(size_t floats) {
  const size_t old = shared_pack_budget;
  shared_pack_budget = floats;
  return old;
}

void topk_reference_cpu(const float* queries, int64_t q, const float* database, int64_t n,
                        int d, const TopKParams& p, float* out_scores, int64_t* out_ids) {
  topk_validate(q, n, d, p);
  const bool cosine = p.metric == Metric::kCosine;
  const bool l2 = p.metric == Metric::kL2;
  std::vector<float> db_inv;
  if (cosine) db_inv = inverse_norms(database, n, d, 1);
  std::vector<float> qn(static_cast<size_t>(d));
  TopKHeap heap(p.k);
  for (int64_t qi = 0; qi < q; ++qi) {
    const float* qrow = queries + qi * d;
    if (cosine) {
      const float inv = row_inv_norm(qrow, d);
      for (int j = 0; j < d; ++j) qn[j] = qrow[j] * inv;
      qrow = qn.data();
    }
    for (int64_t i = 0; i < n; ++i) {
      const float* x = database + i * d;
      const float s = l2 ? cpu::sqdiff_ref(qrow, x, d) : cpu::dot_ref(qrow, x, d);
      const float key = to_key(s, l2, cosine ? db_inv.data() : nullptr, i);
      if (!(key > heap.threshold())) continue;
      if (is_excluded(p, qi, i)) continue;
      heap.push({key, i});
    }
    heap.emit(l2, p.metric, out_scores + qi * p.k, out_ids + qi * p.k);
  }
}

}  // namespace detail

void topk_cpu(const float* queries, int64_t q, const float* database, int64_t n, int d,
              const TopKParams& p, float* out_scores, int64_t* out_ids) {
  topk_validate(q, n, d, p);
  topk_blocked(queries, q, database, n, d, p, out_scores, out_ids);
}

void topk_cpu(const bf16_bits* queries, int64_t q, const bf16_bits* database, int64_t n, int d,
              const TopKParams& params, float* out_scores, int64_t* out_ids) {
  topk_validate(q, n, d, params);
  topk_blocked(queries, q, database, n, d, params, out_scores, out_ids);
}

}  // namespace portrait::kernels
