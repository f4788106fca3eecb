// portrait_bench_kernels [--reps N] [--scale S]
// For every kernel: a correctness check against the CPU twin (small sizes), then timing of
// a production-sized call (median of N cudaEvent-timed runs after one warm-up), reported as
// GB/s and TFLOP/s and as a fraction of the H100 floors (3.0 TB/s HBM, 400 TFLOP/s tf32,
// 800 TFLOP/s bf16). The kernels use fp32 SIMT math today, so the tf32 floor is an upper
// bound they are not expected to approach yet.
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
#include "kernels/heads.cuh"
#include "kernels/kmeans.cuh"
#include "kernels/l2_normalize.cuh"
#include "kernels/rng.h"
#include "kernels/topk.cuh"

namespace pk = portrait::kernels;

namespace {

constexpr double kFloorBytes = 3.0e12, kFloorTf32 = 400e12;

std::vector<float> rand_vec(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  pk::Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = lo + static_cast<float>(r.uniform()) * (hi - lo);
  return v;
}

template <typename T>
T* to_dev(const std::vector<T>& h) {
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), h.size() * sizeof(T)));
  CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}
template <typename T>
T* dev_alloc(size_t n) {
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)));
  return p;
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

void report(const char* name, const std::string& shape, double ms, double bytes, double flops) {
  const double s = ms * 1e-3;
  std::printf("%-22s %-38s %9.3f ms %8.1f GB/s (%5.1f%% of 3.0 TB/s) %8.2f TFLOP/s (%5.2f%% of 400 tf32)\n",
              name, shape.c_str(), ms, bytes / s / 1e9, 100 * bytes / s / kFloorBytes,
              flops / s / 1e12, 100 * flops / s / kFloorTf32);
}

bool check(bool ok, const char* what) {
  std::printf("check %-40s %s\n", what, ok ? "OK" : "FAILED");
  return ok;
}

bool check_topk(pk::Metric m) {
  const int64_t q = 100, n = 3001;
  const int d = 64, k = 50;
  auto qs = rand_vec(q * d, 1), db = rand_vec(n * d, 2);
  std::vector<float> cs(q * k);
  std::vector<int64_t> ci(q * k);
  const pk::TopKParams p{.k = k, .metric = m};
  pk::topk_cpu(qs.data(), q, db.data(), n, d, p, cs.data(), ci.data());
  float* dq = to_dev(qs);
  float* ddb = to_dev(db);
  float* ds = dev_alloc<float>(q * k);
  int64_t* di = dev_alloc<int64_t>(q * k);
  pk::topk_cuda(dq, q, ddb, n, d, p, ds, di, nullptr);
  const auto gs = to_host(ds, q * k);
  double worst = 0;
  for (size_t i = 0; i < gs.size(); ++i) worst = std::max(worst, double(std::fabs(gs[i] - cs[i])));
  cudaFree(dq);
  cudaFree(ddb);
  cudaFree(ds);
  cudaFree(di);
  return check(worst < 1e-3, (std::string("topk ") + pk::metric_name(m)).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  double scale = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--scale")) scale = std::atof(argv[i + 1]);
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
  for (auto m : {pk::Metric::kInnerProduct, pk::Metric::kCosine, pk::Metric::kL2})
    ok = check_topk(m) && ok;
  if (!ok) {
    std::printf("correctness checks failed: not timing\n");
    return 1;
  }

  // l2_normalize: memory bound.
  {
    const int64_t n = static_cast<int64_t>(4'000'000 * scale);
    const int d = 128;
    float* x = to_dev(rand_vec(n * d, 3));
    float* y = dev_alloc<float>(n * d);
    const double ms = median_ms(reps, [&] { pk::l2_normalize_cuda(x, y, n, d, nullptr); });
    report("l2_normalize", "n=" + std::to_string(n) + " d=128", ms, 2.0 * n * d * 4, 3.0 * n * d);
    cudaFree(x);
    cudaFree(y);
  }
  // top-k: compute bound at these sizes.
  for (int k : {10, 100, 1024}) {
    const int64_t q = 4096, n = static_cast<int64_t>(1'000'000 * scale);
    const int d = 128;
    float* dq = to_dev(rand_vec(q * d, 4));
    float* ddb = to_dev(rand_vec(n * d, 5));
    float* ds = dev_alloc<float>(q * k);
    int64_t* di = dev_alloc<int64_t>(q * k);
    const pk::TopKParams p{.k = k};
    const double ms = median_ms(reps, [&] { pk::topk_cuda(dq, q, ddb, n, d, p, ds, di, nullptr); });
    report("topk ip", "q=4096 n=" + std::to_string(n) + " d=128 k=" + std::to_string(k), ms,
           4.0 * n * d, 2.0 * q * n * d);
    cudaFree(dq);
    cudaFree(ddb);
    cudaFree(ds);
    cudaFree(di);
  }
  // heads
  {
    const int64_t n = static_cast<int64_t>(4'000'000 * scale);
    const int d = 128, h = 256, c = 8, m = 1000;
    float* x = to_dev(rand_vec(n * d, 6));
    float* w1 = to_dev(rand_vec(h * d, 7, -0.1f, 0.1f));
    float* b1 = to_dev(rand_vec(h, 8, -0.1f, 0.1f));
    float* w2 = to_dev(rand_vec(c * h, 9, -0.1f, 0.1f));
    float* b2 = to_dev(rand_vec(c, 10, -0.1f, 0.1f));
    const pk::HeadsWeights w{w1, b1, w2, b2, d, h, c};
    float* probs = dev_alloc<float>(n * c);
    float* tp = dev_alloc<float>(c * m);
    int64_t* ti = dev_alloc<int64_t>(c * m);
    const double flops = 2.0 * n * (double(d) * h + double(h) * c);
    double ms = median_ms(reps, [&] { pk::heads_probs_cuda(x, n, w, {}, probs, nullptr); });
    report("heads probs", "n=" + std::to_string(n) + " d=128 h=256 C=8", ms,
           4.0 * n * d + 4.0 * n * c, flops);
    ms = median_ms(reps, [&] { pk::heads_topm_cuda(x, n, w, {}, m, tp, ti, nullptr); });
    report("heads top-1000", "n=" + std::to_string(n) + " d=128 h=256 C=8", ms, 4.0 * n * d, flops);
    for (void* p : {static_cast<void*>(x), static_cast<void*>(w1), static_cast<void*>(b1),
                    static_cast<void*>(w2), static_cast<void*>(b2), static_cast<void*>(probs),
                    static_cast<void*>(tp), static_cast<void*>(ti)})
      cudaFree(p);
  }
  // k-means assignment step
  {
    const int64_t n = static_cast<int64_t>(4'000'000 * scale);
    const int d = 128, k = 1024;
    float* x = to_dev(rand_vec(n * d, 11));
    float* cen = to_dev(rand_vec(static_cast<size_t>(k) * d, 12));
    int32_t* a = dev_alloc<int32_t>(n);
    float* dist = dev_alloc<float>(n);
    const double ms = median_ms(reps, [&] {
      pk::kmeans_assign_cuda(x, n, d, cen, k, pk::Metric::kL2, a, dist, nullptr);
    });
    report("kmeans assign l2", "n=" + std::to_string(n) + " d=128 K=1024", ms, 4.0 * n * d,
           2.0 * n * k * d);
    cudaFree(x);
    cudaFree(cen);
    cudaFree(a);
    cudaFree(dist);
  }
  return 0;
}
