#include "core/config/override.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <regex>

#include "core/config/secrets.h"
#include "core/error.h"
#include "core/utf8.h"

namespace portrait::cfg {

std::string Override::key_with_prefix() const {
  std::string p = type == Type::kAdd ? "+" : type == Type::kForceAdd ? "++" : type == Type::kDelete ? "~" : "";
  return p + key + (package.empty() ? "" : "@" + package);
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Types an unquoted primitive the way Hydra's grammar does.
Node type_cli_primitive(const std::string& t) {
  std::string l = lower(t);
  if (l == "null") return Node();
  if (l == "true") return Node::boolean(true);
  if (l == "false") return Node::boolean(false);
  static const std::regex kInt(R"([-+]?(?:0|[1-9](?:_?[0-9])*))");
  if (std::regex_match(t, kInt)) {
    std::string s = t;
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    try {
      return Node::integer(std::stoll(s));
    } catch (...) {
      return Node::string(t);
    }
  }
  static const std::regex kFloat(
      R"([-+]?(?:(?:[0-9](?:_?[0-9])*)?\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*\.?)(?:[eE][-+]?[0-9](?:_?[0-9])*)?)");
  if (std::regex_match(t, kFloat) && t.find_first_of(".eE") != std::string::npos) {
    std::string s = t;
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    try {
      return Node::floating(std::stod(s));
    } catch (...) {
    }
  }
  if (l == "inf" || l == "+inf") return Node::floating(INFINITY);
  if (l == "-inf") return Node::floating(-INFINITY);
  if (l == "nan" || l == "+nan" || l == "-nan") return Node::floating(NAN);
  return Node::string(t);
}

class Parser {
 public:
  Parser(const std::string& s, const std::string& arg) : s_(s), arg_(arg) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw UsageError(fmt::format(
        "Error parsing override '{}'\n{} at position {}\n"
        "See https://hydra.cc/docs/advanced/override_grammar/basic for the override grammar; "
        "quote values with special characters, e.g. key='a,b'",
        arg_, what, pos_));
  }

  bool eof() const { return pos_ >= s_.size(); }
  char peek() const { return eof() ? '\0' : s_[pos_]; }
  void skip_ws() {
    while (!eof() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }

  // value := sweep | element ; sweep := element (',' element)+
  std::vector<Node> parse_top() {
    std::vector<Node> vals;
    skip_ws();
    if (eof()) return {Node::string("")};
    vals.push_back(parse_element(/*top=*/true));
    if (!function_name_.empty()) return vals;  // choice(...)/range(...): caller re-parses
    skip_ws();
    while (peek() == ',') {
      ++pos_;
      vals.push_back(parse_element(true));
      skip_ws();
    }
    if (!eof()) fail(fmt::format("unexpected '{}'", peek()));
    return vals;
  }

  Node parse_element(bool top) {
    skip_ws();
    char c = peek();
    Node n;
    if (c == '[') {
      n = parse_list();
    } else if (c == '{') {
      n = parse_dict();
    } else if (c == '\'' || c == '"') {
      n = Node::string(parse_quoted());
      // Hydra concatenates adjacent quoted/unquoted pieces only via interpolation; keep simple.
    } else {
      n = parse_primitive(top);
    }
    skip_ws();
    return n;
  }

  std::string parse_quoted() {
    char q = s_[pos_++];
    std::string out;
    while (true) {
      if (eof()) fail("unterminated quoted string");
      char c = s_[pos_++];
      if (c == '\\' && !eof() && (s_[pos_] == q || s_[pos_] == '\\')) {
        out += s_[pos_++];
        continue;
      }
      if (c == q) break;
      out += c;
    }
    return out;
  }

  // Unquoted text up to a delimiter; `${...}` groups are taken whole (they may hold commas).
  Node parse_primitive(bool top) {
    std::string out;
    size_t start = pos_;
    while (!eof()) {
      char c = s_[pos_];
      if (c == '\\' && pos_ + 1 < s_.size()) {
        char n = s_[pos_ + 1];
        if (std::string("\\,[]{}()=:'\" ").find(n) != std::string::npos) {
          out += n;
          pos_ += 2;
          continue;
        }
        out += c;
        ++pos_;
        continue;
      }
      if (c == '$' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{') {
        out += "${";
        pos_ += 2;
        int depth = 1;
        while (!eof() && depth > 0) {
          char d = s_[pos_++];
          if (d == '{') ++depth;
          if (d == '}') --depth;
          out += d;
        }
        if (depth > 0) fail("unterminated interpolation '${'");
        continue;
      }
      if (c == ',' || c == ']' || c == '}' || c == '[' || c == '{' || c == '\'' || c == '"' || c == ')')
        break;
      if (c == ':' && !top && in_dict_key_) break;
      if (c == '(') {
        // choice(...)/range(...) sweeps or other functions: not a plain string.
        std::string name = out;
        while (!name.empty() && name.back() == ' ') name.pop_back();
        if (!top) fail(fmt::format("function '{}(' is only allowed at the top level", name));
        function_name_ = name;
        ++pos_;
        return Node();
      }
      if (c == '=') fail("unexpected '=' in value (quote it: key='a=b')");
      out += c;
      ++pos_;
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
    if (out.empty() && pos_ == start) fail("empty element");
    if (out.find("${") != std::string::npos) return Node::string(out);
    return type_cli_primitive(out);
  }

  Node parse_list() {
    ++pos_;  // [
    Node n = Node::list();
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return n;
    }
    while (true) {
      n.push_back(parse_element(false));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return n;
      }
      fail("expected ',' or ']' in list");
    }
  }

  Node parse_dict() {
    ++pos_;  // {
    Node n = Node::map();
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return n;
    }
    while (true) {
      skip_ws();
      std::string key;
      while (!eof() && s_[pos_] != ':' && s_[pos_] != '}' && s_[pos_] != ',') key += s_[pos_++];
      while (!key.empty() && key.back() == ' ') key.pop_back();
      if (key.empty() || peek() != ':') fail("expected 'key: value' in dict");
      ++pos_;
      if (n.contains(key)) fail(fmt::format("duplicate key '{}' in dict", key));
      n[key] = parse_element(false);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return n;
      }
      fail("expected ',' or '}' in dict");
    }
  }

  std::string function_name_;
  size_t pos_ = 0;

 private:
  const std::string& s_;
  const std::string& arg_;
  bool in_dict_key_ = false;
};

std::vector<Node> expand_function(Parser& p, const std::string& s, const std::string& arg) {
  std::string name = p.function_name_;
  // Arguments: elements separated by commas up to the closing ')'.
  std::vector<Node> args;
  p.skip_ws();
  if (p.peek() != ')') {
    while (true) {
      args.push_back(p.parse_element(false));
      p.skip_ws();
      if (p.peek() == ',') {
        ++p.pos_;
        continue;
      }
      break;
    }
  }
  if (p.peek() != ')') p.fail("expected ')'");
  ++p.pos_;
  p.skip_ws();
  if (!p.eof()) p.fail("unexpected text after function call");
  if (name == "choice") {
    if (args.empty()) p.fail("choice() needs at least one value");
    return args;
  }
  if (name == "range") {
    if (args.empty() || args.size() > 3) p.fail("range() takes 1 to 3 arguments");
    for (const auto& a : args)
      if (!a.is_number()) p.fail("range() arguments must be numbers");
    double start = 0, stop, step = 1;
    if (args.size() == 1) {
      stop = args[0].as_double();
    } else {
      start = args[0].as_double();
      stop = args[1].as_double();
      if (args.size() == 3) step = args[2].as_double();
    }
    if (step == 0) p.fail("range() step must not be zero");
    bool ints = true;
    for (const auto& a : args) ints = ints && a.is_int();
    std::vector<Node> out;
    if (ints) {  // exact integer steps: int64 bounds do not survive a round trip through double
      const __int128 b = args.size() == 1 ? 0 : args[0].as_int(), e = args[args.size() == 1 ? 0 : 1].as_int(),
                     st = args.size() == 3 ? args[2].as_int() : 1;
      for (__int128 x = b; st > 0 ? x < e : x > e; x += st) {
        out.push_back(Node::integer(int64_t(x)));
        if (out.size() > 100000) p.fail("range() too long");
      }
    } else {
      for (double x = start; step > 0 ? x < stop : x > stop; x += step) {
        out.push_back(Node::floating(x));
        if (out.size() > 100000) p.fail("range() too long");
      }
    }
    // An empty sweep would leave the override without a value.
    if (out.empty()) p.fail("range() gives no values (start must be below stop for a positive step, above it for a negative one)");
    return out;
  }
  throw UsageError(fmt::format("Error parsing override '{}': unknown function '{}'; supported "
                               "sweep functions: choice(), range()",
                               arg, name));
}

}  // namespace

Override parse_override(const std::string& raw) {
  if (const size_t bad = utf8_error_offset(raw); bad != std::string::npos)
    throw UsageError(fmt::format("Error parsing override: byte {} (0x{:02x}) is not valid UTF-8; config values "
                                 "must be UTF-8 text",
                                 bad + 1, static_cast<unsigned char>(raw[bad])));
  Override o;
  // Every message and record shows the redacted text (secrets.h); only `s` holds the value.
  o.text = redact_override_text(raw);
  const std::string& arg = o.text;
  const std::string& s = raw;
  size_t i = 0;
  if (s.rfind("++", 0) == 0) {
    o.type = Override::Type::kForceAdd;
    i = 2;
  } else if (s.rfind("+", 0) == 0) {
    o.type = Override::Type::kAdd;
    i = 1;
  } else if (s.rfind("~", 0) == 0) {
    o.type = Override::Type::kDelete;
    i = 1;
  }
  size_t eq = s.find('=', i);
  std::string key = s.substr(i, eq == std::string::npos ? std::string::npos : eq - i);
  size_t at = key.find('@');
  if (at != std::string::npos) {
    o.package = key.substr(at + 1);
    key = key.substr(0, at);
  }
  static const std::regex kKey(R"([A-Za-z_$][\w\-$]*(?:[./][\w\-$]+)*)");
  if (!std::regex_match(key, kKey)) {
    throw UsageError(fmt::format(
        "Error parsing override '{}'\nmalformed key '{}': overrides look like key=value, "
        "+key=value, ++key=value or ~key (keys are dotted paths such as train.lr or groups "
        "such as model)",
        arg, key));
  }
  o.key = key;
  if (eq == std::string::npos) {
    if (o.type != Override::Type::kDelete) {
      throw UsageError(fmt::format(
          "Error parsing override '{}'\nmissing '=': overrides look like key=value (use "
          "'{}=' for an empty string, ~{} to delete)",
          arg, arg, arg));
    }
    return o;
  }
  o.has_value = true;
  std::string rhs = s.substr(eq + 1);
  Parser p(rhs, arg);
  std::vector<Node> vals = p.parse_top();
  if (!p.function_name_.empty()) {
    // parse_top stopped at '(' of a function call: re-parse its arguments.
    Parser q(rhs, arg);
    // Position the second parser just after the '('.
    q.pos_ = rhs.find('(') + 1;
    q.function_name_ = p.function_name_;
    o.sweep = expand_function(q, rhs, arg);
    o.value = o.sweep.front();
    return o;
  }
  if (vals.size() > 1) {
    o.sweep = vals;
  }
  o.value = vals.front();
  return o;
}

Node parse_override_value(const std::string& text) {
  Override o = parse_override("x=" + text);
  if (o.is_sweep())
    throw UsageError(fmt::format("value '{}' is a sweep; quote it or use a [list]", text));
  return o.value;
}

std::string value_to_override_text(const Node& v) {
  switch (v.kind()) {
    case Node::Kind::kString: {
      const std::string& s = v.as_string();
      Node typed = type_cli_primitive(s);
      bool plain = typed.is_string() && !s.empty() &&
                   s.find_first_of(",[]{}()='\"\\: \t\n\r\v\f") == std::string::npos;  // unquoted text loses its whitespace
      if (plain) return s;
      std::string out = "'";
      for (char c : s) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
      }
      return out + "'";
    }
    case Node::Kind::kList: {
      std::string out = "[";
      for (size_t i = 0; i < v.elements().size(); ++i)
        out += (i ? "," : "") + value_to_override_text(v.elements()[i]);
      return out + "]";
    }
    case Node::Kind::kMap: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        out += (first ? "" : ",") + k + ":" + value_to_override_text(e);
        first = false;
      }
      return out + "}";
    }
    default: return v.scalar_text();
  }
}

}  // namespace portrait::cfg
