// Hydra-style composition of a job config from a config directory:
//
//   configs/train.yaml            primary config (one per subcommand; -cn picks another)
//   configs/model/tiny.yaml       option `tiny` of group `model` (merged under `model:`)
//
// Supported: the `defaults:` list (`_self_`, `group: option`, `group: [a, b]`, `optional`,
// `override`, `group@package: option`, `/abs/group`, plain config names, `group: null`,
// `group: ???`), nested defaults in group options, `# @package _global_|_group_|a.b` headers,
// and the command-line overrides of override.h: `group=option`, `+group=option`, `~group`,
// `key=value`, `+key=value`, `++key=value`, `~key[=value]`, `hydra.*` keys.
// Order, as Hydra's: the defaults list first (defaults_list.h: every `override`, from any
// config, applied before a group is loaded), then the merge in list order, then the overlay,
// then the command line's value overrides (`a={..}` merges into a dict in struct mode,
// `++a={..}` / `+a={..}` merge and may add keys).
// Struct mode: changing a key that does not exist fails with Hydra's exact message plus a
// did-you-mean hint. Errors are ConfigError (exit code 2) carrying Hydra's wording.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/config/node.h"
#include "core/config/override.h"

namespace portrait::cfg {

struct ComposeOptions {
  /// Directories searched in order for configs (e.g. {--config-dir, primary config path}).
  std::vector<std::filesystem::path> search_path;
  /// Primary config name without ".yaml" (e.g. "train").
  std::string config_name;
  /// Command-line overrides as typed by the user (sweeps already expanded, or rejected).
  std::vector<std::string> overrides;
  /// Job name for hydra.job.name (defaults to config_name).
  std::string job_name;
  /// Merged into the composed config after the defaults list and before the command-line
  /// value overrides (a pipeline lays its shared groups over a stage's config this way).
  Node overlay;
};

struct Composed {
  Node config;  ///< the job config, unresolved (as Hydra writes .hydra/config.yaml)
  Node hydra;   ///< the hydra config (hydra.run.dir, hydra.job.name, runtime.choices, ...)
  std::vector<std::string> task_overrides;   ///< non-hydra overrides, in order
  std::vector<std::string> hydra_overrides;  ///< hydra.* overrides, in order
  std::map<std::string, std::string> choices;  ///< group -> selected option
};

/// Composes the config. Throws ConfigError / UsageError.
Composed compose(const ComposeOptions& opts);

/// Names of the options of a config group (file stems, sorted), across the search path.
std::vector<std::string> group_options(const std::vector<std::filesystem::path>& search_path,
                                       const std::string& group);
/// Config groups (directories holding .yaml files) across the search path, sorted.
std::vector<std::string> list_groups(const std::vector<std::filesystem::path>& search_path);

/// The hydra config defaults (run.dir = outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}, ...).
Node default_hydra_config(const std::string& job_name);

}  // namespace portrait::cfg
