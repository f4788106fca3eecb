// portrait_bench_kernels [--reps N] [--scale S] [--only PREFIX]
// For every kernel: a correctness check against the CPU twin (small sizes, every math mode),
// then timing of a production-sized call (median of N cudaEvent-timed runs after one
// warm-up), reported as GB/s and TFLOP/s and as a fraction of the H100 floors (3.0 TB/s HBM;
// 67 TFLOP/s fp32 SIMT, 400 TFLOP/s TF32, 800 TFLOP/s BF16 dense tensor-core planning
// figures from performance.md; 3xTF32 is measured against the TF32 floor / 3).
// Every timing also prints a machine-readable line "RESULT<TAB>key<TAB>ms" that
// bench/kernels/baseline.py --ours <this binary> joins with the PyTorch baselines measured
// in the same run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/device.h"
#include "kernels/device_buffer.cuh"
#include "kernels/heads.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/l2_normalize.cuh"
#include "core/rng.h"
#include "kernels/topk.cuh"

namespace pk = portrait::kernels;

namespace {

constexpr double kFloorBytes = 3.0e12;

// Planning floor (FLOP/s) of the GEMM precision a math mode runs at.
double flop_floor(pk::MathMode m) {
  switch (m) {
    case pk::MathMode::kTf32: return 400e12;
    case pk::MathMode::kTf32x3: return 400e12 / 3;
    case pk::MathMode::kBf16: return 800e12;
    default: return 67e12;
  }
}

std::string g_only;  // --only: run only timings whose key starts with this
bool wanted(const std::string& key) { return key.compare(0, g_only.size(), g_only) == 0; }

std::vector<float> rand_vec(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  portrait::Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = lo + static_cast<float>(r.uniform()) * (hi - lo);
  return v;
}

// Device arrays are the kernels' own DeviceBuffer (freed at scope exit, stream-ordered).
template <typename T>
pk::DeviceBuffer<T> to_dev(const std::vector<T>& h) {
  return pk::DeviceBuffer<T>(h);
}
template <typename T>
pk::DeviceBuffer<T> dev_alloc(size_t n) {
  return pk::DeviceBuffer<T>(n);
}
template <typename T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

double median_ms(int reps, const std::function<void()>& fn) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  fn();  // warm-up (also pays cudaFuncSetAttribute / pool growth)
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(a));
    fn();
    CUDA_CHECK(cudaEventRecord(b));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0.f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const std::string& key, double ms, double bytes, double flops, double floor) {
  const double sec = ms * 1e-3;
  std::printf("%-52s %9.3f ms %8.1f GB/s (%5.1f%% HBM) %8.2f TFLOP/s (%5.1f%% of %.0f)\n",
              key.c_str(), ms, bytes / sec / 1e9, 100 * bytes / sec / kFloorBytes,
              flops / sec / 1e12, 100 * flops / sec / floor, floor / 1e12);
  std::printf("RESULT\t%s\t%.6f\n", key.c_str(), ms);
  std::fflush(stdout);
}

bool check(bool ok, const char* what) {
  std::printf("check %-40s %s\n", what, ok ? "OK" : "FAILED");
  return ok;
}

bool check_topk(pk::Metric m, pk::MathMode math) {
  const int64_t q = 100, n = 3001;
  const int d = 64, k = 50;
  auto qs = rand_vec(q * d, 1), db = rand_vec(n * d, 2);
  std::vector<float> cs(q * k);
  std::vector<int64_t> ci(q * k);
  const pk::TopKParams p{.k = k, .metric = m, .math = math};
  pk::topk_cpu(qs.data(), q, db.data(), n, d, p, cs.data(), ci.data());
  const auto dq_buf = to_dev(qs);
  float* dq = dq_buf.get();
  const auto ddb_buf = to_dev(db);
  float* ddb = ddb_buf.get();
  const auto ds_buf = dev_alloc<float>(q * k);
  float* ds = ds_buf.get();
  const auto di_buf = dev_alloc<int64_t>(q * k);
  int64_t* di = di_buf.get();
  pk::topk_cuda(dq, q, ddb, n, d, p, ds, di, nullptr);
  const auto gs = to_host(ds, q * k);
  double worst = 0;  // rank-wise score gap relative to max(1, |score|)
  for (size_t i = 0; i < gs.size(); ++i)
    worst = std::max(worst, std::fabs(double(gs[i]) - cs[i]) / std::max(1.0, std::fabs(double(cs[i]))));
  // fp32-grade modes: ~1e-6. TF32 / BF16 scores carry ~2u * sum|q x| (u = 2^-11 / 2^-9):
  // at d = 64 typically 1e-3 / 5e-3 of the score.
  const bool approx = math == pk::MathMode::kTf32 || math == pk::MathMode::kBf16;
  std::printf("      topk %s %s: worst relative rank-wise score gap %.2e\n", pk::metric_name(m),
              pk::math_mode_name(math), worst);
  return check(worst < (approx ? 0.02 : 1e-4), (std::string("topk ") + pk::metric_name(m) + " " +
                                                pk::math_mode_name(math))
                                                   .c_str());
}

bool check_kmeans_assign(pk::MathMode math) {
  const int64_t n = 4097;
  const int d = 64, k = 300;
  auto x = rand_vec(n * d, 3), c = rand_vec(static_cast<size_t>(k) * d, 4);
  std::vector<int32_t> ca(n);
  std::vector<float> cd(n);
  pk::kmeans_assign_cpu(x.data(), n, d, c.data(), k, pk::Metric::kL2, 0, ca.data(), cd.data());
  const auto dx_buf = to_dev(x);
  float* dx = dx_buf.get();
  const auto dc_buf = to_dev(c);
  float* dc = dc_buf.get();
  const auto da_buf = dev_alloc<int32_t>(n);
  int32_t* da = da_buf.get();
  const auto dd_buf = dev_alloc<float>(n);
  float* dd = dd_buf.get();
  pk::kmeans_assign_cuda(dx, n, d, dc, k, pk::Metric::kL2, da, dd, nullptr, math);
  const auto ga = to_host(da, n);
  const auto gd = to_host(dd, n);
  int64_t same = 0;
  double worst = 0;  // how much farther the GPU's winner is than the CPU's
  for (int64_t i = 0; i < n; ++i) {
    same += ga[i] == ca[i];
    worst = std::max(worst, double(gd[i]) - cd[i]);
  }
  const bool approx = math == pk::MathMode::kTf32 || math == pk::MathMode::kBf16;
  std::printf("      kmeans assign %s: %.2f%% same winner as CPU, worst extra distance %.2e\n",
              pk::math_mode_name(math), 100.0 * same / n, worst);
  return check(worst < (approx ? 0.5 : 1e-3) && same >= (approx ? n * 9 / 10 : n * 99 / 100),
               (std::string("kmeans assign l2 ") + pk::math_mode_name(math)).c_str());
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = pk::float_to_bf16(v[i]);
  return b;
}

constexpr pk::MathMode kModes[] = {pk::MathMode::kSimt, pk::MathMode::kTf32x3,
                                   pk::MathMode::kTf32, pk::MathMode::kBf16};

}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  double scale = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--scale")) scale = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--only")) g_only = argv[i + 1];
  }
  if (portrait::cuda_device_count() == 0) {
    std::printf("no CUDA device (runtime %s, driver %s): nothing to benchmark\n",
                portrait::cuda_runtime_version().c_str(), portrait::cuda_driver_version().c_str());
    return 0;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, runtime %s\n", prop.name, prop.multiProcessorCount,
              portrait::cuda_runtime_version().c_str());

  bool ok = true;
  for (auto math : kModes) {
    for (auto m : {pk::Metric::kInnerProduct, pk::Metric::kCosine, pk::Metric::kL2})
      ok = check_topk(m, math) && ok;
    ok = check_kmeans_assign(math) && ok;
  }
  if (!ok) {
    std::printf("correctness checks failed: not timing\n");
    return 1;
  }
  const int d = 128;

  // l2_normalize: memory bound.
  if (wanted("l2_normalize")) {
    const int64_t n = static_cast<int64_t>(4'000'000 * scale);
    const auto x_buf = to_dev(rand_vec(n * d, 3));
    float* x = x_buf.get();
    const auto y_buf = dev_alloc<float>(n * d);
    float* y = y_buf.get();
    const double ms = median_ms(reps, [&] { pk::l2_normalize_cuda(x, y, n, d, nullptr); });
    report("l2_normalize/n=" + std::to_string(n) + "/d=128", ms, 2.0 * n * d * 4, 3.0 * n * d,
           67e12);
  }

  // top-k (inner product): compute bound at these sizes. fp32 input in every math mode, then
  // bf16 input (half the bytes; products exact in BF16 MMAs).
  {
    const int64_t q = 4096, n = static_cast<int64_t>(1'000'000 * scale);
    const auto qh = rand_vec(q * d, 4), xh = rand_vec(n * d, 5);
    const auto dq_buf = to_dev(qh);
    float* dq = dq_buf.get();
    const auto ddb_buf = to_dev(xh);
    float* ddb = ddb_buf.get();
    const auto dqb_buf = to_dev(to_bf16(qh));
    uint16_t* dqb = dqb_buf.get();
    const auto ddbb_buf = to_dev(to_bf16(xh));
    uint16_t* ddbb = ddbb_buf.get();
    const std::string shape = "/q=4096/n=" + std::to_string(n) + "/d=128";
    for (int k : {10, 100, 1024}) {
      const auto ds_buf = dev_alloc<float>(q * k);
      float* ds = ds_buf.get();
      const auto di_buf = dev_alloc<int64_t>(q * k);
      int64_t* di = di_buf.get();
      for (auto math : kModes) {
        const std::string key = "topk_ip" + shape + "/k=" + std::to_string(k) + "/fp32/" +
                                pk::math_mode_name(math);
        if (!wanted(key)) continue;
        const pk::TopKParams p{.k = k, .math = math};
        const double ms =
            median_ms(reps, [&] { pk::topk_cuda(dq, q, ddb, n, d, p, ds, di, nullptr); });
        report(key, ms, 4.0 * n * d, 2.0 * q * n * d, flop_floor(math));
      }
      for (auto math : {pk::MathMode::kBf16, pk::MathMode::kTf32}) {
        const std::string key = "topk_ip" + shape + "/k=" + std::to_string(k) + "/bf16in/" +
                                pk::math_mode_name(math);
        if (!wanted(key)) continue;
        const pk::TopKParams p{.k = k, .math = math};
        const double ms =
            median_ms(reps, [&] { pk::topk_cuda(dqb, q, ddbb, n, d, p, ds, di, nullptr); });
        report(key, ms, 2.0 * n * d, 2.0 * q * n * d, flop_floor(math));
      }
    }
    // Host-streamed database (pageable source, staged through pinned double buffers; the
    // copies overlap the search). Compare with the device-resident time of the same key.
    {
      const int k = 100;
      const std::string key = "topk_ip_streaming" + shape + "/k=100/fp32/auto";
      if (wanted(key)) {
        std::vector<float> s(q * k);
        std::vector<int64_t> ids(q * k);
        const pk::TopKParams p{.k = k};
        const double ms = median_ms(std::max(1, reps / 4), [&] {
          pk::topk_cuda_streaming(qh.data(), q, xh.data(), n, d, p, s.data(), ids.data(),
                                  nullptr, n / 8 + 1);
        });
        report(key, ms, 4.0 * n * d, 2.0 * q * n * d, flop_floor(pk::MathMode::kTf32x3));
      }
    }
  }

  // heads
  if (wanted("heads")) {
    const int64_t n = static_cast<int64_t>(4'000'000 * scale);
    const int h = 256, c = 8, m = 1000;
    const auto x_buf = to_dev(rand_vec(n * d, 6));
    float* x = x_buf.get();
    const auto w1_buf = to_dev(rand_vec(h * d, 7, -0.1f, 0.1f));
    float* w1 = w1_buf.get();
    const auto b1_buf = to_dev(rand_vec(h, 8, -0.1f, 0.1f));
    float* b1 = b1_buf.get();
    const auto w2_buf = to_dev(rand_vec(c * h, 9, -0.1f, 0.1f));
    float* w2 = w2_buf.get();
    const auto b2_buf = to_dev(rand_vec(c, 10, -0.1f, 0.1f));
    float* b2 = b2_buf.get();
    const pk::HeadsWeights w{w1, b1, w2, b2, d, h, c};
    const auto probs_buf = dev_alloc<float>(n * c);
    float* probs = probs_buf.get();
    const auto tp_buf = dev_alloc<float>(c * m);
    float* tp = tp_buf.get();
    const auto ti_buf = dev_alloc<int64_t>(c * m);
    int64_t* ti = ti_buf.get();
    const double flops = 2.0 * n * (double(d) * h + double(h) * c);
    double ms = median_ms(reps, [&] { pk::heads_probs_cuda(x, n, w, {}, probs, nullptr); });
    report("heads_probs/n=" + std::to_string(n) + "/d=128/h=256/C=8", ms,
           4.0 * n * d + 4.0 * n * c, flops, 67e12);
    ms = median_ms(reps, [&] { pk::heads_topm_cuda(x, n, w, {}, m, tp, ti, nullptr); });
    report("heads_top1000/n=" + std::to_string(n) + "/d=128/h=256/C=8", ms, 4.0 * n * d, flops,
           67e12);
  }

  // k-means: the fused assignment step alone in every math mode, then whole Lloyd
  // iterations (assign + exact fixed-point update + host loop; initial centroids given, so
  // no k-means++) from device memory and streamed from the host.
  {
    const int64_t n = static_cast<int64_t>(4'000'000 * scale);
    const int k = 1024;
    const auto xh = rand_vec(n * d, 11);
    const auto ch = rand_vec(static_cast<size_t>(k) * d, 12);
    const auto x_buf = to_dev(xh);
    float* x = x_buf.get();
    const auto xb_buf = to_dev(to_bf16(xh));
    uint16_t* xb = xb_buf.get();
    const auto cen_buf = to_dev(ch);
    float* cen = cen_buf.get();
    const auto a_buf = dev_alloc<int32_t>(n);
    int32_t* a = a_buf.get();
    const auto dist_buf = dev_alloc<float>(n);
    float* dist = dist_buf.get();
    const std::string shape = "/n=" + std::to_string(n) + "/d=128/K=1024";
    const double flops = 2.0 * n * k * d;
    for (auto math : kModes) {
      const std::string key = "kmeans_assign_l2" + shape + "/fp32/" + pk::math_mode_name(math);
      if (!wanted(key)) continue;
      const double ms = median_ms(reps, [&] {
        pk::kmeans_assign_cuda(x, n, d, cen, k, pk::Metric::kL2, a, dist, nullptr, math);
      });
      report(key, ms, 4.0 * n * d, flops, flop_floor(math));
    }
    for (auto math : {pk::MathMode::kBf16, pk::MathMode::kTf32}) {
      const std::string key = "kmeans_assign_l2" + shape + "/bf16in/" + pk::math_mode_name(math);
      if (!wanted(key)) continue;
      const double ms = median_ms(reps, [&] {
        pk::kmeans_assign_cuda(xb, n, d, cen, k, pk::Metric::kL2, a, dist, nullptr, math);
      });
      report(key, ms, 2.0 * n * d, flops, flop_floor(math));
    }
    constexpr int kIters = 5;  // updates; kIters + 1 assignment passes
    auto per_iter = [&](const char* kind, const std::string& tag, pk::MathMode math,
                        const std::function<pk::KMeansResult(const pk::KMeansParams&)>& run) {
      const std::string key = std::string("kmeans_iter_l2") + kind + shape + "/" + tag + "/" +
                              pk::math_mode_name(math);
      if (!wanted(key)) return;
      const pk::KMeansParams p{.k = k, .max_iter = kIters, .tol = 0.0,
                               .initial_centroids = ch.data(), .math = math};
      int passes = kIters + 1;  // tol = 0 may still stop early (no inertia decrease)
      const double ms =
          median_ms(std::max(1, reps / 4), [&] { passes = run(p).iterations + 1; });
      report(key, ms / passes, (tag == "bf16in" ? 2.0 : 4.0) * n * d, flops, flop_floor(math));
    };
    for (auto math : {pk::MathMode::kTf32, pk::MathMode::kBf16, pk::MathMode::kSimt}) {
      per_iter("", "fp32", math, [&](const pk::KMeansParams& p) {
        return pk::kmeans_cuda(x, n, d, p, nullptr);
      });
    }
    per_iter("", "bf16in", pk::MathMode::kBf16, [&](const pk::KMeansParams& p) {
      return pk::kmeans_cuda(reinterpret_cast<const pk::bf16_bits*>(xb), n, d, p, nullptr);
    });
    per_iter("_streaming", "fp32", pk::MathMode::kTf32, [&](const pk::KMeansParams& p) {
      pk::KMeansParams q = p;
      q.chunk_rows = n / 8 + 1;
      return pk::kmeans_cuda_streaming(xh.data(), n, d, q, nullptr);
    });
  }
  return 0;
}
