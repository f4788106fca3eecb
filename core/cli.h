// The Hydra-style command runner every `portrait <subcommand>` goes through:
//
//   portrait train model=small train.lr=3e-4 +train.note=x ~data.catalog
//   portrait train --cfg job [--resolve]      print the composed config and exit
//   portrait train -cn train_big -cd ~/my_configs
//   portrait train -m train.lr=1e-3,3e-4      sequential sweep (multirun)
//   portrait train --help
//
// Flags: -h/--help, --cfg job|hydra|all, --resolve, -cp/--config-path DIR,
// -cn/--config-name NAME, -cd/--config-dir DIR, -m/--multirun, --info. `--local-rank=N` /
// `--local_rank=N` (legacy launchers) are accepted and ignored. Any other flag is a usage
// error naming it. Exit codes: 0 ok, 1 runtime error, 2 usage or config error.
#pragma once

#include <ctime>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/config/compose.h"
#include "core/config/node.h"

namespace portrait {

/// What a subcommand gets when it runs.
struct JobContext {
  cfg::Composed composed;             ///< unresolved config + hydra config
  cfg::Node cfg;                      ///< the resolved job config
  std::filesystem::path run_dir;      ///< output directory (empty if the command has none)
  std::vector<std::string> args;      ///< positional arguments that were not overrides
  int job_num = 0;                    ///< index within a multirun sweep
  std::vector<std::filesystem::path> search_path;  ///< config directories used (-cd, -cp)
  std::time_t now = 0;                ///< the invocation's timestamp (for ${now:...})
};

struct CommandSpec {
  std::string name;         ///< "train"
  std::string summary;      ///< one line for `portrait --help`
  std::string description;  ///< paragraph(s) for `portrait train --help`
  std::string config_name;  ///< primary config; "" = no config (e.g. `version`)
  bool creates_run_dir = true;  ///< false: read-only commands (config, version)
  /// Positional non-override arguments accepted (e.g. `portrait config train`).
  std::string positional_help;
  int max_positional = 0;
  std::function<int(JobContext&)> run;
};

/// Under torchrun every rank parses the same command line, but only rank 0 may pick the
/// timestamped run directory (ranks start in different seconds). The binary installs this hook
/// when WORLD_SIZE > 1; it returns rank 0's choice on every rank.
using RunDirAgreement = std::function<std::filesystem::path(const std::filesystem::path& proposed)>;
void set_run_dir_agreement(RunDirAgreement fn);

/// Called with the message of an error that ends a command (runtime, config or usage), before
/// run_command returns non-zero: e.g. to write torchrun's error file.
using FailureHook = std::function<void(const std::string& message)>;
void set_failure_hook(FailureHook fn);

/// Where configs live unless -cp says otherwise: $PORTRAIT_CONFIG_DIR, else the directory
/// compiled in (the source tree's configs/).
std::filesystem::path default_config_dir();

/// Parses argv (after the subcommand name), composes, prints --cfg output or runs the job.
/// Catches every exception and maps it to an exit code, printing the error to stderr.
int run_command(const CommandSpec& spec, const std::vector<std::string>& args);

/// Help text for a command: usage, description, flags, config groups and their options.
std::string command_help(const CommandSpec& spec, const std::filesystem::path& config_dir);

}  // namespace portrait
