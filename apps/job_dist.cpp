#include "apps/job_dist.h"

#include "core/cli.h"
#include "core/log.h"
#include "distributed/env.h"

namespace portrait::apps {

std::shared_ptr<dist::DistContext> job_dist() {
  static std::shared_ptr<dist::DistContext> ctx = [] {
    dist::DistEnv env = dist::read_dist_env();
    dist::DistParams p;
    p.backend = "none";
    p.timeout = std::chrono::seconds(env.store_timeout_s);
    if (env.distributed()) log::set_rank(env.rank);
    return dist::DistContext::create(env, p, /*use_cuda=*/false);
  }();
  return ctx;
}

void install_run_dir_agreement() {
  // Any command that fails under torchrun explains itself in the agent's "Root Cause".
  if (std::getenv("TORCHELASTIC_ERROR_FILE")) {
    set_failure_hook([](const std::string& message) {
      dist::DistEnv env;
      try {
        env = dist::read_dist_env();
      } catch (...) {
        if (const char* f = std::getenv("TORCHELASTIC_ERROR_FILE")) env.error_file = f;
      }
      dist::write_error_file(env, message);
    });
  }
  const char* ws = std::getenv("WORLD_SIZE");
  if (!ws || std::atoi(ws) <= 1) return;
  set_run_dir_agreement([](const std::filesystem::path& proposed) {
    // The first attempt's directory: a job restarted by torchrun (--max-restarts) resumes
    // from the checkpoints there.
    return std::filesystem::path(job_dist()->first_attempt_string("run_dir", proposed.string()));
  });
}

}  // namespace portrait::apps
