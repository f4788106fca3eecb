// portrait_bench_cpu: times Portrait's CPU k-means, exact top-k and heads on raw float32
// files written by bench/cpu/compare.py, which runs the peers (faiss, scikit-learn, numpy,
// torch) on the same files in the same run. One JSON line per repetition on stdout; results
// (centroids, ids, top-M) go to --out for the agreement checks. Only the kernel call is timed.
//
//   portrait_bench_cpu kmeans --x F --n N --d D --k K --iters I --init F [--metric l2|cosine]
//   portrait_bench_cpu topk   --q F --nq Q --db F --n N --d D --k K [--metric ip|cosine]
//   portrait_bench_cpu heads  --x F --n N --d D --h H --c C --w1 F --b1 F --w2 F --b2 F --m M
//   common: --threads T (0 = all cores) --reps R --out F
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu_gemm.h"
#include "kernels/heads.h"
#include "kernels/kmeans.h"
#include "kernels/topk.h"

namespace pk = portrait::kernels;

namespace {

using Args = std::map<std::string, std::string>;

std::string need(const Args& a, const std::string& k) {
  auto it = a.find(k);
  if (it == a.end()) throw std::invalid_argument("missing --" + k);
  return it->second;
}
int64_t num(const Args& a, const std::string& k, int64_t def = -1) {
  auto it = a.find(k);
  if (it == a.end()) {
    if (def < 0) throw std::invalid_argument("missing --" + k);
    return def;
  }
  return std::stoll(it->second);
}

std::vector<float> read_f32(const std::string& path, int64_t count) {
  std::vector<float> v(static_cast<size_t>(count));
  std::ifstream f(path, std::ios::binary);
  if (!f.read(reinterpret_cast<char*>(v.data()), count * 4))
    throw std::runtime_error(path + ": cannot read " + std::to_string(count) + " floats");
  return v;
}
template <typename T>
void write_raw(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void run_kmeans(const Args& a, int threads, int reps) {
  const int64_t n = num(a, "n"), d = num(a, "d"), k = num(a, "k");
  const auto x = read_f32(need(a, "x"), n * d);
  const auto init = read_f32(need(a, "init"), k * d);
  pk::KMeansParams p;
  p.k = static_cast<int>(k);
  p.max_iter = static_cast<int>(num(a, "iters"));
  p.tol = 0.0;  // exactly max_iter updates, like faiss niter
  p.metric = a.count("metric") && a.at("metric") == "cosine" ? pk::Metric::kCosine : pk::Metric::kL2;
  p.initial_centroids = init.data();
  p.num_threads = threads;
  pk::KMeansResult r;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    r = pk::kmeans_cpu(x.data(), n, static_cast<int>(d), p);
    std::printf("{\"op\":\"kmeans\",\"rep\":%d,\"seconds\":%.6f,\"inertia\":%.10g,\"iterations\":%d,\"reseeded\":%d,\"simd\":\"%s\"}\n",
                i, now() - t0, r.inertia, r.iterations, r.reseeded, pk::cpu::simd_level());
    std::fflush(stdout);
  }
  if (a.count("out")) write_raw(a.at("out"), r.centroids);
}

void run_topk(const Args& a, int threads, int reps) {
  const int64_t nq = num(a, "nq"), n = num(a, "n"), d = num(a, "d"), k = num(a, "k");
  const auto q = read_f32(need(a, "q"), nq * d);
  const auto db = read_f32(need(a, "db"), n * d);
  pk::TopKParams p;
  p.k = static_cast<int>(k);
  p.metric = a.count("metric") && a.at("metric") == "cosine" ? pk::Metric::kCosine
                                                             : pk::Metric::kInnerProduct;
  p.num_threads = threads;
  std::vector<float> s(static_cast<size_t>(nq * k));
  std::vector<int64_t> ids(static_cast<size_t>(nq * k));
  for (int i = 0; i < reps; ++i) {
    const double t0 = now();
    pk::topk_cpu(q.data(), nq, db.data(), n, static_cast<int>(d), p, s.data(), ids.data());
    std::printf("{\"op\":\"topk\",\"rep\":%d,\"seconds\":%.6f,\"simd\":\"%s\"}\n", i, now() - t0,
                pk::cpu::simd_level());
    std::fflush(stdout);
  }
  if (a.count("out")) write_raw(a.at("out"), ids);
}

void run_heads(const Args& a, int threads, int reps) {
  const int64_t n = num(a, "n"), d = num(a, "d"), h = num(a, "h"), c = num(a, "c");
  const int m = static_cast<int>(num(a, "m"));
  const auto x = read_f32(need(a, "x"), n * d);
  const auto w1 = read_f32(need(a, "w1"), h * d), b1 = read_f32(need(a, "b1"), h);
  const auto w2 = read_f32(need(a, "w2"), c * h), b2 = read_f32(need(a, "b2"), c);
  pk::HeadsWeights w{w1.data(), b1.data(), w2.data(), b2.data(), static_cast<int>(d),
                     static_cast<int>(h), static_cast<int>(c)};
  pk::HeadsParams hp;
  hp.num_threads = threads;
  std::vector<float> probs(static_cast<size_t>(n * c)), tp(static_cast<size_t>(c * m));
  std::vector<int64_t> ti(static_cast<size_t>(c * m));
  for (int i = 0; i < reps; ++i) {
    double t0 = now();
    pk::heads_probs_cpu(x.data(), n, w, hp, probs.data());
    const double t_probs = now() - t0;
    t0 = now();
    pk::heads_topm_cpu(x.data(), n, w, hp, m, tp.data(), ti.data());
    std::printf("{\"op\":\"heads\",\"rep\":%d,\"seconds\":%.6f,\"topm_seconds\":%.6f,\"simd\":\"%s\"}\n",
                i, t_probs, now() - t0, pk::cpu::simd_level());
    std::fflush(stdout);
  }
  if (a.count("out")) write_raw(a.at("out"), probs);
  if (a.count("out_ids")) write_raw(a.at("out_ids"), ti);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) throw std::invalid_argument("usage: portrait_bench_cpu kmeans|topk|heads --key value ...");
    const std::string op = argv[1];
    Args a;
    for (int i = 2; i + 1 < argc; i += 2) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0) throw std::invalid_argument("expected --key, got " + key);
      a[key.substr(2)] = argv[i + 1];
    }
    const int threads = static_cast<int>(num(a, "threads", 0));
    const int reps = static_cast<int>(num(a, "reps", 1));
    if (op == "kmeans") run_kmeans(a, threads, reps);
    else if (op == "topk") run_topk(a, threads, reps);
    else if (op == "heads") run_heads(a, threads, reps);
    else throw std::invalid_argument("unknown op " + op);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "portrait_bench_cpu: %s\n", e.what());
    return 2;
  }
  return 0;
}
