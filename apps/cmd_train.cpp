// `portrait train`: trains the user encoder on prepared shards.
#include <fmt/format.h>

#include <iostream>

#include "apps/commands.h"
#include "apps/job_dist.h"
#include "core/error.h"
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
      "  portrait train shards=... hydra.run.dir=runs/exp1 train.resume=auto";
  c.config_name = "train";
  c.run = [](JobContext& ctx) {
    if (job_dist()->distributed()) {
      throw UsageError(
          "portrait train does not support WORLD_SIZE > 1 yet: the process groups, bucketed gradient "
          "all-reduce and global negatives exist (dist/), but the trainer is not wired to them. "
          "Run a single process for now.");
    }
    auto p = train::train_params_from_config(ctx.cfg);
    auto s = train::run_train(p, ctx.run_dir);
    std::cout << fmt::format("train: {} steps in {:.1f}s ({:.0f} users/s, {:.0f} tokens/s) -> {}\n", s.steps,
                             s.seconds, s.users_per_s, s.tokens_per_s, s.model_dir.string());
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
