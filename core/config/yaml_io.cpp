#include "core/config/yaml_io.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <regex>
#include <set>

#include "core/error.h"
#include "core/fs.h"

namespace portrait::cfg {

namespace {

bool parse_decimal_int(std::string s, int64_t& out) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return false;
  size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (i >= s.size()) return false;
  for (size_t j = i; j < s.size(); ++j)
    if (s[j] < '0' || s[j] > '9') return false;
  try {
    out = std::stoll(s);
  } catch (...) {
    return false;  // out of range: keep as string
  }
  return true;
}

}  // namespace

Node type_plain_yaml_scalar(const std::string& t) {
  static const std::set<std::string> kNull = {"", "~", "null", "Null", "NULL"};
  static const std::set<std::string> kTrue = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                              "on",   "On",   "ON",   "y",   "Y"};
  static const std::set<std::string> kFalse = {"false", "False", "FALSE", "no", "No", "NO",
                                               "off",   "Off",   "OFF",   "n",  "N"};
  // y/Y/n/N are YAML 1.1 bools in the spec but PyYAML's resolver does not treat them so.
  if (kNull.count(t)) return Node();
  if (kTrue.count(t) && t != "y" && t != "Y") return Node::boolean(true);
  if (kFalse.count(t) && t != "n" && t != "N") return Node::boolean(false);
  int64_t i;
  if (parse_decimal_int(t, i)) return Node::integer(i);
  static const std::regex kHex("[-+]?0x[0-9a-fA-F_]+");
  if (std::regex_match(t, kHex)) {
    std::string s = t;
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    try {
      return Node::integer(std::stoll(s, nullptr, 16));
    } catch (...) {
    }
  }
  // PyYAML floats, plus OmegaConf's exponent-without-dot form (1e-3).
  static const std::regex kFloat(
      R"([-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+)");
  if (t != "." && std::regex_match(t, kFloat)) {
    std::string s = t;
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    try {
      return Node::floating(std::stod(s));
    } catch (...) {
    }
  }
  static const std::regex kInf(R"([-+]?\.(?:inf|Inf|INF))");
  if (std::regex_match(t, kInf))
    return Node::floating(t[0] == '-' ? -INFINITY : INFINITY);
  static const std::regex kNan(R"(\.(?:nan|NaN|NAN))");
  if (std::regex_match(t, kNan)) return Node::floating(NAN);
  return Node::string(t);
}

namespace {

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
        out = type_plain_yaml_scalar(y.Scalar());
      } else if (tag == "tag:yaml.org,2002:int" || tag == "!!int") {
        out = type_plain_yaml_scalar(y.Scalar());
        if (!out.is_int())
          throw ConfigError(fmt::format("{}: malformed YAML: '{}' tagged !!int is not an integer",
                                        mark.str(), y.Scalar()));
      } else if (tag == "tag:yaml.org,2002:float" || tag == "!!float") {
        out = type_plain_yaml_scalar(y.Scalar());
        if (out.is_int()) out = Node::floating(static_cast<double>(out.as_int()));
        if (!out.is_float())
          throw ConfigError(fmt::format("{}: malformed YAML: '{}' tagged !!float is not a number",
                                        mark.str(), y.Scalar()));
      } else if (tag == "tag:yaml.org,2002:bool" || tag == "!!bool") {
        out = type_plain_yaml_scalar(y.Scalar());
        if (!out.is_bool())
          throw ConfigError(fmt::format("{}: malformed YAML: '{}' tagged !!bool is not a bool",
                                        mark.str(), y.Scalar()));
      } else {
        out = Node::string(y.Scalar());  // "!" = quoted, or !!str
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
        std::string key = kv.first.Scalar();
        if (out.contains(key))
          throw ConfigError(fmt::format("{}:{}: malformed YAML: duplicate key '{}'", origin,
                                        kv.first.Mark().line + 1, key));
        Node v = convert(kv.second, origin);
        if (v.mark.line == 0) v.mark = Mark{origin, kv.first.Mark().line + 1};
        out[key] = std::move(v);
      }
      break;
    }
  }
  out.mark = mark;
  return out;
}

}  // namespace

Node load_yaml_string(const std::string& text, const std::string& origin) {
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

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  if (!type_plain_yaml_scalar(s).is_string()) return true;  // would re-read as another type
  static const std::string kLeading = "-?:,[]{}#&*!|>'\"%@`";
  if (kLeading.find(s[0]) != std::string::npos) return true;
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
      const std::string key = key_yaml(k);
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

std::string to_yaml(const Node& node) {
  if (node.is_map() && node.size() == 0) return "{}\n";
  if (node.is_list() && node.size() == 0) return "[]\n";
  std::string out;
  emit(node, 0, out);
  return out;
}

}  // namespace portrait::cfg
