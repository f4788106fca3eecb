#include "apps/job_dist.h"

#include "core/cli.h"
#include "core/log.h"

namespace portrait::apps {

std::shared_ptr<dist::DistContext> job_dist() {
  static std::shared_ptr<dist::DistContext> ctx = [] {
    dist::DistEnv env = dist::read_dist_env();
    dist::DistParams p;
    p.backend = "none";
    if (env.distributed()) log::set_rank(env.rank);
    return dist::DistContext::create(env, p, /*use_cuda=*/false);
  }();
  return ctx;
}

void install_run_dir_agreement() {
  const char* ws = std::getenv("WORLD_SIZE");
  if (!ws || std::atoi(ws) <= 1) return;
  set_run_dir_agreement([](const std::filesystem::path& proposed) {
    // The first attempt's directory: a job restarted by torchrun (--max-restarts) resumes
    // from the checkpoints there.
    return std::filesystem::path(job_dist()->first_attempt_string("run_dir", proposed.string()));
  });
}

}  // namespace portrait::apps
