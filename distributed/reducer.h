// DDP-style gradient synchronisation for the C++ trainer.
//
// Parameters are grouped into flat buckets in reverse registration order (about the order
// backward produces their gradients); the first bucket is small so communication starts early.
// A post-hook on every parameter's gradient accumulator (it fires after the gradient is
// accumulated into p.grad()) marks the parameter ready; when a bucket is complete, it and
// every complete bucket after it are all-reduced asynchronously, strictly in bucket order
// (collectives must be issued in the same order on every rank, while hooks fire in a
// rank-dependent order). finalize(), called after backward(), launches what is left (buckets
// holding unused parameters, whose slices are zero), waits, averages and writes the results
// back into p.grad(). With sync off (gradient-accumulation micro-steps) hooks do nothing.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <vector>

#include "distributed/context.h"

namespace portrait::dist {

struct ReducerParams {
  int64_t bucket_cap_bytes = 25ll << 20;   ///< DDP's default bucket size
  int64_t first_bucket_bytes = 1ll << 20;  ///< a small first bucket starts communication early
  bool overlap = true;                     ///< false: everything is launched in finalize()
};

class GradReducer {
 public:
  GradReducer(std::shared_ptr<DistContext> ctx, std::vector<torch::Tensor> params, ReducerParams p = {});
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  /// Copies rank 0's parameter values to every rank (call once before training).
  void broadcast_parameters();
  /// false for gradient-accumulation micro-steps (no communication), true for the last.
  void set_sync(bool sync) { sync_ = sync; }
  bool sync() const { return sync_; }
  /// After backward(): completes the all-reduce and leaves averaged gradients in p.grad().
  void finalize();

  size_t num_buckets() const { return buckets_.size(); }
  /// Bucket launch order of the last synchronised step (for tests; always 0, 1, 2, ...).
  const std::vector<int>& last_launch_order() const { return last_order_; }
  /// Buckets launched from hooks (i.e. overlapping backward) in the last step.
  int last_overlapped() const { return last_overlapped_; }
  /// Seconds finalize() spent waiting for communication in the last step.
  double last_wait_seconds() const { return wait_s_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    int pending = 0;
    bool ready = false, launched = false;
    c10::intrusive_ptr<c10d::Work> work;
  };
  void on_grad_ready(size_t param_index);
  void launch_ready_locked(bool from_hook);
  void launch(Bucket& b);
  void reset_step_locked();

  std::shared_ptr<DistContext> ctx_;
  std::vector<torch::Tensor> params_;
  ReducerParams p_;
  std::vector<Bucket> buckets_;
  std::vector<int> bucket_of_;
  std::vector<bool> seen_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // keep hooks alive
  std::vector<uintptr_t> hook_keys_;
  std::mutex mu_;
  size_t next_launch_ = 0;
  bool sync_ = true;
  std::vector<int> launch_order_, last_order_;
  int overlapped_ = 0, last_overlapped_ = 0;
  double wait_s_ = 0;
};

}  // namespace portrait::dist
