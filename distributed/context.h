// The process group of a torchrun job, built from the environment (env.h):
//   - a c10d TCPStore (rank 0 hosts it unless torchrun's agent does:
//     TORCHELASTIC_USE_AGENT_STORE=True), wrapped in a per-attempt PrefixStore;
//   - a collective backend: NCCL on CUDA (device = LOCAL_RANK), Gloo on CPU. The torch wheel
//     has Gloo built in but ships no gloo headers; Debian's libgloo-dev provides them (only
//     torch's factory functions touch gloo types, and the tests exercise them for real).
// At world size 1 there is no store and no backend: collectives are no-ops, barriers return.
// Store-based barriers are used around long I/O so no NCCL watchdog times out meanwhile.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "distributed/env.h"

namespace portrait::dist {

struct DistParams {
  /// auto (nccl on CUDA, gloo on CPU) | gloo | nccl | none (store only: barriers and
  /// broadcast_string work, tensor collectives do not)
  std::string backend = "auto";
  std::chrono::milliseconds timeout{30 * 60 * 1000};  ///< collectives and store waits
};

class DistContext {
 public:
  /// Connects according to `env` (a no-op context at world size 1). `use_cuda` selects NCCL
  /// under backend=auto.
  static std::shared_ptr<DistContext> create(const DistEnv& env, const DistParams& p, bool use_cuda);
  /// For tests and embedding in other launchers: an existing store (already prefixed).
  static std::shared_ptr<DistContext> create_with_store(c10::intrusive_ptr<c10d::Store> store, int rank,
                                                        int world, const DistParams& p, bool use_cuda,
                                                        int local_rank = 0);
  ~DistContext();

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  bool distributed() const { return world_ > 1; }
  std::string backend_name() const { return backend_name_; }
  c10d::Store* store() const { return store_.get(); }
  /// The (attempt-prefixed) store, to build further process groups on (own prefix each).
  c10::intrusive_ptr<c10d::Store> store_ptr() const { return store_; }

  /// Every rank arrives before any leaves. Goes through the store (safe around long I/O).
  /// `name` must be the same on every rank; repeated names are fine (a counter is appended).
  void barrier(const std::string& name);
  /// Rank 0's `value` on every rank (e.g. the run directory it picked).
  std::string broadcast_string(const std::string& name, const std::string& value);
  /// Rank 0's `value` from the FIRST attempt of this torchrun job, on every rank and in every
  /// later attempt (after --max-restarts restarts), so e.g. a restarted job finds the run
  /// directory holding its checkpoints. Needs a store that outlives attempts (torchrun's
  /// agent store, TORCHELASTIC_USE_AGENT_STORE=True); otherwise it is broadcast_string.
  std::string first_attempt_string(const std::string& name, const std::string& value);

  /// In-place sum over ranks (same shapes and order on every rank).
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  /// Concatenation over ranks along dim 0: [B, ...] -> [world * B, ...] (same B everywhere).
  at::Tensor all_gather(const at::Tensor& t);
  /// Rank `root`'s tensors copied into every rank's (in place).
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  /// The raw backend for advanced use (bucketed reducers); null at world size 1.
  c10::intrusive_ptr<c10d::Backend> backend() const { return backend_; }
  void shutdown();

 private:
  DistContext() = default;
  int rank_ = 0, world_ = 1;
  std::string backend_name_ = "none";
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Store> job_store_;  ///< un-prefixed agent store (outlives attempts) or null
  std::string run_id_;
  c10::intrusive_ptr<c10d::Backend> backend_;
  std::map<std::string, int> barrier_seq_;
  std::chrono::milliseconds timeout_{0};
  bool shut_ = false;
};

/// All-gather whose backward gives each rank the gradient of its own slice, summed over every
/// rank's loss (OpenCLIP's gather-with-grad): contrastive losses then see the global batch.
/// local [B, D] -> [world * B, D]; the local rows sit at [rank * B, (rank + 1) * B).
at::Tensor all_gather_with_grad(const std::shared_ptr<DistContext>& ctx, const at::Tensor& local);

}  // namespace portrait::dist
