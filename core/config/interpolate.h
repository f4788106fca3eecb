// OmegaConf-style interpolation over a cfg::Node tree:
//   ${a.b}            absolute reference (a whole-value reference keeps the target's type,
//                     so ${model} copies a dict and ${train.lr} stays a float)
//   ${.x} ${..x}      relative to the node's parent container / its parent, ...
//   "run_${seed}"     string interpolation (each reference rendered as text)
//   ${oc.env:VAR}  ${oc.env:VAR,default}   environment variable (error if unset, no default)
//   ${oc.select:key,default}               a key, or the default if absent
//   ${now:%Y-%m-%d}   the run's start time (one timestamp per process, so every ${now:}
//                     of a run agrees), strftime format, local time as in Hydra
//   ${hydra:runtime.output_dir}            a key of the hydra config
//   \${...}           a literal "${...}"
// Cycles are detected and reported with the chain of keys, never looped over.
#pragma once

#include <ctime>
#include <string>

#include "core/config/node.h"

namespace portrait::cfg {

struct ResolveContext {
  std::time_t now = 0;          ///< 0: captured at first use
  const Node* hydra = nullptr;  ///< root of the hydra config for ${hydra:...}
};

/// Returns a copy of `root` with every interpolation resolved. "???" values stay missing
/// (reading them through cfg::Section fails with "Missing mandatory value").
/// Throws ConfigError naming the key holding the bad interpolation.
Node resolve(const Node& root, const ResolveContext& ctx = {});

/// Resolves a single string against `root` (e.g. hydra.run.dir against the hydra tree).
std::string resolve_string(const std::string& text, const Node& root, const ResolveContext& ctx);

}  // namespace portrait::cfg
