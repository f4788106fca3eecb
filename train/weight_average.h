// train.ema: an exponential moving average of the trained parameters (Polyak averaging).
//
// Why: on small real logs (MovieLens-100K: 943 users) the last weights of a run depend on the
// last few hundred users it saw, so two seeds differ by more than most model changes do. The
// average of the weights along the end of the trajectory is a cheap ensemble: it is what the
// periodic evaluations score, what train.select_best keeps and what model/ exports, while the
// optimizer keeps stepping the raw weights (checkpoints hold both, so a resumed run averages
// exactly as an uninterrupted one).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

namespace portrait::train {

class WeightAverage {
 public:
  /// `params` are the trained tensors (the optimizer's), `names` theirs (same order, used to
  /// check a checkpoint's ema.pt against this model). decay = 0: off (every call is a no-op).
  WeightAverage(std::vector<torch::Tensor> params, std::vector<std::string> names, double decay);

  bool enabled() const { return decay_ > 0; }
  double decay() const { return decay_; }
  int64_t updates() const { return updates_; }

  /// After an optimizer step: avg = d * avg + (1 - d) * w with d = min(decay, (1 + n) / (10 + n))
  /// after n earlier updates, so the random init fades out within the first few dozen steps
  /// instead of weighing on a short run's average.
  void update();

  /// Exchanges the averaged and the trained values in place: the model then holds the average.
  /// A second call undoes it. Gradients and optimizer state are untouched.
  void swap();

  /// ema.pt: one tensor per parameter ("p.<name>") and the update count.
  void save(const std::filesystem::path& path) const;
  /// Reads ema.pt onto `device`; DataError naming the file when its names or shapes differ.
  void load(const std::filesystem::path& path, const torch::Device& device);
  /// Restarts the average at the current trained values (a checkpoint written without one).
  void reset();

 private:
  std::vector<torch::Tensor> params_, avg_;
  std::vector<std::string> names_;
  double decay_;
  int64_t updates_ = 0;
};

/// The model holds the averaged weights for this scope (no-op when the average is off).
class AveragedWeights {
 public:
  explicit AveragedWeights(WeightAverage& a) : a_(a) {
    if (a_.enabled()) a_.swap();
  }
  ~AveragedWeights() {
    if (a_.enabled()) a_.swap();
  }
  AveragedWeights(const AveragedWeights&) = delete;
  AveragedWeights& operator=(const AveragedWeights&) = delete;

 private:
  WeightAverage& a_;
};

}  // namespace portrait::train
