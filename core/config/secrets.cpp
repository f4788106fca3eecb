#include "core/config/secrets.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace portrait::cfg {

namespace {

std::string lower_leaf(std::string_view path) {
  size_t cut = path.find_last_of("./");
  std::string_view leaf = cut == std::string_view::npos ? path : path.substr(cut + 1);
  std::string out(leaf);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

bool env_name_like(std::string_view v) {
  if (v.empty() || std::isdigit(static_cast<unsigned char>(v.front()))) return false;
  return std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void redact_rec(Node& n) {
  if (n.is_map()) {
    for (auto& [k, v] : n.items()) {
      if (is_secret_key(k) || (v.is_string() && is_secret_value(k, v.as_string()))) {
        Mark m = v.mark;
        v = Node::string(std::string(kRedacted));
        v.mark = m;
      } else {
        redact_rec(v);
      }
    }
  } else if (n.is_list()) {
    for (auto& e : n.elements()) redact_rec(e);
  }
}

}  // namespace

bool is_secret_key(std::string_view path) {
  const std::string leaf = lower_leaf(path);
  static constexpr std::array<std::string_view, 10> kNames = {
      "key", "secret", "password", "passwd", "token", "credential", "credentials", "api_key", "apikey", "auth"};
  static constexpr std::array<std::string_view, 7> kTails = {
      "_key", "_secret", "_password", "_passwd", "_token", "_credential", "_credentials"};
  if (std::find(kNames.begin(), kNames.end(), leaf) != kNames.end()) return true;
  return std::any_of(kTails.begin(), kTails.end(), [&](std::string_view t) { return ends_with(leaf, t); });
}

bool is_secret_value(std::string_view path, std::string_view value) {
  if (is_secret_key(path)) return true;
  return ends_with(lower_leaf(path), "_env") && !value.empty() && !env_name_like(value);
}

std::string redact_override_text(std::string_view arg) {
  size_t i = arg.rfind("++", 0) == 0 ? 2 : (arg.rfind('+', 0) == 0 || arg.rfind('~', 0) == 0) ? 1 : 0;
  size_t eq = arg.find('=', i);
  if (eq == std::string_view::npos) return std::string(arg);
  std::string_view key = arg.substr(i, eq - i);
  if (size_t at = key.find('@'); at != std::string_view::npos) key = key.substr(0, at);
  std::string_view value = arg.substr(eq + 1);
  // Quotes around an env name ('NAME') still name it.
  if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') && value.back() == value.front())
    value = value.substr(1, value.size() - 2);
  if (!is_secret_value(key, value)) return std::string(arg);
  return std::string(arg.substr(0, eq + 1)) + std::string(kRedacted);
}

Node redact_secrets(const Node& node) {
  Node out = node;
  redact_rec(out);
  return out;
}

}  // namespace portrait::cfg
