// Where k-means, top-k and the heads run, decided in one place. Callers (infer/) pass HOST
// pointers and a Backend and never see CUDA: the CUDA branch is compiled in only when the
// build has CUDA, and chosen only when a device is present at run time (kernels/device.h).
// The CPU branch calls the CPU twins unchanged, so CPU results are bit-identical to calling
// kmeans_cpu / topk_cpu / heads_*_cpu directly.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "kernels/heads.h"
#include "kernels/kmeans.h"
#include "kernels/topk.h"

namespace portrait::kernels {

/// Where an op runs.
enum class Backend { kCpu, kCuda };

/// "cpu" or "cuda".
const char* backend_name(Backend b);

/// `device` is "auto" (CUDA when the build has it and a device is present, else CPU), "cpu"
/// or "cuda". Throws std::runtime_error "<key>=cuda but no CUDA device" when "cuda" cannot be
/// honoured and std::invalid_argument for any other value. `key` names the config entry.
Backend choose_backend(std::string_view device, std::string_view key);

/// k-means of HOST x [n, d]: kmeans_cpu, or kmeans_cuda_streaming (x streamed to the
/// current device in params.chunk_rows chunks, default stream). Contract in kmeans.h;
/// KMeansResult::distances is filled by the CPU backend only.
KMeansResult kmeans(const float* x, int64_t n, int d, const KMeansParams& params, Backend b);

/// Exact top-k with HOST pointers (queries [q, d], database [n, d], params' exclusion
/// lists; out_scores / out_ids [q, k]): topk_cpu, or topk_cuda_streaming. Contract in topk.h.
void topk(const float* queries, int64_t q, const float* database, int64_t n, int d,
          const TopKParams& params, float* out_scores, int64_t* out_ids, Backend b);

/// The purchase heads with their weights kept where they run (copied to the device once for
/// kCuda), applied to HOST blocks of users. Contract in heads.h.
class HeadsRunner {
 public:
  /// host_weights: HOST pointers, which must outlive the runner on the CPU backend.
  HeadsRunner(const HeadsWeights& host_weights, const HeadsParams& params, Backend b);
  ~HeadsRunner();
  HeadsRunner(const HeadsRunner&) = delete;
  HeadsRunner& operator=(const HeadsRunner&) = delete;

  /// x [n, d] -> probs [n, C] (host).
  void probs(const float* x, int64_t n, float* probs) const;
  /// Top-m users per head of x [n, d] -> out_probs / out_ids [C, m] (host).
  void topm(const float* x, int64_t n, int m, float* out_probs, int64_t* out_ids) const;

 private:
  struct DeviceWeights;  // device copies (CUDA builds only)
  HeadsWeights w_;
  HeadsParams p_;
  Backend b_;
  std::unique_ptr<DeviceWeights> dev_;
};

}  // namespace portrait::kernels
