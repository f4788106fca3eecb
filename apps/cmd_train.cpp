// `portrait train`: trains the user encoder on prepared shards.
#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "apps/commands.h"
#include "apps/job_dist.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/env.h"
#include "train/trainer.h"

namespace portrait::apps {

CommandSpec train_command() {
  CommandSpec c;
  c.name = "train";
  c.summary = "train the transformer user encoder on prepared shards";
  c.description =
      "Trains the user encoder (dense all-action contrastive loss with mixed negatives and logQ\n"
      "correction, purchase heads, behaviour<->text alignment) with AdamW, warmup + cosine,\n"
      "clipping and accumulation; bf16 autocast on CUDA. Checkpoints go to <run dir>/checkpoints\n"
      "(train.resume=auto continues the newest), the inference model to <run dir>/model, and\n"
      "full-ranking evaluation (Recall@K, NDCG@K vs the popularity baseline; purchase AUC) to\n"
      "eval.jsonl.\n\n"
      "  portrait train shards=<prep output> model=small train.steps=20000\n"
      "  portrait train shards=... hydra.run.dir=runs/exp1 train.resume=auto\n\n"
      "Several processes (one per GPU, or CPU processes over Gloo), launched by torchrun:\n"
      "  torchrun --standalone --nproc-per-node=8 --no-python portrait train shards=... \\\n"
      "      train.batch_size=256   # per rank: the global batch is 8 x 256\n"
      "Under --max-restarts a restarted job resumes from its newest checkpoint. SIGTERM or\n"
      "SIGINT: the step finishes, a checkpoint is written, exit status 143.";
  c.config_name = "train";
  c.run = [](JobContext& ctx) {
    auto job = job_dist();
    // Errors propagate to run_command, which prints them and writes torchrun's error file.
    const dist::DistEnv env = dist::read_dist_env();
    auto p = train::train_params_from_config(ctx.cfg);
    if (env.restart_count > 0 && p.resume.empty()) {
      // torchrun restarted the job (--max-restarts): continue from the newest checkpoint
      // of the first attempt's run directory instead of starting over.
      PLOG_INFO("torchrun restart {} of at most {}: train.resume=auto", env.restart_count, env.max_restarts);
      p.resume = "auto";
    }
    if (const char* k = std::getenv("PORTRAIT_FAULT_KILL_STEP")) p.fault_kill_step = std::atoll(k);
    if (const char* k = std::getenv("PORTRAIT_FAULT_KILL_RANK")) p.fault_kill_rank = std::atoll(k);
    auto s = train::run_train(p, ctx.run_dir, job);
    if (s.interrupted) {
      std::cout << fmt::format("train: interrupted by a stop signal after step {}; checkpoint written, "
                               "resume with train.resume=auto hydra.run.dir={}\n",
                               s.steps, ctx.run_dir.string());
      return 128 + SIGTERM;
    }
    if (s.rank == 0)
      std::cout << fmt::format("train: {} steps in {:.1f}s ({:.0f} users/s, {:.0f} tokens/s) -> {}\n", s.steps,
                               s.seconds, s.users_per_s, s.tokens_per_s, s.model_dir.string());
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
