#include "train/weight_average.h"

#include <algorithm>
#include <stdexcept>

#include "core/error.h"
#include "models/checkpoint.h"

namespace portrait::train {

WeightAverage::WeightAverage(std::vector<torch::Tensor> params, std::vector<std::string> names, double decay)
    : params_(std::move(params)), names_(std::move(names)), decay_(decay) {
  if (params_.size() != names_.size()) throw std::logic_error("WeightAverage: one name per parameter");
  if (!(decay_ >= 0 && decay_ < 1)) throw std::logic_error("WeightAverage: decay must lie in [0, 1)");
  reset();
}

void WeightAverage::reset() {
  updates_ = 0;
  avg_.clear();
  if (!enabled()) return;
  torch::NoGradGuard ng;
  for (const auto& p : params_) avg_.push_back(p.detach().clone());
}

void WeightAverage::update() {
  if (!enabled()) return;
  const double d = std::min(decay_, (1.0 + double(updates_)) / (10.0 + double(updates_)));
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) avg_[i].mul_(d).add_(params_[i].detach(), 1.0 - d);
  ++updates_;
}

void WeightAverage::swap() {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto w = params_[i].detach();
    auto tmp = w.clone();
    w.copy_(avg_[i]);
    avg_[i].copy_(tmp);
  }
}

void WeightAverage::save(const std::filesystem::path& path) const {
  torch::serialize::OutputArchive ar;
  for (size_t i = 0; i < avg_.size(); ++i) ar.write("p." + names_[i], avg_[i]);
  ar.write("updates", torch::tensor(updates_, torch::kLong));
  save_archive(ar, path);
}

void WeightAverage::load(const std::filesystem::path& path, const torch::Device& device) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path.string(), device);
  } catch (const c10::Error& e) {
    throw DataError(path.string() + ": not a weight-average archive (" +
                    std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
  std::vector<torch::Tensor> in(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!ar.try_read("p." + names_[i], in[i]) || !in[i].sizes().equals(params_[i].sizes()))
      throw DataError(path.string() + ": parameter '" + names_[i] +
                      "' is missing or has another shape than this model's (a checkpoint of another model)");
    in[i] = in[i].to(params_[i].dtype());
  }
  torch::Tensor n;
  if (!ar.try_read("updates", n)) throw DataError(path.string() + ": no update count");
  avg_ = std::move(in);
  updates_ = n.item<int64_t>();
}

}  // namespace portrait::train
