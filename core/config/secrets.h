// Secrets never leave through a config sink. Portrait reads its one secret (the
// pseudonymization key) from a file or an environment variable, so a secret in the config is
// always a mistake, such as `data.privacy.key=...` or the key pasted into `key_env`. Every
// place that renders config text goes through here: the override's display text (messages,
// marks, .hydra/overrides.yaml, hydra.yaml's task list) and to_yaml (.hydra/config.yaml,
// `--cfg`, the config_yaml stored in models, checkpoints and exports). The value itself stays
// in the parsed tree, so the error that follows a mistake names the key, not the secret.
#pragma once

#include <string>
#include <string_view>

#include "core/config/node.h"

namespace portrait::cfg {

/// What a redacted value reads as wherever config text is shown or written.
inline constexpr std::string_view kRedacted = "<redacted>";

/// True for keys whose value is a secret by name. Only the leaf of a dotted/slashed path
/// counts, case-insensitively: key, secret, password, passwd, token, credential(s), api_key,
/// apikey, auth, or a name ending in _key, _secret, _password, _passwd, _token, _credential(s)
/// (so key_file, key_env, max_text_tokens, special_tokens are not secret).
bool is_secret_key(std::string_view path);

/// True if `value` under `path` must not be shown: a secret key, or an `*_env` key (it names
/// an environment variable) whose value does not look like a variable name (UPPER_SNAKE_CASE):
/// that is the key itself pasted into the wrong place.
bool is_secret_value(std::string_view path, std::string_view value);

/// An override as it may be shown: `[+|++|~]key=<redacted>` when is_secret_value, else `arg`.
std::string redact_override_text(std::string_view arg);

/// A copy of `node` with the value of every secret key (any kind) replaced by kRedacted.
Node redact_secrets(const Node& node);

}  // namespace portrait::cfg
