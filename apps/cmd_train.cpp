// `portrait train`: trains the user encoder on prepared shards.
#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "apps/command_specs.h"
#include "apps/commands.h"
#include "apps/job_dist.h"
#include "core/error.h"
#include "core/log.h"
#include "distributed/env.h"
#include "train/trainer.h"

namespace portrait::apps {

CommandSpec train_command() {
  CommandSpec c = train_spec();
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
      return 128 + (s.stop_signal != 0 ? s.stop_signal : SIGTERM);  // 143 (SIGTERM) or 130 (SIGINT)
    }
    if (s.rank == 0)
      std::cout << fmt::format("train: {} steps in {:.1f}s ({:.0f} users/s, {:.0f} tokens/s) -> {}\n", s.steps,
                               s.seconds, s.users_per_s, s.tokens_per_s, s.model_dir.string());
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
