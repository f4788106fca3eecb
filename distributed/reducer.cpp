#include "distributed/reducer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>

namespace portrait::dist {

namespace {

// Fires after AccumulateGrad has written the parameter's gradient.
struct ReadyHook : torch::autograd::FunctionPostHook {
  ReadyHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }
  std::function<void()> fn_;
};

}  // namespace

GradReducer::GradReducer(std::shared_ptr<DistContext> ctx, std::vector<torch::Tensor> params, ReducerParams p)
    : ctx_(std::move(ctx)), params_(std::move(params)), p_(p) {
  bucket_of_.assign(params_.size(), -1);
  seen_.assign(params_.size(), false);
  // Reverse registration order approximates the order gradients become ready.
  Bucket cur;
  int64_t cur_bytes = 0;
  auto cap = [&] { return buckets_.empty() ? p_.first_bucket_bytes : p_.bucket_cap_bytes; };
  auto close = [&] {
    if (cur.params.empty()) return;
    buckets_.push_back(std::move(cur));
    cur = Bucket();
    cur_bytes = 0;
  };
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& t = params_[k];
    if (!t.requires_grad()) continue;
    if (!cur.params.empty() && (params_[cur.params.front()].scalar_type() != t.scalar_type() ||
                                params_[cur.params.front()].device() != t.device()))
      close();
    cur.params.push_back(k);
    cur_bytes += t.numel() * static_cast<int64_t>(t.element_size());
    if (cur_bytes >= cap()) close();
  }
  close();
  for (size_t b = 0; b < buckets_.size(); ++b) {
    auto& bk = buckets_[b];
    int64_t n = 0;
    for (size_t k : bk.params) {
      bk.offsets.push_back(n);
      n += params_[k].numel();
      bucket_of_[k] = static_cast<int>(b);
    }
    bk.flat = torch::zeros({n}, params_[bk.params.front()].options().requires_grad(false));
    bk.pending = static_cast<int>(bk.params.size());
  }
  if (!ctx_->distributed()) return;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (bucket_of_[k] < 0) continue;
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    hook_keys_.push_back(acc->add_post_hook(std::make_unique<ReadyHook>([this, k] { on_grad_ready(k); })));
    accumulators_.push_back(std::move(acc));
  }
}

GradReducer::~GradReducer() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void GradReducer::broadcast_parameters() {
  if (!ctx_->distributed()) return;
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> data;
  for (auto& p : params_) data.push_back(p.detach());
  ctx_->broadcast(data, 0);
}

void GradReducer::on_grad_ready(size_t k) {
  if (!sync_ || !ctx_->distributed()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (seen_[k]) return;
  seen_[k] = true;
  auto& b = buckets_[bucket_of_[k]];
  if (--b.pending == 0) b.ready = true;
  if (p_.overlap) launch_ready_locked(/*from_hook=*/true);
}

void GradReducer::launch(Bucket& b) {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < b.params.size(); ++i) {
    const auto& p = params_[b.params[i]];
    auto slice = b.flat.narrow(0, b.offsets[i], p.numel());
    if (p.grad().defined()) {
      slice.copy_(p.grad().reshape({-1}));
    } else {
      slice.zero_();  // unused on this rank: contributes nothing
    }
  }
  std::vector<at::Tensor> t{b.flat};
  b.work = ctx_->backend()->allreduce(t);
  b.launched = true;
}

void GradReducer::launch_ready_locked(bool from_hook) {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready) {
    launch(buckets_[next_launch_]);
    launch_order_.push_back(static_cast<int>(next_launch_));
    if (from_hook) ++overlapped_;
    ++next_launch_;
  }
}

void GradReducer::reset_step_locked() {
  for (auto& b : buckets_) {
    b.pending = static_cast<int>(b.params.size());
    b.ready = b.launched = false;
    b.work.reset();
  }
  std::fill(seen_.begin(), seen_.end(), false);
  next_launch_ = 0;
}

void GradReducer::finalize() {
  if (!ctx_->distributed() || !sync_) return;
  std::lock_guard<std::mutex> lock(mu_);
  // Unused parameters never fire their hooks: their buckets are completed here, in order.
  for (auto& b : buckets_) b.ready = true;
  launch_ready_locked(/*from_hook=*/false);
  auto t0 = std::chrono::steady_clock::now();
  const double inv_world = 1.0 / ctx_->world_size();
  torch::NoGradGuard ng;
  for (auto& b : buckets_) {
    b.work->wait();
    b.flat.mul_(inv_world);
    for (size_t i = 0; i < b.params.size(); ++i) {
      auto& p = params_[b.params[i]];
      auto slice = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(slice);
      } else {
        p.mutable_grad() = slice.clone();
      }
    }
  }
  wait_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<int> order = launch_order_;
  int overlapped = overlapped_;
  reset_step_locked();
  launch_order_.clear();
  overlapped_ = 0;
  last_order_ = order;
  last_overlapped_ = overlapped;
}

}  // namespace portrait::dist
