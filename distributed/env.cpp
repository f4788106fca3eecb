#include "distributed/env.h"

#include <chrono>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace portrait::dist {

namespace {

const char* get(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int get_int(const char* name, int fallback, int lo, int hi) {
  const char* v = get(name);
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi) {
    throw UsageError(fmt::format("environment variable {}='{}' must be an integer in [{}, {}] "
                                 "(it is set by torchrun; unset it to run a single process)",
                                 name, v, lo, hi));
  }
  return static_cast<int>(x);
}

}  // namespace

DistEnv read_dist_env() {
  DistEnv e;
  e.launched = get("WORLD_SIZE") != nullptr;
  e.world_size = get_int("WORLD_SIZE", 1, 1, 1 << 20);
  e.rank = get_int("RANK", 0, 0, 1 << 20);
  e.local_rank = get_int("LOCAL_RANK", 0, 0, 1 << 16);
  e.local_world_size = get_int("LOCAL_WORLD_SIZE", e.world_size, 1, 1 << 16);
  if (e.rank >= e.world_size)
    throw UsageError(fmt::format("RANK={} must be smaller than WORLD_SIZE={}", e.rank, e.world_size));
  if (e.local_rank >= e.local_world_size)
    throw UsageError(fmt::format("LOCAL_RANK={} must be smaller than LOCAL_WORLD_SIZE={}",
                                 e.local_rank, e.local_world_size));
  if (const char* a = get("MASTER_ADDR")) e.master_addr = a;
  e.master_port = get_int("MASTER_PORT", 29500, 0, 65535);
  e.restart_count = get_int("TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 20);
  e.max_restarts = get_int("TORCHELASTIC_MAX_RESTARTS", 0, 0, 1 << 20);
  if (const char* r = get("TORCHELASTIC_RUN_ID")) e.run_id = r;
  if (const char* u = get("TORCHELASTIC_USE_AGENT_STORE")) {
    std::string s = u;
    e.use_agent_store = s == "True" || s == "true" || s == "1";
  }
  if (const char* f = get("TORCHELASTIC_ERROR_FILE")) e.error_file = f;
  if (const char* t = get("PORTRAIT_DIST_TIMEOUT_S")) {
    char* end = nullptr;
    long x = std::strtol(t, &end, 10);
    if (*end != '\0' || x < 1 || x > 7 * 24 * 3600)
      throw UsageError(fmt::format("environment variable PORTRAIT_DIST_TIMEOUT_S='{}' must be a whole number of "
                                   "seconds in [1, 604800] (how long ranks wait for each other; default 1800)",
                                   t));
    e.store_timeout_s = static_cast<int>(x);
  }
  if (e.distributed() && !get("MASTER_ADDR"))
    throw UsageError("WORLD_SIZE > 1 but MASTER_ADDR is not set: launch with torchrun "
                     "(torchrun --nproc-per-node=N --no-python portrait train ...)");
  return e;
}

void write_error_file(const DistEnv& env, const std::string& message) {
  if (env.error_file.empty()) return;
  try {
    using namespace std::chrono;
    auto ts = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
    nlohmann::json j = {{"message",
                         {{"message", "RuntimeError: " + message},
                          {"extraInfo", {{"py_callstack", "(C++ worker: portrait, rank " +
                                                              std::to_string(env.rank) + ")"},
                                         {"timestamp", std::to_string(ts)}}}}}};
    std::ofstream(env.error_file) << j.dump();
  } catch (...) {
  }
}

}  // namespace portrait::dist
