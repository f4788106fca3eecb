// Torch-free parts of the trainer: config reading, the learning-rate schedule and the
// checkpoint directory bookkeeping.
#include <algorithm>
#include <cmath>
#include <functional>

#include "core/config/section.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "train/trainer.h"

namespace portrait::train {

namespace fs = std::filesystem;

namespace {
void read_term(cfg::Section& loss, const std::string& name, LossTerm& t,
               const std::function<void(cfg::Section&)>& extra = {}) {
  cfg::Section s = loss.sub(name);
  s.read("enabled", t.enabled);
  s.read("weight", t.weight, 0.0, 1e6);
  if (extra) extra(s);
  s.finish();
}
}  // namespace

TrainParams train_params_from_config(const cfg::Node& root) {
  TrainParams p;
  {
    cfg::Section top(root, "");
    top.read("shards", p.shards);
    int64_t seed = int64_t(p.seed);
    top.read("seed", seed, int64_t{0});
    p.seed = uint64_t(seed);
    // No finish(): the root holds every other group (model, data, hydra, ...).
  }
  p.model = model_config_from(root, "model");

  cfg::Section s(root, "train");
  s.read("lr", p.lr, 0.0, 10.0);
  s.read("weight_decay", p.weight_decay, 0.0, 10.0);
  s.read("beta1", p.beta1, 0.0, 0.999999);
  s.read("beta2", p.beta2, 0.0, 0.999999999);
  s.read("eps", p.eps, 0.0, 1.0);
  s.read_enum("schedule", p.schedule, {"cosine", "linear", "constant"});
  s.read("warmup_steps", p.warmup_steps, int64_t{0});
  s.read("min_lr_ratio", p.min_lr_ratio, 0.0, 1.0);
  s.read("steps", p.steps, int64_t{1});
  s.read("epochs", p.epochs, 0.0, 1e6);
  s.read("batch_size", p.batch_size, int64_t{2}, int64_t{1} << 24);
  s.read("grad_accum", p.grad_accum, int64_t{1}, int64_t{4096});
  s.read("grad_clip", p.grad_clip, 0.0, 1e9);
  s.read("ema_decay", p.ema_decay, 0.0, 0.999999);
  s.read("max_targets", p.max_targets, int64_t{1}, int64_t{65536});
  {
    cfg::Section t = s.sub("temperature");
    t.read("init", p.init_temperature, 1e-4, 1.0);
    t.read("learn", p.learn_temperature);
    t.finish();
  }
  {
    cfg::Section l = s.sub("loss");
    read_term(l, "dense", p.loss.dense, [&](cfg::Section& d) {
      d.read("positions_per_user", p.loss.dense_positions_per_user, int64_t{0}, int64_t{65536});
      d.read("window", p.loss.dense_window, int64_t{1}, int64_t{65536});
      d.read("skip_same_item", p.loss.dense_skip_same_item);
      d.read("targets", p.loss.dense_targets);
    });
    read_term(l, "future", p.loss.future, [&](cfg::Section& d) {
      d.read("targets_per_user", p.loss.future_targets_per_user, int64_t{1}, int64_t{65536});
    });
    read_term(l, "purchase", p.loss.purchase);
    read_term(l, "clip", p.loss.clip);
    read_term(l, "masked_item", p.loss.masked_item, [&](cfg::Section& d) {
      d.read("mask_prob", p.loss.mask_prob, 0.0, 1.0);
    });
    l.read("uniform_negatives", p.loss.uniform_negatives, int64_t{0}, int64_t{1} << 20);
    l.read_enum("negatives", p.loss.negatives, {"auto", "sampled", "full"});
    l.read("logq", p.loss.logq);
    l.read("logq_strength", p.loss.logq_strength, 0.0, 10.0);
    l.finish();
  }
  s.read_enum("device", p.device, {"auto", "cpu", "cuda"});
  s.read_enum("precision", p.precision, {"auto", "fp32", "bf16"});
  s.read("threads", p.threads, int64_t{0}, int64_t{1024});
  s.read("loader_threads", p.loader_threads, int64_t{1}, int64_t{64});
  s.read("max_nonfinite", p.max_nonfinite, int64_t{0});
  s.read("peak_tflops", p.peak_tflops, 0.0, 1e6);
  s.read("eval_every", p.eval_every, int64_t{0});
  s.read("eval_max_users", p.eval_max_users, int64_t{0});
  s.read("eval_batch_size", p.eval_batch_size, int64_t{1}, int64_t{1} << 20);
  s.read("final_eval_splits", p.final_eval_splits);
  for (const auto& sp : p.final_eval_splits)
    if (sp != "train" && sp != "val" && sp != "test")
      throw ConfigError("config key 'train.final_eval_splits' holds '" + sp +
                        "'; allowed: train, val, test");
  s.read("eval_ks", p.eval_ks);
  s.read("eval_exclude_seen", p.eval_exclude_seen);
  s.read("select_best", p.select_best);
  s.read("patience", p.patience, int64_t{0});
  if ((p.select_best || p.patience > 0) && p.eval_every == 0)
    throw ConfigError("config key 'train.select_best' / 'train.patience' choose among the periodic val "
                      "evaluations, but train.eval_every is 0; set train.eval_every=N (e.g. 100)");
  if (p.patience > 0 && !p.select_best)
    throw ConfigError("config key 'train.patience' = " + std::to_string(p.patience) +
                      " stops on the val metric, which exports the best weights: set train.select_best=true too");
  for (int64_t k : p.eval_ks)
    if (k < 1) throw ConfigError("config key 'train.eval_ks' must hold positive cut-offs");
  {
    cfg::Section c = s.sub("calibration");
    c.read_enum("method", p.calibration.method, {"none", "platt", "isotonic", "temperature"});
    c.read_enum("scope", p.calibration.scope, {"per_head", "pooled"});
    c.read("min_class", p.calibration.min_class, int64_t{1});
    c.read_enum("split", p.calibration.split, {"train", "val", "test"});
    c.read("max_users", p.calibration.max_users, int64_t{0});
    c.finish();
  }
  s.read("ckpt_every", p.ckpt_every, int64_t{0});
  s.read("keep_last", p.keep_last, int64_t{1});
  s.read("resume", p.resume);
  s.read("stop_after", p.stop_after, int64_t{0});
  s.read("log_every", p.log_every, int64_t{1});
  s.read("log_samples", p.log_samples);
  s.read("progress", p.progress);
  {
    cfg::Section d = s.sub("dist");
    d.read_enum("backend", p.dist.backend, {"auto", "gloo", "nccl"});
    d.read("bucket_cap_mb", p.dist.bucket_cap_mb, 0.0, 1e6);
    d.read("first_bucket_mb", p.dist.first_bucket_mb, 0.0, 1e6);
    d.read("overlap", p.dist.overlap);
    d.read("timeout_s", p.dist.timeout_s, 1.0, 1e7);
    d.read("verify_sync", p.dist.verify_sync);
    d.finish();
  }
  s.finish();
  if (p.shards.empty()) throw ConfigError("config key 'shards' is empty: set shards=<portrait prep output dir>");
  p.config_yaml = cfg::to_yaml(root);
  return p;
}

double lr_at(const TrainParams& p, int64_t step) {
  const double peak = p.lr, floor = p.lr * p.min_lr_ratio;
  if (p.warmup_steps > 0 && step <= p.warmup_steps)
    return peak * double(std::max<int64_t>(step, 1)) / double(p.warmup_steps);
  if (p.schedule == "constant") return peak;
  const int64_t decay = std::max<int64_t>(p.steps - p.warmup_steps, 1);
  const double t = std::clamp(double(step - p.warmup_steps) / double(decay), 0.0, 1.0);
  if (p.schedule == "linear") return peak + (floor - peak) * t;
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * t));
}

std::string checkpoint_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof b, "step_%09lld", static_cast<long long>(step));
  return b;
}

std::vector<fs::path> list_checkpoints(const fs::path& run_dir) {
  std::vector<fs::path> out;
  fs::path dir = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) != 0 || !e.is_directory()) continue;
    if (!fs::exists(e.path() / "state.json")) continue;
    out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort numerically
  return out;
}

void prune_checkpoints(const fs::path& run_dir, int64_t keep) {
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(std::max<int64_t>(keep, 0)) < all.size(); ++i) fs::remove_all(all[i]);
  std::error_code ec;
  fs::path dir = run_dir / "checkpoints";
  if (!fs::is_directory(dir, ec)) return;
  for (const auto& e : fs::directory_iterator(dir))
    if (const std::string n = e.path().filename().string();
        n.rfind(".tmp.", 0) == 0 || (n.rfind(".step_", 0) == 0 && n.find(".tmp.") != std::string::npos))
      fs::remove_all(e.path(), ec);  // unfinished saves (older builds named them .tmp.step_*)
}

}  // namespace portrait::train
