// `portrait segment`: see segment.h.
#include "infer/segment.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "infer/embeddings_file.h"
#include "infer/h5.h"
#include "kernels/dispatch.h"
#include "kernels/kmeans.h"

namespace portrait::infer {

namespace k = portrait::kernels;

SegmentParams segment_params_from_config(const cfg::Node& root) {
  SegmentParams p;
  cfg::Section s(root, "segment");
  s.read("embeddings", p.embeddings);
  s.read("output", p.output);
  s.read("k", p.k, 1, 100000);
  s.read_enum("metric", p.metric, {"cosine", "l2"});
  s.read("max_iter", p.max_iter, 0, 100000);
  s.read("tol", p.tol, 0.0, 1.0);
  s.read("n_init", p.n_init, 1, 1000);
  s.read("seed", p.seed, int64_t{0});
  s.read("previous", p.previous);
  s.read_enum("matching", p.matching, {"hungarian", "greedy"});
  s.read("threads", p.threads, 0, 1024);
  s.read_enum("device", p.device, {"auto", "cpu", "cuda"});
  s.finish();
  return p;
}

std::vector<int> hungarian_min(const std::vector<double>& a, int n, int m) {
  // e-maxx formulation, 1-based, with row/column potentials u, v.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(size_t(n) + 1, 0), v(size_t(m) + 1, 0);
  std::vector<int> p(size_t(m) + 1, 0), way(size_t(m) + 1, 0);
  for (int i = 1; i <= n; ++i) {
    p[0] = i;
    int j0 = 0;
    std::vector<double> minv(size_t(m) + 1, inf);
    std::vector<char> used(size_t(m) + 1, 0);
    do {
      used[size_t(j0)] = 1;
      int i0 = p[size_t(j0)], j1 = 0;
      double delta = inf;
      for (int j = 1; j <= m; ++j) {
        if (used[size_t(j)]) continue;
        double cur = a[size_t(i0 - 1) * size_t(m) + size_t(j - 1)] - u[size_t(i0)] - v[size_t(j)];
        if (cur < minv[size_t(j)]) {
          minv[size_t(j)] = cur;
          way[size_t(j)] = j0;
        }
        if (minv[size_t(j)] < delta) {
          delta = minv[size_t(j)];
          j1 = j;
        }
      }
      for (int j = 0; j <= m; ++j) {
        if (used[size_t(j)]) {
          u[size_t(p[size_t(j)])] += delta;
          v[size_t(j)] -= delta;
        } else {
          minv[size_t(j)] -= delta;
        }
      }
      j0 = j1;
    } while (p[size_t(j0)] != 0);
    do {
      int j1 = way[size_t(j0)];
      p[size_t(j0)] = p[size_t(j1)];
      j0 = j1;
    } while (j0);
  }
  std::vector<int> ans(size_t(n), -1);
  for (int j = 1; j <= m; ++j)
    if (p[size_t(j)] != 0) ans[size_t(p[size_t(j)] - 1)] = j - 1;
  return ans;
}

namespace {

double similarity(const float* a, const float* b, int64_t d, bool cosine) {
  double s = 0;
  if (cosine) {
    for (int64_t j = 0; j < d; ++j) s += double(a[j]) * b[j];
    return s;
  }
  for (int64_t j = 0; j < d; ++j) s -= (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
  return s;
}

}  // namespace

SegmentSummary run_segment(const SegmentParams& p) {
  auto t0 = std::chrono::steady_clock::now();
  if (p.embeddings.empty()) throw ConfigError("segment.embeddings: the embeddings file is mandatory");
  if (p.output.empty()) throw ConfigError("segment.output: the output file is mandatory");
  EmbeddingsFile e = read_embeddings(p.embeddings);
  check_output_not_input(p.output, "segment.output", embeddings_inputs(e, "segment.embeddings"));
  if (p.k > e.n)
    throw ConfigError(fmt::format("segment.k = {} exceeds the {} users of {}", p.k, e.n, p.embeddings));
  const bool cosine = p.metric == "cosine";
  const int d = int(e.dim);

  k::KMeansParams kp;
  kp.k = p.k;
  kp.max_iter = p.max_iter;
  kp.tol = p.tol;
  kp.metric = cosine ? k::Metric::kCosine : k::Metric::kL2;
  kp.seed = uint64_t(p.seed);
  kp.num_threads = p.threads;
  k::KMeansResult r;
  const k::Backend backend = k::choose_backend(p.device, "segment.device");
  for (int run = 0; run < p.n_init; ++run) {
    kp.seed = uint64_t(p.seed) + uint64_t(run);
    k::KMeansResult t = k::kmeans(e.x.data(), e.n, d, kp, backend);
    if (run == 0 || t.inertia < r.inertia) r = std::move(t);
  }

  // ---- stable ids --------------------------------------------------------------------------
  const int K = p.k;
  std::vector<int> new_id(size_t(K), -1);  // k-means label -> published id
  std::vector<int> first_order;            // labels in order of first appearance
  {
    std::vector<char> seen(size_t(K), 0);
    for (int32_t a : r.assignments)
      if (!seen[size_t(a)]) {
        seen[size_t(a)] = 1;
        first_order.push_back(a);
      }
    for (int c = 0; c < K; ++c)
      if (!seen[size_t(c)]) first_order.push_back(c);  // empty clusters last
  }
  SegmentSummary sum;
  std::string id_order = "first_appearance";
  if (!p.previous.empty()) {
    h5::H pf = h5::open_file(p.previous);
    if (!h5::has_attr(pf, "format") || h5::attr_str(pf, "format") != kSegmentsFormat)
      throw DataError(p.previous + ": not a portrait-segments file");
    std::vector<hsize_t> dims;
    auto prev = h5::read_float(pf, "centroids", &dims);
    const int Kp = int(dims.at(0));
    if (int64_t(dims.at(1)) != e.dim)
      throw DataError(fmt::format("{}: centroids have dimension {}, embeddings {}", p.previous,
                                  dims.at(1), e.dim));
    if (K < Kp) {
      PLOG_WARN("segment: k = {} < previous k = {}: ids renumbered by first appearance", K, Kp);
    } else {
      std::vector<double> sim(size_t(Kp) * size_t(K));
      for (int i = 0; i < Kp; ++i)
        for (int c = 0; c < K; ++c)
          sim[size_t(i) * size_t(K) + size_t(c)] =
              similarity(prev.data() + size_t(i) * size_t(d), r.centroids.data() + size_t(c) * size_t(d), d, cosine);
      std::vector<int> match(size_t(Kp), -1);  // previous id -> new label
      if (p.matching == "hungarian") {
        std::vector<double> cost(sim.size());
        for (size_t i = 0; i < sim.size(); ++i) cost[i] = -sim[i];
        match = hungarian_min(cost, Kp, K);
      } else {
        std::vector<char> used_prev(size_t(Kp), 0), used_new(size_t(K), 0);
        std::vector<size_t> order(sim.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sim[a] > sim[b]; });
        for (size_t o : order) {
          int i = int(o / size_t(K)), c = int(o % size_t(K));
          if (used_prev[size_t(i)] || used_new[size_t(c)]) continue;
          used_prev[size_t(i)] = used_new[size_t(c)] = 1;
          match[size_t(i)] = c;
        }
      }
      double total = 0;
      for (int i = 0; i < Kp; ++i) {
        new_id[size_t(match[size_t(i)])] = i;
        total += sim[size_t(i) * size_t(K) + size_t(match[size_t(i)])];
      }
      sum.match_similarity = Kp ? total / Kp : 0;
      int next = Kp;
      for (int c : first_order)
        if (new_id[size_t(c)] < 0) new_id[size_t(c)] = next++;
      id_order = "previous";
      sum.matched_previous = true;
    }
  }
  if (id_order == "first_appearance")
    for (int i = 0; i < K; ++i) new_id[size_t(first_order[size_t(i)])] = i;

  // ---- relabel and write -------------------------------------------------------------------
  const int64_t n = e.n;
  std::vector<int32_t> seg(static_cast<size_t>(n));
  std::vector<float> dist(static_cast<size_t>(n));
  std::vector<float> cent(size_t(K) * size_t(d));
  for (int c = 0; c < K; ++c)
    std::copy_n(r.centroids.data() + size_t(c) * size_t(d), d, cent.data() + size_t(new_id[size_t(c)]) * size_t(d));
  // The CPU backend returns the last pass's distances with its assignments (they belong to
  // the returned centroids); only the GPU backends need one more assignment pass for them.
  if (r.distances.size() == size_t(n))
    std::copy(r.distances.begin(), r.distances.end(), dist.begin());
  else
    k::kmeans_assign_cpu(e.x.data(), n, d, r.centroids.data(), K, kp.metric, p.threads, seg.data(), dist.data());
  for (int64_t i = 0; i < n; ++i) seg[size_t(i)] = new_id[size_t(r.assignments[size_t(i)])];
  sum.sizes.assign(size_t(K), 0);
  for (auto s : seg) ++sum.sizes[size_t(s)];

  AtomicOutput ao(p.output);
  {
    h5::H f = h5::create_file(ao.temp_path());
    h5::write_fixed_strings(f, "user_id", e.user_id);
    h5::write_i32(f, "segment", seg.data(), {hsize_t(n)});
    h5::write_float(f, "distance", dist.data(), {hsize_t(n)});
    h5::write_float(f, "centroids", cent.data(), {hsize_t(K), hsize_t(d)});
    h5::write_i64(f, "size", sum.sizes.data(), {hsize_t(K)});
    tag_derived_file(f, kSegmentsFormat, e, p.config_yaml);
    h5::set_attr(f, "k", int64_t(K));
    h5::set_attr(f, "metric", p.metric);
    h5::set_attr(f, "seed", p.seed);
    h5::set_attr(f, "inertia", r.inertia);
    h5::set_attr(f, "iterations", int64_t(r.iterations));
    h5::set_attr(f, "id_order", id_order);
    h5::set_attr(f, "previous", p.previous.empty() ? std::string() : std::filesystem::absolute(p.previous).string());
    h5::set_attr(f, "matching", p.matching);
    h5::set_attr(f, "match_similarity", sum.match_similarity);
    h5::close_file(f, ao.temp_path());
  }
  ao.commit();
  sum.output = p.output;
  sum.users = n;
  sum.k = K;
  sum.inertia = r.inertia;
  sum.iterations = r.iterations;
  sum.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PLOG_INFO("segment: {} users -> {} segments ({}, inertia {:.4g}, {} iterations, ids {}) -> {}", n, K,
            p.metric, r.inertia, r.iterations, id_order, p.output);
  return sum;
}

}  // namespace portrait::infer
