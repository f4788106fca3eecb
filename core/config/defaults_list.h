// The defaults list, computed as Hydra 1.3 computes it (hydra/_internal/defaults_list.py):
//
//   1. Build the whole defaults tree first. A config's entries are visited in reverse order,
//      and a config registers its `override group: option` entries before its children are
//      visited, so an `override /db: postgres` in a `# @package _global_` experiment listed
//      (or appended with +experiment=...) after `db` is known before `db` is reached. The
//      command line's `group=option` beats every `override`; the first `override` seen wins
//      among configs.
//   2. Flatten the tree (depth first, in list order) into the configs to merge, each with
//      its final package; composition (compose.cpp) merges them in that order and only then
//      applies the command line's value overrides.
//
// Packages follow Hydra: a group option lands under its group path relative to the
// including config's package, so an absolute `- /server: apache` inside db/mysql.yaml lands
// at `db.server`; `@pkg` and `# @package` headers are relative to the parent's package;
// `_global_` anywhere resets to the root; `_here_` is the parent's package.
// Multi-select (`- site: [fb, google]`, `server/site=[google,amazon]`) merges each option
// under the group's package in order.
// Unused overrides fail with Hydra's words ("Could not override 'db'. No match in the
// defaults list.").
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/config/config_repo.h"
#include "core/config/node.h"
#include "core/config/override.h"

namespace portrait::cfg {

/// One config to merge, in merge order.
struct ResultDefault {
  std::filesystem::path file;
  std::string config_path;  ///< "db/mysql", "train"
  std::string package;      ///< where its values land ("" = the root)
};

struct DefaultsList {
  std::vector<ResultDefault> configs;
  /// Override key ("db", "server@db.server") -> option name or null, as
  /// hydra.runtime.choices records them (multi-select groups are not recorded, as in Hydra).
  std::map<std::string, Node> choices;
};

/// `group_overrides`: the command line's config-group overrides (`db=x`, `+db=x`, `~db`,
/// `db@pkg=x`, `site=[a,b]`). Throws ConfigError with Hydra's messages.
DefaultsList build_defaults_list(ConfigRepo& repo, const std::string& config_name,
                                 const std::vector<Override>& group_overrides);

}  // namespace portrait::cfg
