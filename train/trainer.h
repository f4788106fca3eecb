// `portrait train`: trains the user encoder (models/encoder.h) on `portrait prep` shards.
//
//   auto p = train::train_params_from_config(ctx.cfg);   // train.*, model.*, shards, seed
//   auto s = train::run_train(p, ctx.run_dir);           // throws on errors
//
// What one run writes under run_dir:
//   metrics.jsonl          one JSON object per logged step (losses, lr, users/s, tokens/s, MFU)
//   eval.jsonl             one JSON object per evaluation (full ranking over all items)
//   checkpoints/step_NNNNNNNNN/   model.pt, optimizer.pt, rng.pt, state.json, config.yaml and,
//                          with train.select_best, best.pt (the best val weights so far);
//                          with train.ema_decay > 0, ema.pt (the weight average);
//                          written to a hidden temporary directory then renamed; the last k kept
//   model/                 the inference artefact (models/checkpoint.h save_model)
//
// Objectives (each switchable and weighted under train.loss.*):
//   dense     PinnerFormer dense all-action: the state at a position of the input sequence
//             (`positions_per_user` sampled, or every one) must retrieve a random positive
//             event among the next `window` events; positives are the event types of
//             prep.target_event_types (the shards' target_event_types attribute); sampled
//             softmax, in-batch + uniform negatives, logQ. With model.pooling=last the state
//             at the last event IS the exported user embedding.
//   future    the user embedding must retrieve a random target of the split (the label
//             window, or the held-out next event under leave_last_out), same loss.
//   purchase  multi-label BCE of PurchaseHead(user) against the loader's purchase labels.
//   clip      CLIP alignment of the behaviour and text views for users with both.
//   masked_item  optional: some input items are replaced by padding and the state at that
//             position predicts the item (full softmax over items).
//
// Torch-free header: the CLI can include it without the torch headers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/node.h"
#include "models/model_config.h"

namespace portrait::dist {
class DistContext;
}

namespace portrait::train {

/// Multi-process training (torchrun). Ignored at world size 1.
struct DistTrainParams {
  std::string backend = "auto";   ///< auto (NCCL on CUDA, Gloo on CPU) | gloo | nccl
  double bucket_cap_mb = 25.0;    ///< gradient bucket size (DDP's default)
  double first_bucket_mb = 1.0;   ///< a small first bucket starts communication early
  bool overlap = true;            ///< all-reduce buckets during backward (false: after it)
  double timeout_s = 1800;        ///< collectives and store waits
  bool verify_sync = false;       ///< every step, check the synchronised gradients are equal
                                  ///< on every rank (one small extra collective; debugging)
};

/// One objective's switch and weight.
struct LossTerm {
  bool enabled = true;   ///< false: not computed at all
  double weight = 1.0;   ///< multiplier in the total loss
};

/// Defaults are configs/train/default.yaml's (the shipped recipe; see its comments for the
/// measurements behind each).
struct LossParams {
  /// Dense all-action loss on per-event states.
  LossTerm dense{true, 1.0};
  int64_t dense_positions_per_user = 0;  ///< sampled query positions per user per step (0 = every)
  int64_t dense_window = 1;              ///< positives are taken from the next `window` events
  /// true: the positive is one of the next `window` positives whose item is not the query
  /// event's own (`window` then counts those positives, not events).
  bool dense_skip_same_item = true;
  /// true: the split's targets continue each training sequence as positives, so the last input
  /// state (the exported user embedding) learns the step to what came next. Only where the
  /// train targets end before the val inputs do (leave_last_out; temporal cut-offs at least a
  /// label window apart), else off with a warning.
  bool dense_targets = true;
  /// Pooled user embedding -> a random future positive from the label window.
  LossTerm future{false, 1.0};
  int64_t future_targets_per_user = 8;   ///< rows per user (distinct targets, sampled)
  /// Negatives shared by dense and future: in-batch positives + this many uniform items.
  int64_t uniform_negatives = 512;
  /// auto: exact softmax over every item (full_softmax_rows) whenever the catalogue is no
  /// larger than the sampled candidate set (in-batch positives + uniform negatives), where it
  /// is both exact and no dearer; else sampled. sampled | full force one of them.
  std::string negatives = "auto";
  bool logq = true;                       ///< logQ correction from training item frequencies
  double logq_strength = 1.0;             ///< logits - strength * logQ (1 = unbiased full
                                          ///< softmax; > 1 favours popular items more)
  /// Purchase heads (multi-label BCE over categories).
  LossTerm purchase{true, 1.0};
  /// CLIP alignment between the behaviour and the text view.
  LossTerm clip{true, 0.1};
  /// Masked-item loss (off by default).
  LossTerm masked_item{false, 0.5};
  double mask_prob = 0.15;                ///< fraction of real input events masked
};

/// train.calibration: the purchase heads' probabilities calibrated on a held-out split after
/// training (core/calibration.h); stored in model.json, copied into exports by `portrait embed`,
/// applied by `portrait score`. The final evaluations of the other splits report the heads
/// before and after it (AUC, log-loss, ECE, expected vs observed buyers).
struct CalibrationParams {
  std::string method = "platt";    ///< none | platt | isotonic | temperature
  std::string scope = "per_head";  ///< per_head (a head short of min_class uses the pooled map) | pooled
  int64_t min_class = 50;          ///< positives and negatives a head needs for a map of its own
  std::string split = "val";       ///< the split it is fitted on
  int64_t max_users = 0;           ///< users read for the fit (0 = all)
};

struct TrainParams {
  // ---- data / model (top-level `shards`, `seed`, group `model`) ----
  std::string shards;            ///< directory of `portrait prep` output (mandatory)
  uint64_t seed = 1234;          ///< model init, data order, sampling
  ModelConfig model;             ///< architecture; vocabulary sizes are filled from the data
  // ---- optimisation ----
  double lr = 4e-3;              ///< peak learning rate (AdamW)
  double weight_decay = 0.01;    ///< applied to matrices only (not norms/biases/embeddings/temperature)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  ///< AdamW moments
  std::string schedule = "cosine";  ///< cosine | linear | constant (after linear warmup)
  int64_t warmup_steps = 50;     ///< linear warmup from lr/warmup to lr
  double min_lr_ratio = 0.1;     ///< the schedule ends at lr * min_lr_ratio
  int64_t steps = 600;           ///< optimizer steps (the schedule spans them)
  double epochs = 0;             ///< > 0: steps = ceil(epochs x optimizer steps per epoch), so the
                                 ///< training length follows the data's size; 0 = use `steps`
  int64_t batch_size = 64;       ///< users per micro-batch (per rank)
  int64_t grad_accum = 1;        ///< micro-batches per optimizer step
  double grad_clip = 1.0;        ///< max global grad norm; 0 = off
  double ema_decay = 0.0;        ///< > 0: evaluations, select_best and model/ use an exponential
                                 ///< moving average of the weights (train/weight_average.h); 0 = off
  int64_t max_targets = 32;      ///< label-window targets per user read from the loader (M)
  double init_temperature = 0.07;  ///< contrastive temperature at init
  bool learn_temperature = true;   ///< learned (CLIP-style) or fixed temperature
  LossParams loss;
  // ---- runtime ----
  std::string device = "auto";   ///< auto | cpu | cuda
  std::string precision = "auto";  ///< auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
  int64_t threads = 0;           ///< torch intra-op threads; 0 = torch default
  int64_t loader_threads = 2;    ///< loader worker threads
  int64_t max_nonfinite = 10;    ///< abort after this many skipped non-finite steps
  double peak_tflops = 989.0;    ///< accelerator peak (bf16 dense) for MFU; H100 SXM = 989
  // ---- evaluation ----
  int64_t eval_every = 200;      ///< periodic eval on val every N steps; 0 = only at the end
  int64_t eval_max_users = 2000; ///< users in periodic evals (0 = all); final evals use all
  int64_t eval_batch_size = 256; ///< users per eval batch
  std::vector<std::string> final_eval_splits = {"val", "test"};  ///< splits evaluated at the end
  std::vector<int64_t> eval_ks = {10, 50};  ///< cut-offs for Recall@K / NDCG@K / HR@K
  bool eval_exclude_seen = false;  ///< rank only items outside the user's input (models/eval.h)
  bool select_best = false;      ///< the exported model = the weights of the periodic val eval
                                 ///< with the best Recall@eval_ks[0] (the last step competes)
  int64_t patience = 0;          ///< with select_best: stop after this many periodic evals without
                                 ///< a better val Recall; 0 = train all steps
  CalibrationParams calibration;   ///< purchase-head calibration after training
  // ---- checkpoints / logging ----
  int64_t ckpt_every = 200;      ///< checkpoint every N steps (and at the end); 0 = end only
  int64_t keep_last = 3;         ///< checkpoints kept (older ones are pruned)
  std::string resume;            ///< "" = fresh | auto = newest in run_dir | path to a checkpoint
  int64_t stop_after = 0;        ///< stop (with a checkpoint) after this step, keeping the
                                 ///< schedule of `steps` (train in chunks); 0 = off
  int64_t log_every = 10;        ///< metrics.jsonl line every N steps
  bool log_samples = false;      ///< samples.rank<R>.jsonl: global user indices of every step
  bool progress = true;          ///< progress bar on stderr
  DistTrainParams dist;          ///< torchrun jobs (train.dist.*)
  // ---- set by the caller / tests, not read from `train.*` ----
  std::string config_yaml;       ///< resolved config stored in each checkpoint
  std::vector<int64_t> fault_nonfinite_steps;  ///< tests: the loss is made NaN at these steps
  /// Tests: on the first attempt (TORCHELASTIC_RESTART_COUNT 0 or unset) the rank
  /// `fault_kill_rank` SIGKILLs itself at the start of step `fault_kill_step` (0 = off).
  int64_t fault_kill_step = 0;
  int64_t fault_kill_rank = 0;
  bool fault_sigterm_at_final_eval = false;  ///< tests: SIGTERM arrives as the final evals start
};

/// Reads `train.*` (+ top-level `shards` and `seed`, and `model.*` via model_config_from).
/// Unknown keys under `train` are ConfigErrors. Fills config_yaml from the resolved root.
TrainParams train_params_from_config(const cfg::Node& resolved_root);

struct TrainSummary {
  int64_t steps = 0;             ///< optimizer steps reached (incl. skipped ones)
  int64_t start_step = 0;        ///< step resumed from (0 = fresh)
  int64_t nonfinite_skipped = 0; ///< steps skipped because the loss or gradient was not finite
  double final_loss = 0;         ///< mean total loss over the last logged interval
  double seconds = 0;            ///< wall time of the training loop (excl. final eval)
  double users_per_s = 0, tokens_per_s = 0;
  std::string resumed_from;      ///< checkpoint path, "" = fresh
  bool interrupted = false;      ///< stopped by SIGTERM/SIGINT after a checkpoint
  bool early_stopped = false;    ///< stopped by train.patience before train.steps
  int64_t selected_step = -1;    ///< train.select_best: the step whose weights were exported
  int stop_signal = 0;           ///< the signal this rank received (SIGTERM if another rank's stop ended it)
  int rank = 0, world = 1;
  std::filesystem::path model_dir;       ///< run_dir/model
  nlohmann::json final_eval = nlohmann::json::object();  ///< split -> eval record
};

/// Trains; returns after writing the final checkpoint, model/ and the final evaluation.
/// `job`: the torchrun job's store-only context (apps/job_dist.h); with world size > 1 the
/// trainer builds its gradient and loss process groups on its store, every rank trains on
/// its slice of each global batch, and rank 0 writes checkpoints, the model and evaluations.
/// SIGTERM / SIGINT: the current step finishes on every rank, a checkpoint is written and
/// the summary comes back with `interrupted` set.
TrainSummary run_train(const TrainParams& p, const std::filesystem::path& run_dir,
                       std::shared_ptr<dist::DistContext> job = nullptr);

// ---- pieces exposed for tests and tools --------------------------------------------------

/// Learning rate of optimizer update `step` (1-based): linear warmup to p.lr over
/// warmup_steps, then cosine / linear decay to lr * min_lr_ratio at `steps`, or constant.
double lr_at(const TrainParams& p, int64_t step);

/// Complete checkpoints ("step_*" directories holding state.json) in run_dir/checkpoints,
/// oldest first. Temporary (".step_*.tmp.*", older ".tmp.*") directories are never listed.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& run_dir);
/// Deletes all but the newest `keep` checkpoints and any stale temporary directories.
void prune_checkpoints(const std::filesystem::path& run_dir, int64_t keep);
/// Checkpoint directory name for a step ("step_000000100").
std::string checkpoint_name(int64_t step);

}  // namespace portrait::train
