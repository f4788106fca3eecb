#include "kernels/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "kernels/cpu_gemm.h"
#include "kernels/kmeans_assign.h"
#include "kernels/parallel.h"
#include "core/rng.h"

namespace portrait::kernels {

namespace {

void normalize_rows(float* x, int64_t n, int d) {
  for (int64_t i = 0; i < n; ++i) {
    float* r = x + i * d;
    const float inv = row_inv_norm(r, d);
    for (int j = 0; j < d; ++j) r[j] *= inv;
  }
}

template <typename T>
class CpuBackend final : public detail::KMeansBackend {
 public:
  CpuBackend(const T* x, int64_t n, int d, int k, Metric metric, int threads)
      : x_(x), n_(n), d_(d), k_(k), cosine_(metric == Metric::kCosine), threads_(threads),
        assign_(static_cast<size_t>(n)), dist_(static_cast<size_t>(n)) {}

  double max_abs() override {
    std::mutex m;
    double result = 0.0;
    bool bad = false;
    parallel_for(n_, threads_, [&](int64_t b, int64_t e) {
      double local = 0.0;
      bool local_bad = false;
      for (int64_t i = b * d_; i < e * d_; ++i) {
        const double a = std::fabs(static_cast<double>(to_f32(x_[i])));
        if (!std::isfinite(a)) local_bad = true;
        else if (a > local) local = a;
      }
      std::lock_guard<std::mutex> lock(m);
      bad = bad || local_bad;
      result = std::max(result, local);
    }, 4096);
    return bad ? std::numeric_limits<double>::quiet_NaN() : result;
  }

  void gather(const int64_t* idx, int64_t m, float* out) override {
    for (int64_t i = 0; i < m; ++i)
      for (int j = 0; j < d_; ++j) out[i * d_ + j] = to_f32(x_[idx[i] * d_ + j]);
  }

  double assign_accumulate(const float* centroids, double scale, int64_t* sums_fx,
                           int64_t* counts) override {
    constexpr int64_t kBlock = 4096;  // inertia block: fixed, so the sum order is too
    if (aux_.empty() && n_ > 0) aux_ = detail::kmeans_point_aux(x_, n_, d_, cosine_, threads_);
    const detail::KMeansCentroids packed =
        detail::kmeans_pack_centroids(centroids, k_, d_, cosine_);
    const int64_t nblk = (n_ + kBlock - 1) / kBlock;
    std::vector<double> part(static_cast<size_t>(nblk), 0.0);
    std::fill(sums_fx, sums_fx + static_cast<int64_t>(k_) * d_, 0);
    std::fill(counts, counts + k_, 0);
    std::mutex m;
    parallel_for(nblk, threads_, [&](int64_t bb, int64_t be) {
      std::vector<int64_t> ls(static_cast<size_t>(k_) * d_, 0), lc(static_cast<size_t>(k_), 0);
      detail::KMeansBlockAssigner assigner(packed);
      for (int64_t blk = bb; blk < be; ++blk) {
        double acc = 0.0;
        const int64_t e = std::min(n_, (blk + 1) * kBlock);
        for (int64_t i0 = blk * kBlock; i0 < e; i0 += detail::KMeansBlockAssigner::kRows) {
          const int64_t rows = std::min(detail::KMeansBlockAssigner::kRows, e - i0);
          assigner.run(x_, i0, rows, aux_.data(), assign_.data() + i0, dist_.data() + i0);
          for (int64_t r = 0; r < rows; ++r) {
            const int32_t c = assign_[i0 + r];
            acc += dist_[i0 + r];
            ++lc[c];
            // cosine: the member's unit direction x * (1/|x|), rounded in fp32 as before.
            cpu::accumulate_fixed(assigner.row(r), cosine_ ? aux_[i0 + r] : 1.f, scale, d_,
                                  ls.data() + static_cast<int64_t>(c) * d_);
          }
        }
        part[blk] = acc;
      }
      // Integer addition is associative: merge order does not change the result.
      std::lock_guard<std::mutex> lock(m);
      for (size_t i = 0; i < ls.size(); ++i) sums_fx[i] += ls[i];
      for (int c = 0; c < k_; ++c) counts[c] += lc[c];
    });
    double inertia = 0.0;
    for (double v : part) inertia += v;  // fixed block order -> thread-count independent
    return inertia;
  }

  bool fetch_distances(float* out) override {
    std::copy(dist_.begin(), dist_.end(), out);
    return true;
  }

  void fetch_assignments(int32_t* out) override {
    std::copy(assign_.begin(), assign_.end(), out);
  }

 private:
  static float to_f32(float v) { return v; }
  static float to_f32(bf16_bits v) { return bf16_to_float(v); }
  const T* x_;
  int64_t n_;
  int d_, k_;
  bool cosine_;
  int threads_;
  std::vector<int32_t> assign_;
  std::vector<float> dist_;
  std::vector<float> aux_;  // |x|^2 or 1/|x|: data-only, computed on the first pass
};

// Floyd's algorithm: m distinct indices from [0, n), returned ascending.
std::vector<int64_t> sample_without_replacement(Rng& rng, int64_t n, int64_t m) {
  std::vector<int64_t> out;
  if (m >= n) {
    out.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[i] = i;
    return out;
  }
  std::unordered_set<int64_t> chosen;
  chosen.reserve(static_cast<size_t>(m) * 2);
  for (int64_t j = n - m; j < n; ++j) {
    const int64_t t = static_cast<int64_t>(rng.below(static_cast<uint64_t>(j + 1)));
    if (!chosen.insert(t).second) chosen.insert(j);
  }
  out.assign(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

float point_dist(const float* a, const float* b, int d, bool cosine) {
  float s = 0.f;
  if (cosine) {
    for (int j = 0; j < d; ++j) s += a[j] * b[j];
    return std::max(0.f, 1.f - s);
  }
  for (int j = 0; j < d; ++j) {
    const float t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

void kmeanspp(detail::KMeansBackend& be, int64_t n, int d, const KMeansParams& p, Rng& rng,
              float* centroids) {
  const int k = p.k;
  int64_t s = p.init_sample > 0 ? p.init_sample : 64 * static_cast<int64_t>(k);
  s = std::min(n, std::max<int64_t>(s, k));
  const bool cosine = p.metric == Metric::kCosine;
  const std::vector<int64_t> idx = sample_without_replacement(rng, n, s);
  std::vector<float> pts(static_cast<size_t>(s) * d);
  be.gather(idx.data(), s, pts.data());
  if (cosine) normalize_rows(pts.data(), s, d);

  std::vector<double> dist(static_cast<size_t>(s));
  auto take = [&](int c, int64_t i) {
    std::copy(pts.begin() + i * d, pts.begin() + (i + 1) * d,
              centroids + static_cast<int64_t>(c) * d);
  };
  auto relax = [&](int c, bool first) {
    const float* cr = centroids + static_cast<int64_t>(c) * d;
    parallel_for(s, p.num_threads, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const double v = point_dist(pts.data() + i * d, cr, d, cosine);
        dist[i] = first ? v : std::min(dist[i], v);
      }
    }, 1024);
  };
  take(0, static_cast<int64_t>(rng.below(static_cast<uint64_t>(s))));
  relax(0, true);
  for (int c = 1; c < k; ++c) {
    double total = 0.0;
    for (double v : dist) total += v;
    int64_t pick = -1;
    if (total > 0.0) {
      const double r = rng.uniform() * total;
      double cum = 0.0;
      for (int64_t i = 0; i < s; ++i) {
        if (dist[i] <= 0.0) continue;
        cum += dist[i];
        pick = i;
        if (cum > r) break;
      }
    }
    if (pick < 0) pick = static_cast<int64_t>(rng.below(static_cast<uint64_t>(s)));
    take(c, pick);
    relax(c, false);
  }
}

template <typename T>
void assign_cpu_impl(const T* x, int64_t n, int d, const float* centroids, int k,
                     Metric metric, int num_threads, int32_t* assign, float* dist) {
  if (metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
  const bool cosine = metric == Metric::kCosine;
  const std::vector<float> aux = detail::kmeans_point_aux(x, n, d, cosine, num_threads);
  const detail::KMeansCentroids packed = detail::kmeans_pack_centroids(centroids, k, d, cosine);
  const int64_t rows = detail::KMeansBlockAssigner::kRows;
  parallel_for((n + rows - 1) / rows, num_threads, [&](int64_t b, int64_t e) {
    detail::KMeansBlockAssigner assigner(packed);
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t i0 = blk * rows;
      assigner.run(x, i0, std::min(rows, n - i0), aux.data(), assign + i0, dist + i0);
    }
  });
}

}  // namespace

void kmeans_assign_cpu(const float* x, int64_t n, int d, const float* centroids, int k,
                       Metric metric, int num_threads, int32_t* assign, float* dist) {
  assign_cpu_impl(x, n, d, centroids, k, metric, num_threads, assign, dist);
}

void kmeans_assign_cpu(const bf16_bits* x, int64_t n, int d, const float* centroids, int k,
                       Metric metric, int num_threads, int32_t* assign, float* dist) {
  assign_cpu_impl(x, n, d, centroids, k, metric, num_threads, assign, dist);
}

namespace detail {

double kmeans_fixed_point_scale(int64_t n, double max_abs) {
  const double t = static_cast<double>(std::max<int64_t>(n, 1)) * max_abs;
  if (!(t > 0.0)) return 1.0;
  // n * max_abs < 2^(ilogb(t) + 1), so every partial sum stays below 2^62.
  const int e = std::min(900, 61 - std::ilogb(t));
  return std::ldexp(1.0, e);
}

KMeansResult kmeans_drive(KMeansBackend& be, int64_t n, int d, const KMeansParams& p) {
  const int k = p.k;
  if (d <= 0) throw std::invalid_argument("kmeans: d must be > 0");
  if (k < 1 || n < k)
    throw std::invalid_argument("kmeans: need 1 <= k <= n (k=" + std::to_string(k) +
                                ", n=" + std::to_string(n) + ")");
  if (p.metric == Metric::kInnerProduct)
    throw std::invalid_argument("kmeans: metric must be l2 or cosine");
  if (p.max_iter < 0 || !(p.tol >= 0.0))
    throw std::invalid_argument("kmeans: need max_iter >= 0 and tol >= 0");
  const bool cosine = p.metric == Metric::kCosine;
  const double max_abs = be.max_abs();
  if (!std::isfinite(max_abs))
    throw std::invalid_argument("kmeans: input contains NaN or inf");
  const double scale = kmeans_fixed_point_scale(n, cosine ? 1.0 : max_abs);

  KMeansResult res;
  res.centroids.resize(static_cast<size_t>(k) * d);
  float* C = res.centroids.data();
  Rng rng(p.seed);
  if (p.initial_centroids != nullptr) {
    std::copy(p.initial_centroids, p.initial_centroids + static_cast<int64_t>(k) * d, C);
    if (cosine) normalize_rows(C, k, d);
  } else {
    kmeanspp(be, n, d, p, rng, C);
  }

  std::vector<int64_t> sums_fx(static_cast<size_t>(k) * d), counts(static_cast<size_t>(k));
  std::vector<double> sums(static_cast<size_t>(k) * d);
  for (int it = 0;; ++it) {
    double inertia = be.assign_accumulate(C, scale, sums_fx.data(), counts.data());
    for (size_t i = 0; i < sums.size(); ++i) sums[i] = static_cast<double>(sums_fx[i]) / scale;
    if (p.allreduce) p.allreduce(sums.data(), counts.data(), &inertia, k, d);
    res.inertia_history.push_back(inertia);
    res.inertia = inertia;
    res.iterations = it;
    if (it > 0 && p.tol > 0.0) {  // tol = 0: exactly max_iter updates, no early stop
      const double prev = res.inertia_history[it - 1];
      if (prev - inertia <= p.tol * prev) break;
    }
    if (it == p.max_iter) break;

    // Update: mean of members; for cosine the mean's direction.
    std::vector<int> empty;
    for (int c = 0; c < k; ++c) {
      float* cr = C + static_cast<int64_t>(c) * d;
      if (counts[c] == 0) {
        empty.push_back(c);
        continue;
      }
      const double inv = 1.0 / static_cast<double>(counts[c]);
      for (int j = 0; j < d; ++j)
        cr[j] = static_cast<float>(sums[static_cast<size_t>(c) * d + j] * inv);
      if (cosine) {
        const float in = row_inv_norm(cr, d);
        if (in == 0.f) {
          empty.push_back(c);  // members cancel out: no direction to keep
          continue;
        }
        for (int j = 0; j < d; ++j) cr[j] *= in;
      }
    }
    // Empty clusters: split the currently largest cluster (faiss style). Only the new
    // centroid moves (to a small perturbation of the big one); keeping the big centroid in
    // place means the next assignment cannot increase inertia.
    for (int c : empty) {
      int j = -1;
      for (int t = 0; t < k; ++t)
        if (counts[t] > 1 && (j < 0 || counts[t] > counts[j])) j = t;
      if (j < 0) break;  // no cluster has two points to give away
      const float* src = C + static_cast<int64_t>(j) * d;
      float* dst = C + static_cast<int64_t>(c) * d;
      double mean_abs = 0.0;
      for (int t = 0; t < d; ++t) mean_abs += std::fabs(src[t]);
      mean_abs /= d;
      if (mean_abs == 0.0) mean_abs = 1.0;
      constexpr double kEps = 1.0 / 1024.0;
      for (int t = 0; t < d; ++t) {
        const double sign = (rng.next() & 1u) ? 1.0 : -1.0;
        dst[t] = static_cast<float>(src[t] + sign * kEps * (std::fabs(src[t]) + mean_abs));
      }
      if (cosine) normalize_rows(dst, 1, d);
      counts[c] = counts[j] / 2;
      counts[j] -= counts[c];
      ++res.reseeded;
    }
  }
  res.assignments.resize(static_cast<size_t>(n));
  be.fetch_assignments(res.assignments.data());
  res.distances.resize(static_cast<size_t>(n));
  if (!be.fetch_distances(res.distances.data())) res.distances.clear();
  return res;
}

}  // namespace detail

KMeansResult kmeans_cpu(const float* x, int64_t n, int d, const KMeansParams& params) {
  if (n < 0 || d <= 0) throw std::invalid_argument("kmeans: need n >= 0 and d > 0");
  CpuBackend<float> be(x, n, d, params.k, params.metric, params.num_threads);
  return detail::kmeans_drive(be, n, d, params);
}

KMeansResult kmeans_cpu(const bf16_bits* x, int64_t n, int d, const KMeansParams& params) {
  if (n < 0 || d <= 0) throw std::invalid_argument("kmeans: need n >= 0 and d > 0");
  CpuBackend<bf16_bits> be(x, n, d, params.k, params.metric, params.num_threads);
  return detail::kmeans_drive(be, n, d, params);
}

}  // namespace portrait::kernels
