// Torch-side pieces of the trainer exposed for tests (and for the inference engineer's
// offline evaluation driver). Not needed by the CLI: include train/trainer.h there.
#pragma once

#include <atomic>

#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/loader.h"
#include "models/batch.h"
#include "models/checkpoint.h"
#include "models/eval.h"
#include "train/trainer.h"

namespace portrait::train {

/// bf16 autocast on CUDA for its scope (fp32 master weights stay untouched); no-op when
/// `enabled` is false. Restores the previous autocast state on exit.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_, prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};

/// AdamW parameter groups: `decay` = weight matrices; `no_decay` = norms, biases, embedding
/// tables, CLS / pooling vectors and the temperature. Names are "encoder.x", "head.x",
/// "temperature.x".
struct ParamSplit {
  std::vector<std::string> decay_names, no_decay_names;
  std::vector<torch::Tensor> decay, no_decay;
};
ParamSplit split_param_groups(const ModelBundle& m);

/// Full-ranking evaluation of `m` on a split: model vs popularity (scores = `popularity`
/// [n_items] counts) and purchase heads vs the train base rate. max_users = 0: all users.
/// With `calibration`, the report also holds the calibrated heads' metrics; with
/// `purchase_samples`, the heads' raw probabilities and labels are copied there (to fit one).
EvalReport evaluate_split(ModelBundle& m, const std::string& shard_dir, const std::string& split,
                          int64_t max_users, int64_t batch_size, const std::vector<int64_t>& ks,
                          const std::vector<int64_t>& popularity, const std::vector<double>& base_rate,
                          const torch::Device& device, bool bf16, int64_t step = 0, bool exclude_seen = false,
                          const std::atomic<int>* stop = nullptr,
                          const calib::HeadCalibration* calibration = nullptr,
                          BinaryAccumulator* purchase_samples = nullptr);

/// Thrown by evaluate_split when `*stop` becomes non-zero (a stop signal) between batches.
struct EvalInterrupted {};

}  // namespace portrait::train
