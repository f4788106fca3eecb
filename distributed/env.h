// The torchrun worker contract, read from the environment (see shared notes, ecosystem.md §1):
// RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and TORCHELASTIC_*.
// With none of them set the job is a plain single process (world size 1).
#pragma once

#include <string>

namespace portrait::dist {

struct DistEnv {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int restart_count = 0;       ///< TORCHELASTIC_RESTART_COUNT: 0 on the first attempt
  int max_restarts = 0;        ///< TORCHELASTIC_MAX_RESTARTS
  std::string run_id = "none"; ///< TORCHELASTIC_RUN_ID ("none" with static rendezvous)
  bool use_agent_store = false;///< TORCHELASTIC_USE_AGENT_STORE: the agent hosts the TCPStore
  std::string error_file;      ///< TORCHELASTIC_ERROR_FILE: where a failing worker explains why
  bool launched = false;       ///< true when started by torchrun (WORLD_SIZE present)
  /// PORTRAIT_DIST_TIMEOUT_S: how long a rank waits at a store barrier or broadcast of the
  /// job context (e.g. for the slowest rank's prep phase) before failing. Default 30 min;
  /// raise it for inputs whose per-rank phases take longer.
  int store_timeout_s = 1800;

  bool distributed() const { return world_size > 1; }
  /// Key prefix for this attempt, so a restarted group never reads the previous attempt's keys
  /// from a store that outlives it (the static agent store does).
  std::string attempt_prefix() const { return "/worker/attempt_" + std::to_string(restart_count); }
};

/// Reads the environment; throws UsageError naming the variable on malformed values
/// (e.g. RANK >= WORLD_SIZE).
DistEnv read_dist_env();

/// Writes torchrun's error-file JSON (shown by the agent under "Root Cause") if
/// TORCHELASTIC_ERROR_FILE is set. Never throws.
void write_error_file(const DistEnv& env, const std::string& message);

}  // namespace portrait::dist
