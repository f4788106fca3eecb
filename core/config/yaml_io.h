// YAML <-> cfg::Node. Loading follows OmegaConf's typing (PyYAML SafeLoader, YAML 1.1) so a
// file means the same here as under Hydra: plain `yes/no/on/off/true/false` are bools,
// `1e-3` is a float (OmegaConf's extension), `~`/`null`/empty are null, quoted scalars are
// always strings, duplicate keys are an error. Every node carries its file:line.
// Emitting quotes any string that would otherwise re-read as another type.
#pragma once

#include <filesystem>
#include <string>

#include "core/config/node.h"

namespace portrait::cfg {

/// Parses YAML text. `origin` names the source in marks and errors. Throws ConfigError
/// ("<origin>:<line>:<col>: malformed YAML: ...") on syntax errors and duplicate keys.
Node load_yaml_string(const std::string& text, const std::string& origin);
/// Loads a YAML file; an empty file gives an empty map.
Node load_yaml_file(const std::filesystem::path& path);

/// Block-style YAML, two-space indents, keys in insertion order; ends with a newline.
/// An empty map at the root is written as "{}".
std::string to_yaml(const Node& node);

/// Types a plain (unquoted) YAML scalar the way PyYAML + OmegaConf do.
Node type_plain_yaml_scalar(const std::string& text);

}  // namespace portrait::cfg
