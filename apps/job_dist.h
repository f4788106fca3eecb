// The per-process torchrun connection of the `portrait` binary: a store-only DistContext
// created from the environment when WORLD_SIZE > 1 (barriers, rank 0's run directory).
// Commands that need tensor collectives build their own process group on its store.
#pragma once

#include <memory>

#include "distributed/context.h"

namespace portrait::apps {

/// The job's store-only context (world size 1: a no-op context). Created on first use.
std::shared_ptr<dist::DistContext> job_dist();

/// When launched by torchrun with WORLD_SIZE > 1: every rank uses rank 0's run directory.
void install_run_dir_agreement();

}  // namespace portrait::apps
