// The training loop (see trainer.h). The only torch translation unit of portrait_train.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <limits>
#include <map>
#include <memory>

#include <signal.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>

#include <atomic>
#include <optional>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/progress.h"
#include "data/shard.h"
#include "kernels/device.h"
#include "models/memory_budget.h"
#include "tokenizer/tokenizer.h"
#include "train/internal.h"
#include "train/weight_average.h"
#include "distributed/context.h"
#include "distributed/env.h"
#include "distributed/reducer.h"
#include "train/sampling.h"

namespace portrait::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- small pieces ---------------------------------------------------------------------------

AutocastGuard::AutocastGuard(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
  prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
  at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
}

ParamSplit split_param_groups(const ModelBundle& m) {
  ParamSplit s;
  auto add = [&](const std::string& prefix, const torch::OrderedDict<std::string, torch::Tensor>& named) {
    for (const auto& kv : named) {
      const std::string name = prefix + kv.key();
      const torch::Tensor& t = kv.value();
      if (!t.requires_grad()) continue;
      const bool embedding = name.find("_emb.") != std::string::npos;
      const bool no_decay = t.dim() < 2 || embedding || prefix == "temperature.";
      (no_decay ? s.no_decay_names : s.decay_names).push_back(name);
      (no_decay ? s.no_decay : s.decay).push_back(t);
    }
  };
  add("encoder.", m.encoder->named_parameters(true));
  add("head.", m.head->named_parameters(true));
  add("temperature.", m.temperature->named_parameters(true));
  return s;
}

namespace {

torch::Tensor to_long(const std::vector<int64_t>& v, const torch::Device& d) {
  return torch::tensor(v, torch::kLong).to(d);
}

struct Context {
  const TrainParams* p = nullptr;
  torch::Device device{torch::kCPU};
  bool bf16 = false;
  int64_t n_items = 0, n_categories = 0;
  PositiveTypes positive;        ///< event-type ids that are positives (shards' target_event_types)
  bool dense_targets = false;    ///< the train split's targets continue the dense sequences
  torch::Tensor log_q;           ///< [n_items] log sampling probability of each positive
  torch::Tensor purchase_weight; ///< [C] 0 for padding / OOV categories
  double purchase_wsum = 0;      ///< purchase_weight.sum()
  /// Collectives of the loss (gathers of the global batch, loss values). Null or world 1:
  /// everything is local. The gradient all-reduce runs on its own process group, so the
  /// gradient buckets and the gathers' backward never interleave differently across ranks.
  std::shared_ptr<dist::DistContext> comm;
  int rank = 0, world = 1;
};

struct Losses {
  torch::Tensor total;
  std::vector<std::pair<std::string, torch::Tensor>> parts;  ///< unweighted
};

/// Per-rank counts of this micro-batch, gathered so every rank knows the global batch.
enum Count { kDense = 0, kFuture, kMasked, kRows, kNumCounts };
using Counts = std::vector<std::array<int64_t, kNumCounts>>;  ///< [world]

Counts gather_counts(const Context& cx, const std::array<int64_t, kNumCounts>& local) {
  Counts out(size_t(cx.world));
  if (cx.world <= 1) {
    out[0] = local;
    return out;
  }
  auto t = torch::tensor(std::vector<int64_t>(local.begin(), local.end()), torch::kLong).view({1, kNumCounts});
  auto all = cx.comm->all_gather(t.to(cx.device)).cpu();  // [world, kNumCounts]
  for (int r = 0; r < cx.world; ++r)
    for (int k = 0; k < kNumCounts; ++k) out[size_t(r)][size_t(k)] = all[r][k].item<int64_t>();
  return out;
}

int64_t global_count(const Counts& c, Count k) {
  int64_t s = 0;
  for (const auto& r : c) s += r[size_t(k)];
  return s;
}
int64_t offset_of(const Counts& c, Count k, int rank) {
  int64_t s = 0;
  for (int r = 0; r < rank; ++r) s += c[size_t(r)][size_t(k)];
  return s;
}

/// Every rank's rows concatenated in rank order: local [n_rank, ...] -> [sum n, ...].
/// Ranks may hold different row counts (known from `c`): rows are padded to the largest
/// count for the collective and the padding is dropped after. With `grad`, each rank's
/// backward receives the gradient of its own rows summed over every rank's loss.
torch::Tensor gather_rows(const Context& cx, const torch::Tensor& local, const Counts& c, Count k, bool grad) {
  if (cx.world <= 1) return local;
  int64_t most = 0;
  for (const auto& r : c) most = std::max(most, r[size_t(k)]);
  const int64_t n = local.size(0);
  if (most == 0) return local;
  torch::Tensor padded = local;
  if (n < most) {
    auto shape = local.sizes().vec();
    shape[0] = most - n;
    padded = torch::cat({local, torch::zeros(shape, local.options())}, 0);
  }
  auto all = grad ? dist::all_gather_with_grad(cx.comm, padded) : cx.comm->all_gather(padded);
  std::vector<int64_t> keep;
  for (int r = 0; r < cx.world; ++r)
    for (int64_t i = 0; i < c[size_t(r)][size_t(k)]; ++i) keep.push_back(r * most + i);
  return all.index_select(0, torch::tensor(keep, torch::kLong).to(local.device()));
}

Losses compute_losses(ModelBundle& m, const data::Batch& batch_in, const Context& cx, uint64_t seed) {
  const TrainParams& p = *cx.p;
  const LossParams& lp = p.loss;
  Pairs dense, future, masked;
  if (lp.dense.enabled)
    dense = sample_dense_pairs(batch_in, lp.dense_positions_per_user, lp.dense_window, cx.positive, seed,
                               lp.dense_skip_same_item, cx.dense_targets);
  if (lp.future.enabled) future = sample_future_pairs(batch_in, lp.future_targets_per_user, seed);
  data::Batch masked_batch;
  const data::Batch* batch = &batch_in;
  if (lp.masked_item.enabled) {
    masked_batch = batch_in;
    masked = apply_item_mask(masked_batch, lp.mask_prob, seed);
    batch = &masked_batch;
  }
  // Uniform negatives: the same draw on every rank (the seed does not involve the rank).
  Rng rng(seed);
  std::vector<int64_t> neg_ids_v(size_t(lp.uniform_negatives));
  const uint64_t span = uint64_t(std::max<int64_t>(cx.n_items - kFirstRealItem, 1));
  for (auto& id : neg_ids_v) id = kFirstRealItem + int64_t(rng.below(span));
  const Counts counts = gather_counts(
      cx, {int64_t(dense.size()), int64_t(future.size()), int64_t(masked.size()), batch->rows});
  // Losses are sums over this rank's rows divided by the global count, times world: the
  // gradient average over ranks is then exactly the gradient of the global-batch mean.
  const double W = double(cx.world);

  const auto& dev = cx.device;
  AutocastGuard ac(cx.bf16);
  UserBatch ub = to_user_batch(*batch, dev);
  EncoderOutput o = m.encoder->forward(ub);
  auto inv_t = m.temperature->forward();
  const int64_t B = batch->rows, L = batch->L, D = o.user.size(1);
  const double log_q_uniform = -std::log(double(span)) * lp.logq_strength;

  Losses out;
  out.total = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  auto add = [&](const std::string& name, const torch::Tensor& loss, double w) {
    out.parts.emplace_back(name, loss.detach());
    out.total = out.total + w * loss.to(torch::kFloat);
  };
  // Exact softmax when the whole catalogue is no larger than the sampled candidate set of the
  // objective (decided on global counts, so every rank takes the same path).
  auto full_softmax = [&](Count k) {
    if (lp.negatives == "full") return true;
    if (lp.negatives == "sampled") return false;
    return cx.n_items - kFirstRealItem <= global_count(counts, k) + lp.uniform_negatives;
  };
  torch::Tensor neg, neg_ids, all_items;
  if (((global_count(counts, kDense) > 1 && !full_softmax(kDense)) ||
       (global_count(counts, kFuture) > 1 && !full_softmax(kFuture))) &&
      lp.uniform_negatives > 0) {
    neg_ids = to_long(neg_ids_v, dev);
    neg = m.encoder->item_vectors(neg_ids);
  }
  auto retrieval = [&](const Pairs& pr, const torch::Tensor& q, Count k) {
    const int64_t n_global = global_count(counts, k);
    auto ids = to_long(pr.target, dev);
    std::vector<int64_t> owners(pr.owner.size());
    for (size_t i = 0; i < owners.size(); ++i) owners[i] = batch->user_index[size_t(pr.owner[i])];
    auto own = to_long(owners, dev);
    if (full_softmax(k)) {
      if (!all_items.defined()) all_items = m.encoder->all_item_vectors();
      return full_softmax_rows(q, ids, own, all_items, inv_t, kFirstRealItem).sum() * (W / double(n_global));
    }
    auto pos = m.encoder->item_vectors(ids);
    auto pos_all = gather_rows(cx, pos, counts, k, /*grad=*/true);
    auto id_own = gather_rows(cx, torch::stack({ids, own}, 1), counts, k, /*grad=*/false);
    auto ids_all = id_own.select(1, 0).contiguous(), own_all = id_own.select(1, 1).contiguous();
    torch::Tensor lq = lp.logq ? cx.log_q.index_select(0, ids_all) * lp.logq_strength : torch::Tensor();
    auto rows = sampled_softmax_rows(q, offset_of(counts, k, cx.rank), pos_all, ids_all, own_all, neg, neg_ids, lq,
                                     log_q_uniform, inv_t);
    return rows.sum() * (W / double(n_global));
  };
  if (global_count(counts, kDense) > 1) {
    auto q = o.states.reshape({B * L, D}).index_select(0, to_long(dense.position, dev));
    add("dense", retrieval(dense, q, kDense), lp.dense.weight);
  }
  if (global_count(counts, kFuture) > 1) {
    auto q = o.user.index_select(0, to_long(future.owner, dev));
    add("future", retrieval(future, q, kFuture), lp.future.weight);
  }
  const int64_t rows_global = global_count(counts, kRows);
  if (lp.purchase.enabled && cx.n_categories > 0 && rows_global > 0) {
    auto logits = m.head->forward(o.user);
    auto labels = torch::from_blob(const_cast<float*>(batch->purchase.data()), {B, batch->C}, torch::kFloat)
                      .to(dev, /*non_blocking=*/false, /*copy=*/true);
    auto w = cx.purchase_weight.view({1, -1}).expand({B, batch->C});
    // purchase_bce_loss is the weighted mean over this rank's entries; renormalise it to the
    // global number of weighted entries.
    const double local_w = double(B) * cx.purchase_wsum;
    const double global_w = double(rows_global) * cx.purchase_wsum;
    const double scale = global_w > 0 ? std::max(local_w, 1.0) * W / global_w : 0.0;
    add("purchase", purchase_bce_loss(logits, labels, w) * scale, lp.purchase.weight);
  }
  // On the model's text table, not on this batch's T: fit_batch pads to the batch's longest
  // row, so a rank whose rows have no text has T = 0 and must still join the gathers.
  if (lp.clip.enabled && m.cfg.n_text_tokens > 0) {
    auto valid = o.has_text & o.has_events;  // [B]
    auto valid_all = gather_rows(cx, valid.to(torch::kLong), counts, kRows, false);
    const int64_t n_valid = valid_all.sum().item<int64_t>();
    if (n_valid >= 2) {
      auto a_all = gather_rows(cx, o.behaviour, counts, kRows, true);
      auto b_all = gather_rows(cx, o.text, counts, kRows, true);
      auto s = clip_loss_rows_sum(o.behaviour, o.text, valid, a_all, b_all, valid_all,
                                  offset_of(counts, kRows, cx.rank), inv_t);
      add("clip", s * (0.5 * W / double(n_valid)), lp.clip.weight);
    }
  }
  const int64_t masked_global = global_count(counts, kMasked);
  if (lp.masked_item.enabled && masked_global > 0) {
    auto q = o.states.reshape({B * L, D}).index_select(0, to_long(masked.position, dev));
    auto mean = masked_item_loss(q, to_long(masked.target, dev), m.encoder->all_item_vectors(), inv_t);
    add("masked_item", mean * (double(masked.size()) * W / double(masked_global)), lp.masked_item.weight);
  }
  return out;
}

// ---- checkpoints ----------------------------------------------------------------------------

struct Position {
  int64_t epoch = 0, offset = 0;  ///< global samples consumed in `epoch`
};

/// train.select_best: the weights of the best periodic val evaluation so far (rank 0 only),
/// serialised in memory; written into every checkpoint as best.pt.
struct BestWeights {
  int64_t step = -1;        ///< -1 = none yet
  double value = -1;        ///< the val metric at `step`
  int64_t evals_since = 0;  ///< periodic evals since `step` without a better value
  std::string metric;       ///< e.g. "recall@10"
  std::string weights;      ///< a model.pt archive

  /// Records evaluation `value` of the current weights `m` at `step`; true when it is the best.
  bool offer(int64_t at, double v, const ModelBundle& m) {
    if (step >= 0 && !(v > value)) {
      ++evals_since;
      return false;
    }
    torch::serialize::OutputArchive ar;
    save_model_weights(m, ar);
    std::ostringstream os(std::ios::binary);
    ar.save_to(os);
    weights = std::move(os).str();
    step = at;
    value = v;
    evals_since = 0;
    return true;
  }
  void restore_into(ModelBundle& m, const torch::Device& device) const {
    std::istringstream is(weights, std::ios::binary);
    torch::serialize::InputArchive ar;
    ar.load_from(is, device);
    load_model_weights(m, ar);
  }
};

void save_rng(const fs::path& path) {
  torch::serialize::OutputArchive ar;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lk(gen.mutex());
    ar.write("cpu", gen.get_state());
  }
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < int64_t(torch::cuda::device_count()); ++i) {
      auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, c10::DeviceIndex(i)));
      std::lock_guard<std::mutex> lk(gen.mutex());
      ar.write("cuda" + std::to_string(i), gen.get_state());
    }
  }
  save_archive(ar, path);
}

void load_rng(const fs::path& path) {
  torch::serialize::InputArchive ar;
  ar.load_from(path.string());
  torch::Tensor t;
  ar.read("cpu", t);
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lk(gen.mutex());
    gen.set_state(t);
  }
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < int64_t(torch::cuda::device_count()); ++i) {
      torch::Tensor c;
      if (!ar.try_read("cuda" + std::to_string(i), c)) continue;
      auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, c10::DeviceIndex(i)));
      std::lock_guard<std::mutex> lk(gen.mutex());
      gen.set_state(c);
    }
  }
}

fs::path save_checkpoint(const fs::path& run_dir, int64_t step, const ModelBundle& m,
                         torch::optim::Optimizer& opt, const nlohmann::json& state,
                         const std::string& config_yaml, int64_t keep, const BestWeights& best,
                         const WeightAverage& ema) {
  const fs::path dir = run_dir / "checkpoints";
  fs::create_directories(dir);
  const fs::path final_dir = dir / checkpoint_name(step);
  // Built in a hidden temporary directory that is removed again if any write fails (a full
  // disk): a failed save leaves the previous checkpoints as they were and no half-written
  // copy that keeps the disk full.
  AtomicDir out(final_dir);
  const fs::path tmp = out.temp_path();
  {
    torch::serialize::OutputArchive ar;
    save_model_weights(m, ar);
    save_archive(ar, tmp / "model.pt");
  }
  {
    std::ostringstream os(std::ios::binary);
    torch::save(opt, os);
    write_file_atomic(tmp / "optimizer.pt", os.view());
  }
  save_rng(tmp / "rng.pt");
  write_file_atomic(tmp / "config.yaml", config_yaml);
  std::vector<std::string> files{"model.pt", "optimizer.pt", "rng.pt", "config.yaml"};
  nlohmann::json st = state;
  if (ema.enabled()) {  // train.ema_decay: the average continues exactly after a resume
    ema.save(tmp / "ema.pt");
    files.push_back("ema.pt");
    st["ema"] = {{"decay", ema.decay()}, {"updates", ema.updates()}};
  }
  if (best.step >= 0) {  // train.select_best: the best weights so far survive a crash too
    write_file_atomic(tmp / "best.pt", best.weights);
    files.push_back("best.pt");
    st["best"] = {{"step", best.step}, {"value", best.value}, {"evals_since", best.evals_since},
                  {"metric", best.metric}};
  }
  st["checksums"] = checksum_files(tmp, files);
  write_file_atomic(tmp / "state.json", st.dump(2) + "\n");  // last: marks completeness
  out.commit();
  prune_checkpoints(run_dir, keep);
  return final_dir;
}

/// state.json of a checkpoint whose payload matches its recorded checksums; throws DataError
/// naming the file otherwise (checkpoints written before checksums pass on state.json alone).
nlohmann::json verified_checkpoint_state(const fs::path& ckpt) {
  const fs::path sp = ckpt / "state.json";
  nlohmann::json st;
  try {
    st = nlohmann::json::parse(read_file(sp));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(sp.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!st.is_object() || !st.contains("step")) throw DataError(sp.string() + ": not a checkpoint state (no step)");
  if (st.contains("checksums")) verify_checksums(ckpt, st["checksums"], sp);
  return st;
}

/// The checkpoint a run continues from ("" = fresh), chosen on rank 0.
fs::path pick_resume_checkpoint(const TrainParams& p, const fs::path& run_dir) {
  const auto all = list_checkpoints(run_dir);
  if (p.resume.empty()) {
    // A fresh run here would overwrite some of the old run's checkpoints and leave others,
    // and a later resume=auto would continue whichever is newest: two runs mixed.
    if (!all.empty())
      throw ConfigError("run directory " + run_dir.string() + " already holds checkpoints of an earlier run (newest " +
                        all.back().string() + "). Continue it with train.resume=auto, or start the new run in "
                        "another directory (hydra.run.dir=...).");
    return {};
  }
  if (p.resume != "auto") {
    const fs::path c = p.resume;
    if (!fs::exists(c / "state.json"))
      throw ConfigError("train.resume=" + p.resume + " is not a checkpoint directory (no state.json)");
    verified_checkpoint_state(c);
    return c;
  }
  if (all.empty()) {
    PLOG_INFO("train.resume=auto: no checkpoint in {}, starting fresh", (run_dir / "checkpoints").string());
    return {};
  }
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      verified_checkpoint_state(*it);
      return *it;
    } catch (const DataError& e) {
      PLOG_WARN("train.resume=auto: skipping checkpoint {}: {}; trying the previous one", it->string(), e.what());
    }
  }
  throw DataError("train.resume=auto: none of the " + std::to_string(all.size()) + " checkpoints in " +
                  (run_dir / "checkpoints").string() +
                  " is intact (see the warnings above). Restore one, or start a fresh run in another directory.");
}

/// CUDA device = LOCAL_RANK (torchrun starts one process per GPU of a node).
torch::Device pick_device(const std::string& want, int local_rank) {
  if (want == "cpu") return torch::kCPU;
  const bool cuda = torch::cuda::is_available();
  if (want == "cuda" && !cuda)
    throw ConfigError("train.device=cuda but no CUDA device is available (use train.device=auto|cpu)");
  if (!cuda) return torch::kCPU;
  const int n = int(torch::cuda::device_count());
  if (local_rank >= n)
    throw ConfigError(fmt::format("LOCAL_RANK={} but only {} CUDA device(s) are visible: start at most {} "
                                  "processes per node (torchrun --nproc-per-node)",
                                  local_rank, n, n));
  return torch::Device(torch::kCUDA, c10::DeviceIndex(local_rank));
}

double finite_or_nan(double v) { return std::isfinite(v) ? v : std::numeric_limits<double>::quiet_NaN(); }

/// train.loss.dense.targets: the train split's targets may continue the training sequences
/// only when they end before the val split's inputs do, or training would see what val asks.
/// leave_last_out: the train target is the event before val's; temporal: [train cut-off,
/// + label window) must end by the val cut-off (true for prep's automatic cut-offs).
bool dense_targets_allowed(const std::string& shard_dir, int rank) {
  const data::ShardSplitReader r(data::list_shards(shard_dir).at(0), "train");
  auto s = r.str_attrs().find("protocol");
  if (s != r.str_attrs().end() && s->second == "leave_last_out") return true;
  const auto& ia = r.int_attrs();
  auto get = [&](const char* k) {
    auto it = ia.find(k);
    return it == ia.end() ? std::optional<int64_t>() : std::optional<int64_t>(it->second);
  };
  const auto train = get("train_cutoff_ms"), val = get("val_cutoff_ms"), window = get("label_window_ms");
  const bool ok = train && val && window && *train + *window <= *val;
  if (!ok && rank == 0)
    PLOG_WARN("train.loss.dense.targets is off for these shards: the train label window ends after the val "
              "cut-off (prep.train_cutoff / val_cutoff closer than prep.label_window_days), so its targets "
              "overlap what val evaluates");
  return ok;
}

}  // namespace

// ---- evaluation -----------------------------------------------------------------------------

EvalReport evaluate_split(ModelBundle& m, const std::string& shard_dir, const std::string& split,
                          int64_t max_users, int64_t batch_size, const std::vector<int64_t>& ks,
                          const std::vector<int64_t>& popularity, const std::vector<double>& base_rate,
                          const torch::Device& device, bool bf16, int64_t step, bool exclude_seen,
                          const std::atomic<int>* stop, const calib::HeadCalibration* calibration,
                          BinaryAccumulator* purchase_samples) {
  data::LoaderParams lp;
  lp.shard_dir = shard_dir;
  lp.split = split;
  lp.batch_size = int(batch_size);
  lp.shuffle = false;
  lp.threads = 1;
  lp.prefetch = 2;
  data::Loader loader(lp);
  const bool was_training = m.encoder->is_training();
  m.train(false);
  torch::NoGradGuard ng;
  RankingAccumulator model_acc(ks), pop_acc(ks);
  const int64_t C = m.cfg.n_targets;
  const bool has_purchase = C > 0 && loader.num_categories() == C;
  std::vector<int64_t> skip;
  for (int64_t c = 0; c < std::min<int64_t>(C, 2); ++c) skip.push_back(c);  // padding, OOV
  BinaryAccumulator pur(std::max<int64_t>(C, 1), skip), base(std::max<int64_t>(C, 1), skip);
  torch::Tensor items, pop, rate;
  {
    AutocastGuard ac(bf16);
    items = m.encoder->all_item_vectors().to(torch::kFloat);  // [V, D]
  }
  const int64_t V = items.size(0);
  pop = torch::zeros({V}, torch::kDouble);
  for (int64_t i = 0; i < std::min<int64_t>(V, int64_t(popularity.size())); ++i) pop[i] = double(popularity[size_t(i)]);
  if (has_purchase) {
    rate = torch::tensor(base_rate, torch::kDouble).to(torch::kFloat).clamp(1e-6, 1 - 1e-6).view({1, -1});
  }
  loader.start_epoch(0, 0);
  data::Batch raw;
  int64_t seen = 0;
  while ((max_users <= 0 || seen < max_users) && loader.next(raw)) {
    if (stop && stop->load() != 0) {
      m.train(was_training);
      throw EvalInterrupted{};
    }
    data::Batch b = fit_batch(raw, m.cfg);
    seen += b.rows;
    torch::Tensor user;
    {
      AutocastGuard ac(bf16);
      user = m.encoder->forward(to_user_batch(b, device)).user.to(torch::kFloat);
    }
    auto targets = torch::from_blob(b.target_item.data(), {b.rows, b.M}, torch::kInt);
    auto tmask = torch::from_blob(b.target_mask.data(), {b.rows, b.M}, torch::kFloat);
    // Seen = every input item the shards hold for the user (not only the model's window).
    torch::Tensor seen;
    if (exclude_seen && raw.rows * raw.L > 0)
      seen = torch::from_blob(raw.item.data(), {raw.rows, raw.L}, torch::kInt) *
             torch::from_blob(raw.input_mask.data(), {raw.rows, raw.L}, torch::kFloat).gt(0.5f).to(torch::kInt);
    model_acc.add(torch::matmul(user, items.t()), targets, tmask, seen);
    pop_acc.add(pop.view({1, V}).expand({b.rows, V}), targets, tmask, seen);
    if (has_purchase) {
      torch::Tensor logits;
      {
        AutocastGuard ac(bf16);
        logits = m.head->forward(user).to(torch::kFloat);
      }
      auto labels = torch::from_blob(b.purchase.data(), {b.rows, b.C}, torch::kFloat);
      pur.add(torch::sigmoid(logits), labels);
      base.add(rate.expand({b.rows, C}), labels);
    }
  }
  m.train(was_training);
  EvalReport r;
  r.split = split;
  r.split_protocol = loader.str_attr("protocol");
  r.exclude_seen = exclude_seen;
  r.step = step;
  r.model = model_acc.result();
  r.popularity = pop_acc.result();
  r.has_purchase = has_purchase;
  if (has_purchase) {
    r.purchase = pur.result();
    r.purchase_baseline = base.result();
    if (calibration && calibration->enabled()) {
      r.calibrated = true;
      r.calibration = calibration->method + " fitted on " + calibration->fitted_on;
      r.purchase_calibrated = pur.calibrated(*calibration).result();
    }
    if (purchase_samples) *purchase_samples = pur;
  }
  return r;
}

// ---- the loop -------------------------------------------------------------------------------

namespace {

// SIGTERM / SIGINT: finish the step, checkpoint, return. The handler only sets a flag; the
// ranks agree on it through the per-step loss all-reduce.
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

class StopSignalGuard {
 public:
  StopSignalGuard() {
    g_stop_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term_);
    sigaction(SIGINT, &sa, &old_int_);
  }
  ~StopSignalGuard() {
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
  }

 private:
  struct sigaction old_term_ {}, old_int_ {};
};

/// A flat fingerprint of the gradients (sum and sum of squares per parameter), compared
/// across ranks by train.dist.verify_sync.
torch::Tensor grad_fingerprint(const std::vector<torch::Tensor>& params) {
  std::vector<double> v;
  for (const auto& t : params) {
    if (!t.grad().defined()) {
      v.push_back(0);
      v.push_back(0);
      continue;
    }
    auto g = t.grad().to(torch::kDouble);
    v.push_back(g.sum().item<double>());
    v.push_back(g.square().sum().item<double>());
  }
  return torch::tensor(v, torch::kDouble);
}

}  // namespace

TrainSummary run_train(const TrainParams& params, const fs::path& run_dir, std::shared_ptr<dist::DistContext> job) {
  TrainParams p = params;  // train.epochs resolves p.steps once the data is known
  if (p.threads > 0) at::set_num_threads(int(p.threads));
  const bool distributed = job && job->distributed();
  const int world = distributed ? job->world_size() : 1, rank = distributed ? job->rank() : 0;
  const dist::DistEnv env = distributed ? dist::read_dist_env() : dist::DistEnv{};
  const int local_rank = env.local_rank;
  const torch::Device device = pick_device(p.device, local_rank);
  const bool bf16 = p.precision == "bf16" || (p.precision == "auto" && device.is_cuda());
  if (bf16 && !device.is_cuda())
    throw ConfigError("train.precision=bf16 needs CUDA (bf16 autocast is CUDA-only); use fp32 or auto on CPU");
  fs::create_directories(run_dir);

  // Process groups: one for the gradient buckets, one for the losses' collectives.
  std::shared_ptr<dist::DistContext> grad_pg, loss_pg;
  if (distributed) {
    dist::DistParams dp;
    dp.backend = p.dist.backend;
    dp.timeout = std::chrono::milliseconds(int64_t(p.dist.timeout_s * 1000));
    auto store = job->store_ptr();
    grad_pg = dist::DistContext::create_with_store(c10::make_intrusive<c10d::PrefixStore>("train/grad", store), rank,
                                                   world, dp, device.is_cuda(), local_rank);
    loss_pg = dist::DistContext::create_with_store(c10::make_intrusive<c10d::PrefixStore>("train/loss", store), rank,
                                                   world, dp, device.is_cuda(), local_rank);
    PLOG_INFO("train: rank {}/{} on {} ({} backend)", rank, world, device.str(), grad_pg->backend_name());
  }
  auto barrier = [&](const std::string& name) {
    if (loss_pg) loss_pg->barrier(name);
  };

  // Data.
  data::LoaderParams lp;
  lp.shard_dir = p.shards;
  lp.split = "train";
  lp.batch_size = int(p.batch_size);
  lp.max_targets = int(p.max_targets);
  lp.seed = p.seed;
  lp.threads = int(p.loader_threads);
  lp.rank = rank;
  lp.world = world;
  // Full global batches only (constant in-batch negatives), unless the data is smaller.
  lp.drop_last = true;
  auto loader_ptr = std::make_unique<data::Loader>(lp);
  if (loader_ptr->num_users() == 0) throw DataError("no training users in " + p.shards);
  if (loader_ptr->batches_per_epoch() == 0) {
    lp.drop_last = false;
    loader_ptr = std::make_unique<data::Loader>(lp);
  }
  data::Loader& loader = *loader_ptr;
  const int64_t G = p.batch_size * world;
  if (p.epochs > 0) {
    const double per_epoch = double(loader.batches_per_epoch()) / double(p.grad_accum);
    p.steps = std::max<int64_t>(1, int64_t(std::ceil(p.epochs * per_epoch - 1e-9)));
    if (rank == 0)
      PLOG_INFO("train.epochs={}: {} optimizer steps ({:.1f} per epoch of {} users)", p.epochs, p.steps, per_epoch,
                loader.num_users());
  }

  // Model config from the data.
  ModelConfig mc = p.model;
  mc.n_items = loader.num_items();
  mc.n_categories = loader.num_categories();
  mc.n_targets = loader.num_categories();
  mc.n_text_tokens = 0;
  const fs::path tok_path = fs::path(p.shards) / "tokenizer.model";
  if (loader.text_len() > 0 && mc.max_text_tokens > 0 && fs::exists(tok_path))
    mc.n_text_tokens = tok::Tokenizer::load(tok_path).vocab_size();
  mc.validate();
  {
    // Before anything of the model's size is allocated: an absurd size fails here with its key.
    const int64_t rows = std::min<int64_t>(p.batch_size, std::max<int64_t>(loader.num_users() / world, 1));
    const int64_t in_batch = rows * world * mc.max_events + p.loss.uniform_negatives;
    const bool full = p.loss.negatives == "full" || (p.loss.negatives == "auto" && mc.n_items <= in_batch);
    const int64_t avail = device.is_cuda() ? int64_t(cuda_free_memory_bytes(device.index())) : available_host_memory_bytes();
    check_memory_budget(estimate_train_memory(mc, rows, p.loss.uniform_negatives, full), avail,
                        device.is_cuda() ? device.str() : "this machine's memory");
  }

  TrainStats stats = compute_train_stats(p.shards, mc.n_items, mc.n_categories);
  if (mc.repeat_auto) {
    // The repeat channel scores a user's own history; without repeats in the data it has
    // nothing to learn and only adds noise to every other item's score.
    const double rate = stats.targets ? double(stats.repeat_targets) / double(stats.targets) : 0.0;
    const int64_t r = resolve_repeat_dim(mc, stats);
    if (rank == 0)
      PLOG_INFO("model.repeat_dim=auto: {:.1f}% of {} training targets repeat an item of the user's input -> "
                "repeat channel {} (R = {})",
                100 * rate, stats.targets, r > 0 ? "on" : "off", r);
    mc.repeat_dim = r;
    mc.repeat_auto = false;
    mc.validate();
  }

  torch::manual_seed(p.seed);
  ModelBundle m = ModelBundle::create(mc, p.init_temperature, p.learn_temperature);
  m.to(device);
  m.train(true);

  ParamSplit groups = split_param_groups(m);
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(p.lr)
                                                            .betas({p.beta1, p.beta2})
                                                            .eps(p.eps)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> pg;
  pg.emplace_back(groups.decay, opts(p.weight_decay));
  pg.emplace_back(groups.no_decay, opts(0.0));
  torch::optim::AdamW opt(std::move(pg), torch::optim::AdamWOptions(p.lr));
  std::vector<torch::Tensor> all_params = groups.decay;
  all_params.insert(all_params.end(), groups.no_decay.begin(), groups.no_decay.end());
  std::vector<std::string> all_names = groups.decay_names;
  all_names.insert(all_names.end(), groups.no_decay_names.begin(), groups.no_decay_names.end());
  WeightAverage ema(all_params, all_names, p.ema_decay);

  Context cx;
  cx.p = &p;
  cx.device = device;
  cx.bf16 = bf16;
  cx.n_items = mc.n_items;
  cx.n_categories = mc.n_categories;
  cx.positive = stats.positive;
  cx.dense_targets = p.loss.dense.enabled && p.loss.dense_targets && dense_targets_allowed(p.shards, rank);
  cx.comm = loss_pg;
  cx.rank = rank;
  cx.world = world;
  {
    auto counts = torch::tensor(stats.item_positive_counts, torch::kLong).to(torch::kDouble).clamp_min(1.0);
    cx.log_q = (counts / counts.sum()).log().to(torch::kFloat).to(device);
    auto w = torch::ones({std::max<int64_t>(mc.n_categories, 1)});
    for (int64_t c = 0; c < std::min<int64_t>(mc.n_categories, 2); ++c) w[c] = 0.0;
    cx.purchase_wsum = w.sum().item<double>();
    cx.purchase_weight = w.to(device);
  }

  // Resume. Rank 0 picks the checkpoint; every rank loads it (a shared filesystem is assumed).
  TrainSummary sum;
  sum.rank = rank;
  sum.world = world;
  int64_t step = 0, nonfinite = 0;
  Position pos;
  BestWeights best;
  best.metric = "recall@" + std::to_string(p.eval_ks.empty() ? 10 : p.eval_ks[0]);
  fs::path resume_from;
  if (rank == 0) resume_from = pick_resume_checkpoint(p, run_dir);
  if (loss_pg) resume_from = loss_pg->broadcast_string("resume_from", resume_from.string());
  if (!resume_from.empty()) {
    auto st = nlohmann::json::parse(read_file(resume_from / "state.json"));
    // The checkpoint must have been trained on these shards' vocabulary: its embedding rows
    // are indexed by their token ids.
    const std::string ckpt_fp = st.value("vocab_fingerprint", std::string());
    if ((!ckpt_fp.empty() && ckpt_fp != loader.vocab_fingerprint()) ||
        st.value("tokenizer_sha256", stats.tokenizer_sha256) != stats.tokenizer_sha256)
      throw DataError("checkpoint " + resume_from.string() + " was trained on other shards than train.shards=" +
                      p.shards + " (vocabulary or tokenizer differs). Resume with the shards it was trained on, or "
                      "start a fresh run in another directory.");
    try {
      {
        torch::serialize::InputArchive ar;
        ar.load_from((resume_from / "model.pt").string(), device);
        load_model_weights(m, ar);
      }
      torch::load(opt, (resume_from / "optimizer.pt").string(), device);
      load_rng(resume_from / "rng.pt");
    } catch (const c10::Error& e) {
      throw DataError("checkpoint " + resume_from.string() + " cannot be loaded (" +
                      std::string(e.what_without_backtrace()).substr(0, 300) + ")");
    }
    check_finite_weights(m, (resume_from / "model.pt").string());
    if (ema.enabled()) {
      if (fs::exists(resume_from / "ema.pt")) {
        ema.load(resume_from / "ema.pt", device);
      } else {
        ema.reset();
        if (rank == 0)
          PLOG_WARN("checkpoint {} holds no weight average (trained without train.ema_decay): the average "
                    "starts at its weights",
                    resume_from.string());
      }
    }
    if (st.contains("best") && fs::exists(resume_from / "best.pt")) {
      best.step = st["best"].value("step", int64_t{-1});
      best.value = st["best"].value("value", -1.0);
      best.evals_since = st["best"].value("evals_since", int64_t{0});
      best.weights = read_file(resume_from / "best.pt");
    }
    step = st.at("step");
    nonfinite = st.value("nonfinite_skipped", int64_t{0});
    pos.epoch = st.at("epoch");
    pos.offset = st.at("sample_offset");
    const int64_t old_world = st.value("world", int64_t{1});
    if (old_world != world || st.value("global_batch", G) != G)
      PLOG_INFO("resuming a checkpoint of world size {} (global batch {}) on world size {} (global batch {}): "
                "the global sample order continues at sample {} of epoch {}",
                old_world, st.value("global_batch", G), world, G, pos.offset, pos.epoch);
    if (pos.offset % G != 0) {
      // A different global batch: restart the epoch at the last whole global batch.
      PLOG_WARN("resume offset {} is not a multiple of the global batch {}; rounding down", pos.offset, G);
      pos.offset -= pos.offset % G;
    }
    sum.resumed_from = resume_from.string();
    PLOG_INFO("resumed from {} at step {} (epoch {}, sample {})", resume_from.string(), step, pos.epoch, pos.offset);
  }
  sum.start_step = step;
  const int64_t end_step = p.stop_after > 0 ? std::min(p.steps, p.stop_after) : p.steps;

  // DDP-style gradient synchronisation (also makes rank 0's parameters everyone's).
  std::unique_ptr<dist::GradReducer> reducer;
  if (distributed) {
    dist::ReducerParams rp;
    rp.bucket_cap_bytes = std::max<int64_t>(int64_t(p.dist.bucket_cap_mb * (1 << 20)), 1);
    rp.first_bucket_bytes = std::max<int64_t>(int64_t(p.dist.first_bucket_mb * (1 << 20)), 1);
    rp.overlap = p.dist.overlap;
    reducer = std::make_unique<dist::GradReducer>(grad_pg, all_params, rp);
    reducer->broadcast_parameters();
  }

  std::optional<MetricsWriter> metrics, evals, samples;
  if (rank == 0) {
    metrics.emplace((run_dir / "metrics.jsonl").string());
    evals.emplace((run_dir / "eval.jsonl").string());
  }
  if (p.log_samples) {
    samples.emplace((run_dir / fmt::format("samples.rank{}.jsonl", rank)).string());
  }
  auto state_json = [&]() {
    Position q = pos;
    if (q.offset / G >= loader.batches_per_epoch()) q = {q.epoch + 1, 0};
    return nlohmann::json{{"step", step},
                          {"epoch", q.epoch},
                          {"sample_offset", q.offset},
                          {"global_batch", G},
                          {"world", world},
                          {"seed", p.seed},
                          {"nonfinite_skipped", nonfinite},
                          {"tokenizer_sha256", stats.tokenizer_sha256},
                          {"vocab_fingerprint", loader.vocab_fingerprint()},
                          {"prep_run_id", loader.prep_run_id()},
                          {"scheduler", {{"schedule", p.schedule}, {"lr", p.lr}, {"warmup_steps", p.warmup_steps},
                                         {"steps", p.steps}, {"min_lr_ratio", p.min_lr_ratio},
                                         {"last_lr", lr_at(p, std::max<int64_t>(step, 1))}}},
                          {"device", device.str()},
                          {"precision", bf16 ? "bf16" : "fp32"}};
  };
  // Checkpoints and evaluations are rank 0's; the others wait at a store barrier (not a
  // collective, so no NCCL watchdog fires during long I/O).
  auto checkpoint = [&]() {
    fs::path out;
    if (rank == 0) out = save_checkpoint(run_dir, step, m, opt, state_json(), p.config_yaml, p.keep_last, best, ema);
    barrier("checkpoint");
    return out;
  };
  auto run_eval = [&](const std::string& split, int64_t max_users, const std::atomic<int>* stop = nullptr,
                      const calib::HeadCalibration* cal = nullptr, BinaryAccumulator* samples = nullptr) {
    EvalReport r = evaluate_split(m, p.shards, split, max_users, p.eval_batch_size, p.eval_ks,
                                  stats.item_positive_counts, stats.purchase_rate, device, bf16, step,
                                  p.eval_exclude_seen, stop, cal, samples);
    evals->write(r.to_json());
    return r;
  };

  // Loop.
  StopSignalGuard signals;
  loader.start_epoch(pos.epoch, pos.offset);
  Progress bar("train", uint64_t(end_step), "steps", ProgressParams{.enabled = p.progress && rank == 0});
  bar.set(uint64_t(step));
  std::map<std::string, double> interval_loss;
  double interval_total = 0, last_total = 0, interval_comm_wait = 0;
  int64_t interval_steps = 0, interval_users = 0, interval_tokens = 0;
  double interval_flops = 0;  // model FLOPs of the padded sequences this rank processed
  int64_t all_users = 0, all_tokens = 0;
  auto t_start = Clock::now(), t_interval = Clock::now();
  double eval_seconds = 0;
  fs::path last_ckpt;
  int64_t last_ckpt_step = -1;
  bool stop_requested = false, early_stopped = false;
  const int restart_count = env.restart_count;

  while (step < end_step && !stop_requested && !early_stopped) {
    const int64_t next_step = step + 1;
    if (p.fault_kill_step == next_step && p.fault_kill_rank == rank && restart_count == 0) {
      PLOG_WARN("fault injection: rank {} kills itself at step {}", rank, next_step);
      ::raise(SIGKILL);
    }
    const double lr = lr_at(p, next_step);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    opt.zero_grad(true);
    // Dropout draws from a generator seeded by (seed, step, rank): a resumed or restarted run
    // draws exactly what the uninterrupted run drew.
    torch::manual_seed(mix64(step_seed(p.seed, next_step, 0), uint64_t(rank) + 1));
    bool bad = false;
    double step_total = 0;
    std::vector<std::pair<std::string, double>> parts;
    for (int64_t micro = 0; micro < p.grad_accum; ++micro) {
      data::Batch raw;
      int guard = 0;
      while (!loader.next(raw)) {
        if (++guard > 2) throw DataError("the training loader yields no batches");
        ++pos.epoch;
        pos.offset = 0;
        loader.start_epoch(pos.epoch, 0);
      }
      pos.offset += G;
      if (samples) samples->write({{"step", next_step}, {"micro", micro}, {"epoch", pos.epoch}, {"users", raw.user_index}});
      data::Batch b = fit_batch(raw, mc);
      Losses L = compute_losses(m, b, cx, step_seed(p.seed, next_step, micro));
      if (std::find(p.fault_nonfinite_steps.begin(), p.fault_nonfinite_steps.end(), next_step) !=
          p.fault_nonfinite_steps.end())
        L.total = L.total * std::numeric_limits<float>::quiet_NaN();
      // Loss values (global means) and the stop flag, agreed on by every rank before backward:
      // a non-finite loss anywhere skips the step everywhere.
      std::vector<double> vals{L.total.item<double>()};
      for (auto& [name, t] : L.parts) vals.push_back(t.item<double>());
      vals.push_back(g_stop_signal.load() != 0 ? 1.0 : 0.0);
      if (distributed) {
        std::vector<at::Tensor> v{torch::tensor(vals, torch::kDouble).to(device)};
        loss_pg->all_reduce_sum(v);
        auto h = v[0].cpu();
        for (size_t k = 0; k < vals.size(); ++k) vals[k] = h[int64_t(k)].item<double>() / (k + 1 < vals.size() ? world : 1);
      }
      if (vals.back() > 0) stop_requested = true;
      const double tv = vals[0];
      for (int64_t r = 0; r < b.rows; ++r) {
        interval_tokens += 1 + b.length[size_t(r)];
        for (int64_t k = 0; k < b.T; ++k) interval_tokens += b.text_mask[size_t(r * b.T + k)] > 0 ? 1 : 0;
      }
      interval_users += b.rows;
      const int64_t S = 1 + b.L + b.T;  // fit_batch pads to the batch's longest row
      interval_flops += mc.train_flops_per_token(S) * double(b.rows * S);
      if (!std::isfinite(tv)) {
        bad = true;
        continue;  // keep consuming this step's micro-batches: the data order stays aligned
      }
      if (bad) continue;
      if (reducer) reducer->set_sync(micro + 1 == p.grad_accum);
      (L.total / double(p.grad_accum)).backward();
      step_total += tv / double(p.grad_accum);
      for (size_t k = 0; k < L.parts.size(); ++k) {
        const std::string& name = L.parts[k].first;
        double v = vals[k + 1] / double(p.grad_accum);
        auto it = std::find_if(parts.begin(), parts.end(), [&](auto& x) { return x.first == name; });
        if (it == parts.end()) parts.emplace_back(name, v);
        else it->second += v;
      }
    }
    double gnorm = 0;
    if (!bad) {
      if (reducer) {
        reducer->finalize();
        interval_comm_wait += reducer->last_wait_seconds();
        if (p.dist.verify_sync) {
          auto fp = grad_fingerprint(all_params);
          auto all = loss_pg->all_gather(fp.view({1, -1}).to(device)).cpu();  // [world, 2P]
          const double diff = (all - all[0].unsqueeze(0)).abs().max().item<double>();
          if (metrics) metrics->write({{"step", next_step}, {"event", "grad_sync"}, {"grad_sync_max_diff", diff}});
          if (diff != 0.0)
            throw std::runtime_error(fmt::format(
                "train.dist.verify_sync: the synchronised gradients differ across ranks at step {} (max |diff| "
                "of the per-parameter sums {}). This is a bug in the gradient reducer; please report it.",
                next_step, diff));
        }
      }
      gnorm = torch::nn::utils::clip_grad_norm_(all_params, p.grad_clip > 0 ? p.grad_clip : 1e30);
      if (!std::isfinite(gnorm)) bad = true;
    }
    step = next_step;
    if (bad) {
      ++nonfinite;
      opt.zero_grad(true);
      PLOG_WARN("step {}: non-finite loss or gradient; update skipped ({} of at most {} skips)", step, nonfinite,
                p.max_nonfinite);
      if (metrics) metrics->write({{"step", step}, {"event", "nonfinite_skip"}, {"nonfinite_skipped", nonfinite}});
      if (nonfinite > p.max_nonfinite)
        throw std::runtime_error(fmt::format(
            "training diverged: {} steps had a non-finite loss or gradient (train.max_nonfinite = {}); "
            "last at step {}. Lower train.lr, raise train.warmup_steps or check the data.",
            nonfinite, p.max_nonfinite, step));
    } else {
      opt.step();
      ema.update();
      last_total = step_total;
      interval_total += step_total;
      for (auto& [name, v] : parts) interval_loss[name] += v;
      ++interval_steps;
    }
    bar.set(uint64_t(step));

    if (step % p.log_every == 0 || step == end_step || stop_requested) {
      const double dt = std::chrono::duration<double>(Clock::now() - t_interval).count();
      const double n = double(std::max<int64_t>(interval_steps, 1));
      // Users and tokens are global (every rank processes the same amount per step).
      const double users_s = double(interval_users * world) / std::max(dt, 1e-9);
      const double tokens_s = double(interval_tokens * world) / std::max(dt, 1e-9);
      nlohmann::json rec = {{"step", step},
                            {"lr", lr},
                            {"loss", interval_total / n},
                            {"grad_norm", finite_or_nan(gnorm)},
                            {"temperature", 1.0 / m.temperature->forward().item<double>()},
                            {"users_per_s", users_s},
                            {"tokens_per_s", tokens_s},
                            {"nonfinite_skipped", nonfinite},
                            {"epoch", pos.epoch}};
      std::string postfix = fmt::format("loss={:.3f}", interval_total / n);
      for (auto& [name, v] : interval_loss) {
        rec["loss_" + name] = v / n;
        postfix += fmt::format(" {}={:.3f}", name, v / n);
      }
      if (distributed) rec["allreduce_wait_s"] = interval_comm_wait / n;
      if (device.is_cuda()) {
        // Per-device MFU: this rank's padded tokens against one accelerator's peak.
        const double mfu = interval_flops / std::max(dt, 1e-9) / (p.peak_tflops * 1e12);
        rec["mfu"] = mfu;
        postfix += fmt::format(" mfu={:.1f}%", 100 * mfu);
      }
      postfix += fmt::format(" {:.0f} users/s {:.0f} tok/s", users_s, tokens_s);
      bar.set_postfix(postfix);
      if (metrics) metrics->write(rec);
      sum.final_loss = interval_total / n;
      all_users += interval_users * world;
      all_tokens += interval_tokens * world;
      interval_loss.clear();
      interval_total = interval_comm_wait = 0;
      interval_steps = interval_users = interval_tokens = 0;
      interval_flops = 0;
      t_interval = Clock::now();
    }
    // With select_best the last step competes too (same users as the periodic evals).
    if (p.eval_every > 0 && (step % p.eval_every == 0 || (p.select_best && step == p.steps)) &&
        (step < p.steps || p.select_best) && !stop_requested) {
      auto t0 = Clock::now();
      bool stop = false;
      if (rank == 0) {
        AveragedWeights averaged(ema);  // what is evaluated is what select_best keeps and model/ exports
        EvalReport r = run_eval("val", p.eval_max_users);
        const double v = r.model.recall.empty() ? 0.0 : r.model.recall[0];
        PLOG_INFO("step {}: val Recall@{} {:.4f} (popularity {:.4f}), purchase AUC {:.4f} [{}]", step,
                  r.model.ks.empty() ? 0 : r.model.ks[0], v,
                  r.popularity.recall.empty() ? 0.0 : r.popularity.recall[0], r.purchase.mean_auc,
                  ranking_protocol(r.model.n_items));
        if (p.select_best && !best.offer(step, v, m))
          stop = p.patience > 0 && best.evals_since >= p.patience && step < p.steps;
      }
      if (loss_pg) stop = loss_pg->broadcast_string("early_stop", stop ? "1" : "0") == "1";
      if (stop) {
        early_stopped = true;
        if (rank == 0)
          PLOG_INFO("step {}: no better val {} in {} evaluations (best {:.4f} at step {}): stopping (train.patience)",
                    step, best.metric, best.evals_since, best.value, best.step);
      }
      barrier("eval");
      eval_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      t_interval += std::chrono::duration_cast<Clock::duration>(Clock::now() - t0);
    }
    if ((p.ckpt_every > 0 && step % p.ckpt_every == 0) || step == end_step || stop_requested || early_stopped) {
      last_ckpt = checkpoint();
      last_ckpt_step = step;
    }
  }
  bar.finish();
  sum.steps = step;
  sum.nonfinite_skipped = nonfinite;
  sum.seconds = std::chrono::duration<double>(Clock::now() - t_start).count() - eval_seconds;
  sum.users_per_s = all_users / std::max(sum.seconds, 1e-9);
  sum.tokens_per_s = all_tokens / std::max(sum.seconds, 1e-9);
  if (sum.final_loss == 0) sum.final_loss = last_total;
  if (last_ckpt_step != step) last_ckpt = checkpoint();
  if (stop_requested) {
    sum.interrupted = true;
    sum.stop_signal = g_stop_signal.load() != 0 ? g_stop_signal.load() : SIGTERM;
    PLOG_WARN("stop signal received: checkpoint at step {} written{}; continue with train.resume=auto "
              "(same hydra.run.dir) or train.resume=<checkpoint>",
              step, rank == 0 ? " to " + last_ckpt.string() : "");
    return sum;
  }
  sum.early_stopped = early_stopped;
  if (step < p.steps && !early_stopped) {  // stopped on purpose (stop_after): no artefact, no final eval
    if (rank == 0) PLOG_INFO("stopped after step {} (checkpoint {})", step, last_ckpt.string());
    return sum;
  }

  sum.model_dir = run_dir / "model";
  if (ema.enabled()) ema.swap();  // training is over: the model holds the average from here on
  if (rank == 0 && p.select_best && best.step >= 0) {
    best.restore_into(m, device);
    sum.selected_step = best.step;
    PLOG_INFO("train.select_best: exporting the weights of step {} (val {} {:.4f}; last step {})", best.step,
              best.metric, best.value, step);
  }
  if (rank == 0) {
    m.meta = {{"tokenizer_sha256", stats.tokenizer_sha256},
              {"vocab_fingerprint", loader.vocab_fingerprint()},
              {"prep_run_id", loader.prep_run_id()},
              {"step", step},
              {"selected_step", sum.selected_step >= 0 ? sum.selected_step : step},
              {"shards", p.shards},
              {"train_users", stats.users},
              {"seed", p.seed},
              {"world", world}};
    if (ema.enabled()) m.meta["ema"] = {{"decay", ema.decay()}, {"updates", ema.updates()}};
    save_model(m, sum.model_dir);
    if (p.fault_sigterm_at_final_eval) ::raise(SIGTERM);
    // Calibration: a pass over its split, then the model is saved again with the maps (the
    // first save stands if a stop signal or a one-class split ends it). That pass is also the
    // final evaluation of its split, reported without the in-sample calibrated metrics.
    calib::HeadCalibration cal;
    std::map<std::string, EvalReport> done;
    if (p.calibration.method != "none" && m.cfg.n_targets > 0 && p.loss.purchase.enabled) {
      try {
        if (g_stop_signal.load() != 0) throw EvalInterrupted{};
        BinaryAccumulator samples(1);
        EvalReport r = run_eval(p.calibration.split, p.calibration.max_users, &g_stop_signal, nullptr, &samples);
        if (r.has_purchase) {
          cal = samples.fit_calibration(p.calibration.method, p.calibration.scope, p.calibration.min_class);
          cal.fitted_on = p.calibration.split;
          m.meta["calibration"] = cal.to_json();
          save_model(m, sum.model_dir);
          PLOG_INFO("purchase heads calibrated ({} on {}: {} heads with their own map, the others pooled; {} "
                    "users)",
                    cal.method, cal.fitted_on, cal.own_maps(), r.purchase.rows);
        }
        if (p.calibration.max_users == 0) done[p.calibration.split] = std::move(r);
      } catch (const EvalInterrupted&) {
        // handled by the loop below, which sees the signal first
      } catch (const DataError& e) {
        PLOG_WARN("purchase heads not calibrated: {} (train.calibration.split={})", e.what(), p.calibration.split);
      }
    }
    for (const auto& split : p.final_eval_splits) {
      // The final evaluations run over every user and can take long: a stop signal ends them
      // (the model is already saved; resuming the run repeats them).
      EvalReport r;
      try {
        if (g_stop_signal.load() != 0) throw EvalInterrupted{};
        if (auto it = done.find(split); it != done.end()) r = it->second;
        else r = run_eval(split, 0, &g_stop_signal, cal.enabled() ? &cal : nullptr);
      } catch (const EvalInterrupted&) {
        sum.interrupted = true;
        sum.stop_signal = g_stop_signal.load() != 0 ? g_stop_signal.load() : SIGTERM;
        PLOG_WARN("stop signal during the final evaluation of '{}': the model is saved in {}; the final "
                  "evaluations were skipped (train.resume=auto in the same hydra.run.dir repeats them)",
                  split, sum.model_dir.string());
        break;
      }
      sum.final_eval[split] = r.to_json();
      for (std::string line; const auto& c : r.table()) {
        if (c == '\n') {
          PLOG_INFO("{}", line);
          line.clear();
        } else {
          line += c;
        }
      }
    }
    PLOG_INFO("trained {} steps in {} ({:.0f} users/s, {:.0f} tokens/s); model in {}", step - sum.start_step,
              Progress::format_duration(sum.seconds), sum.users_per_s, sum.tokens_per_s, sum.model_dir.string());
  }
  barrier("final");
  return sum;
}

}  // namespace portrait::train
