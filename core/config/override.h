// Hydra's command-line override grammar:
//   key=value        change an existing key (or select a config group option)
//   +key=value       add a key that must not exist (or append a group to the defaults list)
//   ++key=value      add or change
//   ~key  ~key=value delete (only if the current value equals `value`)
//   key@pkg=option   select a group option into another package
// Values are typed as Hydra types them: null; true/false (any case; `yes` stays a string);
// ints (1_000 allowed); floats (1e-3, .5, inf, -inf, nan, any case); 'single' or "double"
// quoted strings; [lists]; {dicts}; `key=` is the empty string; unquoted text keeps inner
// spaces and `${...}` interpolations. A top-level `a,b` (or choice()/range()) is a sweep,
// valid only with --multirun.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace portrait::cfg {

struct Override {
  enum class Type { kChange, kAdd, kForceAdd, kDelete };
  Type type = Type::kChange;
  std::string key;      ///< dotted key or group path ("model", "optimizer/schedule")
  std::string package;  ///< after '@', if any
  bool has_value = false;  ///< false for "~key"
  Node value;              ///< the typed value (first sweep value if a sweep)
  std::vector<Node> sweep; ///< non-empty for "a,b", choice(...), range(...)
  std::string text;        ///< the original argument, for overrides.yaml and messages

  bool is_sweep() const { return !sweep.empty(); }
  /// "+key", "~key", "key@pkg" as written (prefix included), for messages.
  std::string key_with_prefix() const;
};

/// Parses one command-line override. Throws UsageError naming the argument and the position
/// of the problem on malformed input.
Override parse_override(const std::string& arg);

/// Parses a value as the right-hand side of an override (used for tests and `--set`-like
/// helpers). Sweeps are rejected.
Node parse_override_value(const std::string& text);

/// Renders a value back in override syntax (for sweeps expanding into job overrides).
std::string value_to_override_text(const Node& v);

}  // namespace portrait::cfg
