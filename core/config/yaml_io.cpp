#include "core/config/yaml_io.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fmt/format.h>
#include <optional>
#include <string_view>
#include <regex>
#include <set>

#include "core/config/secrets.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/utf8.h"

namespace portrait::cfg {

namespace {

std::string without_underscores(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  return s;
}

// PyYAML's construct_yaml_int on text its int resolver matched: 0b binary, 0x hex, a leading
// 0 octal, a:b:c base 60. Out of int64 range (Python has big ints): nullopt, kept a string.
std::optional<int64_t> yaml11_int(const std::string& text) {
  std::string v = without_underscores(text);
  int64_t sign = 1;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    if (v[0] == '-') sign = -1;
    v = v.substr(1);
  }
  try {
    if (v == "0") return 0;
    if (v.rfind("0b", 0) == 0) return sign * static_cast<int64_t>(std::stoull(v.substr(2), nullptr, 2));
    if (v.rfind("0x", 0) == 0) return sign * static_cast<int64_t>(std::stoull(v.substr(2), nullptr, 16));
    if (v[0] == '0') return sign * static_cast<int64_t>(std::stoull(v, nullptr, 8));
    if (v.find(':') != std::string::npos) {
      int64_t value = 0;
      size_t start = 0;
      while (true) {
        size_t colon = v.find(':', start);
        value = value * 60 + std::stoll(v.substr(start, colon - start));
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
      return sign * value;
    }
    return sign * std::stoll(v);
  } catch (...) {
    return std::nullopt;
  }
}

// PyYAML's construct_yaml_float (plus OmegaConf's 1e-3 form, which std::stod reads too).
std::optional<double> yaml11_float(const std::string& text) {
  std::string v = without_underscores(text);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  double sign = 1;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    if (v[0] == '-') sign = -1;
    v = v.substr(1);
  }
  if (v == ".inf") return sign * INFINITY;
  if (v == ".nan") return NAN;
  try {
    if (v.find(':') != std::string::npos) {
      double value = 0;
      size_t start = 0;
      while (true) {
        size_t colon = v.find(':', start);
        value = value * 60 + std::stod(v.substr(start, colon - start));
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
      return sign * value;
    }
    size_t used = 0;
    double d = std::stod(v, &used);
    if (used != v.size()) return std::nullopt;
    return sign * d;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

Node type_plain_yaml_scalar(const std::string& t) {
  static const std::set<std::string> kNull = {"", "~", "null", "Null", "NULL"};
  // PyYAML's bool resolver (y/Y/n/N are YAML 1.1 bools in the spec, not in PyYAML).
  static const std::set<std::string> kTrue = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const std::set<std::string> kFalse = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  if (kNull.count(t)) return Node();
  if (kTrue.count(t)) return Node::boolean(true);
  if (kFalse.count(t)) return Node::boolean(false);
  // The resolvers in PyYAML's order for a leading digit, sign or dot: its float, its int,
  // then the float OmegaConf adds (exponent without a dot: 1e-3). Timestamps are not
  // resolved (OmegaConf removes that resolver), so dates stay strings.
  static const std::regex kPyFloat(
      R"([-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?)"
      R"(|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))");
  static const std::regex kInt(
      R"([-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)"
      R"(|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)");
  static const std::regex kOmegaFloat(
      R"([-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+)");
  if (t.empty() || std::string_view("-+0123456789.").find(t[0]) == std::string_view::npos)
    return Node::string(t);
  if (std::regex_match(t, kPyFloat)) {
    if (auto d = yaml11_float(t)) return Node::floating(*d);
  } else if (std::regex_match(t, kInt)) {
    if (auto i = yaml11_int(t)) return Node::integer(*i);
  } else if (std::regex_match(t, kOmegaFloat)) {
    if (auto d = yaml11_float(t)) return Node::floating(*d);
  }
  return Node::string(t);
}

namespace {

/// A scalar's text as UTF-8. The input is checked to be UTF-8 (load_yaml_string), but yaml-cpp
/// decodes the escapes "\N" and "\_" of double-quoted strings into the single bytes 0x85 and
/// 0xA0 (their Latin-1 codes) instead of U+0085 / U+00A0 in UTF-8; those bytes are re-encoded
/// here. Anything else that is not UTF-8 is an error at the scalar's line.
std::string utf8_scalar(const YAML::Node& n, const std::string& origin) {
  const std::string& s = n.Scalar();
  if (valid_utf8(s)) return s;
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t bad = utf8_error_offset(std::string_view(s).substr(i));
    if (bad == std::string_view::npos) {
      out.append(s, i, std::string::npos);
      break;
    }
    out.append(s, i, bad);
    const auto c = static_cast<unsigned char>(s[i + bad]);
    if (c != 0x85 && c != 0xA0)
      throw ConfigError(fmt::format("{}:{}: malformed YAML: a scalar that is not UTF-8 (byte 0x{:02x})", origin,
                                    n.Mark().line + 1, c));
    out += static_cast<char>(0xC2);
    out += static_cast<char>(c);
    i += bad + 1;
  }
  return out;
}

Node convert(const YAML::Node& y, const std::string& origin) {
  Mark mark{origin, y.Mark().line >= 0 ? y.Mark().line + 1 : 0};
  Node out;
  switch (y.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out = Node();
      break;
    case YAML::NodeType::Scalar: {
      const std::string& tag = y.Tag();
      if (tag == "?") {
        out = type_plain_yaml_scalar(utf8_scalar(y, origin));
      } else if (tag == "tag:yaml.org,2002:int" || tag == "!!int") {
        out = type_plain_yaml_scalar(utf8_scalar(y, origin));
        if (!out.is_int())
          throw ConfigError(fmt::format("{}: malformed YAML: '{}' tagged !!int is not an integer",
                                        mark.str(), utf8_scalar(y, origin)));
      } else if (tag == "tag:yaml.org,2002:float" || tag == "!!float") {
        out = type_plain_yaml_scalar(utf8_scalar(y, origin));
        if (out.is_int()) out = Node::floating(static_cast<double>(out.as_int()));
        if (!out.is_float())
          throw ConfigError(fmt::format("{}: malformed YAML: '{}' tagged !!float is not a number",
                                        mark.str(), utf8_scalar(y, origin)));
      } else if (tag == "tag:yaml.org,2002:bool" || tag == "!!bool") {
        out = type_plain_yaml_scalar(utf8_scalar(y, origin));
        if (!out.is_bool())
          throw ConfigError(fmt::format("{}: malformed YAML: '{}' tagged !!bool is not a bool",
                                        mark.str(), utf8_scalar(y, origin)));
      } else {
        out = Node::string(utf8_scalar(y, origin));  // "!" = quoted, or !!str
      }
      break;
    }
    case YAML::NodeType::Sequence:
      out = Node::list();
      for (const auto& e : y) out.push_back(convert(e, origin));
      break;
    case YAML::NodeType::Map: {
      out = Node::map();
      for (const auto& kv : y) {
        if (!kv.first.IsScalar())
          throw ConfigError(fmt::format("{}:{}: malformed YAML: only scalar keys are supported",
                                        origin, kv.first.Mark().line + 1));
        std::string key = utf8_scalar(kv.first, origin);
        // A plain key is typed like a value (PyYAML): `1: one` is the int key 1, `0x10: a`
        // the int key 16, `1.5: a` the float key 1.5, `1e3: a` the float key 1000.0. The key
        // keeps its canonical text; the map remembers its type.
        Node::Kind key_kind = Node::Kind::kString;
        if (kv.first.Tag() == "?") {
          Node typed = type_plain_yaml_scalar(key);
          if (typed.is_int() || typed.is_bool() || typed.is_float()) {
            key = typed.scalar_text();
            key_kind = typed.kind();
          }
        }
        if (out.contains(key))
          throw ConfigError(fmt::format("{}:{}: malformed YAML: duplicate key '{}'", origin,
                                        kv.first.Mark().line + 1, key));
        Node v = convert(kv.second, origin);
        if (v.mark.line == 0) v.mark = Mark{origin, kv.first.Mark().line + 1};
        out[key] = std::move(v);
        out.set_key_kind(key, key_kind);
      }
      break;
    }
  }
  out.mark = mark;
  return out;
}

}  // namespace

Node load_yaml_string(const std::string& text, const std::string& origin) {
  // YAML is Unicode text; yaml-cpp takes other bytes as they come (or a leading FE FF as a
  // UTF-16 byte order mark), and such a value could not be written back and read as itself.
  // The same for characters YAML does not allow in a stream (c-printable: tab, LF, CR,
  // U+0020-7E, U+0085, U+00A0-D7FF, U+E000-FFFD, U+10000 and up): yaml-cpp reads a raw NUL
  // followed by '_' as the escape "\_" (U+00A0) of a single byte 0xA0, which is not UTF-8.
  // Inside double quotes such characters are written as escapes ("\x1d"), which load fine.
  auto where = [&](size_t at) {
    const size_t line_start = at == 0 ? std::string::npos : text.rfind('\n', at - 1);
    const size_t col = line_start == std::string::npos ? at : at - line_start - 1;
    const auto line = std::count(text.begin(), text.begin() + std::ptrdiff_t(at), '\n') + 1;
    return fmt::format("{}:{}:{}", origin, line, col + 1);
  };
  if (const size_t bad = utf8_error_offset(text); bad != std::string::npos)
    throw ConfigError(fmt::format("{}: not valid UTF-8 (byte 0x{:02x}); YAML files must be UTF-8 text: re-save it "
                                  "as UTF-8",
                                  where(bad), static_cast<unsigned char>(text[bad])));
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    const bool printable = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0x7E) || cp == 0x85 ||
                           (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
    if (!printable)
      throw ConfigError(fmt::format("{}: character U+{:04X} is not allowed in YAML text; inside a double-quoted "
                                    "string write it as an escape (\"\\u{:04x}\")",
                                    where(i), cp, cp));
    i += len;
  }
  YAML::Node y;
  try {
    y = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}:{}: malformed YAML: {}", origin, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
  }
  Node n = convert(y, origin);
  if (n.is_null()) {
    n = Node::map();
    n.mark = Mark{origin, 0};
  }
  return n;
}

Node load_yaml_file(const std::filesystem::path& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::exception& e) {
    throw ConfigError(e.what());
  }
  return load_yaml_string(text, path.string());
}

namespace {

// PyYAML's timestamp resolver: OmegaConf does not load these as dates, but PyYAML (and so
// anyone reading `--cfg job` output with yaml.safe_load) does unless they are quoted.
bool looks_like_timestamp(const std::string& s) {
  static const std::regex kTimestamp(
      R"([0-9]{4}-[0-9]{2}-[0-9]{2})"
      R"(|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?)"
      R"((?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)");
  return !s.empty() && s[0] >= '0' && s[0] <= '9' && std::regex_match(s, kTimestamp);
}

// Strings Python's int()/float() accept, which OmegaConf's dumper quotes ('inf', '.5e3').
bool looks_like_python_number(const std::string& s) {
  static const std::regex kNumber(
      R"([-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?|[-+]?(?:inf|infinity|nan))",
      std::regex::icase);
  return std::regex_match(s, kNumber);
}

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  if (!type_plain_yaml_scalar(s).is_string()) return true;  // would re-read as another type
  if (looks_like_timestamp(s) || looks_like_python_number(s)) return true;
  // OmegaConf's dumper also quotes the YAML 1.1 spec's one-letter bools.
  if (s == "y" || s == "Y" || s == "n" || s == "N") return true;
  static const std::string kLeading = "?:,[]{}#&*!|>'\"%@`";
  if (kLeading.find(s[0]) != std::string::npos) return true;
  // A leading '-' is an indicator only before a space (PyYAML writes -x plain), and
  // "---" starts a document.
  if (s[0] == '-' && (s.size() == 1 || s[1] == ' ' || s[1] == '\t' || s.rfind("---", 0) == 0)) return true;
  if (s.front() == ' ' || s.back() == ' ') return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
  if (s.back() == ':') return true;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

std::string quote(const std::string& s) {
  bool control = false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) control = true;
  if (!control) {
    std::string out = "'";
    for (char c : s) {
      if (c == '\'') out += "''";
      else out += c;
    }
    return out + "'";
  }
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string scalar_yaml(const Node& n) {
  switch (n.kind()) {
    case Node::Kind::kNull: return "null";
    case Node::Kind::kFloat: {
      double d = n.as_double();
      if (std::isnan(d)) return ".nan";
      if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
      return n.scalar_text();
    }
    case Node::Kind::kString: {
      const std::string& s = n.as_string();
      return needs_quotes(s) ? quote(s) : s;
    }
    default: return n.scalar_text();
  }
}

std::string key_yaml(const std::string& k) { return needs_quotes(k) ? quote(k) : k; }

void emit(const Node& n, int indent, std::string& out);

void emit_value_after_key(const Node& v, int indent, std::string& out) {
  if (v.is_map() && v.size() > 0) {
    out += "\n";
    emit(v, indent + 2, out);
  } else if (v.is_list() && v.size() > 0) {
    out += "\n";
    emit(v, indent, out);  // PyYAML style: list items at the key's indent
  } else if (v.is_map()) {
    out += " {}\n";
  } else if (v.is_list()) {
    out += " []\n";
  } else {
    out += " " + scalar_yaml(v) + "\n";
  }
}

void emit(const Node& n, int indent, std::string& out) {
  std::string pad(indent, ' ');
  if (n.is_map()) {
    for (const auto& [k, v] : n.items()) {
      const std::string key = n.key_kind(k) != Node::Kind::kString ? k : key_yaml(k);
      if (key.size() <= 1000) {
        out += pad + key + ":";
        emit_value_after_key(v, indent, out);
        continue;
      }
      // YAML limits implicit keys ("key: value") to 1024 characters, so a longer key would
      // not load back: write it as an explicit key ("? key" then ": value").
      out += pad + "? " + key + "\n" + pad + ":";
      if (v.is_scalar() || v.size() == 0) {
        emit_value_after_key(v, indent, out);
      } else {
        out += "\n";
        emit(v, indent + 2, out);
      }
    }
  } else if (n.is_list()) {
    for (const auto& e : n.elements()) {
      if (e.is_map() && e.size() > 0) {
        // First key on the dash line, the rest aligned under it.
        std::string sub;
        emit(e, indent + 2, sub);
        out += pad + "- " + sub.substr(indent + 2);
      } else if (e.is_list() && e.size() > 0) {
        std::string sub;
        emit(e, indent + 2, sub);
        out += pad + "- " + sub.substr(indent + 2);
      } else if (e.is_map()) {
        out += pad + "- {}\n";
      } else if (e.is_list()) {
        out += pad + "- []\n";
      } else {
        out += pad + "- " + scalar_yaml(e) + "\n";
      }
    }
  } else {
    out += pad + scalar_yaml(n) + "\n";
  }
}

}  // namespace

// Secret values are written as <redacted> (secrets.h): every config file Portrait writes and
// every config it prints comes through here.
std::string to_yaml(const Node& node) {
  if (node.is_map() && node.size() == 0) return "{}\n";
  if (node.is_list() && node.size() == 0) return "[]\n";
  std::string out;
  emit(redact_secrets(node), 0, out);
  return out;
}

}  // namespace portrait::cfg
