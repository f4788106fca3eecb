#include "core/config/interpolate.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <map>
#include <set>

#include "core/config/override.h"
#include "core/error.h"

namespace portrait::cfg {

namespace {

// OmegaConf's bracket syntax in references: ${l[1]}, ${a.b[0].c}, ${a[key]} -> dotted form.
std::string brackets_to_dots(const std::string& ref) {
  std::string out;
  for (char c : ref) {
    if (c == '[') {
      if (!out.empty() && out.back() != '.') out += '.';
    } else if (c != ']') {
      out += c;
    }
  }
  return out;
}

class Resolver {
 public:
  Resolver(Node root, const ResolveContext& ctx) : root_(std::move(root)), ctx_(ctx) {
    if (ctx_.now == 0) ctx_.now = std::time(nullptr);
  }

  Node run() {
    resolve_subtree({});
    return std::move(root_);
  }

  // Resolves `text` as if it were the value at `path` (used for standalone strings).
  Node resolve_text(const std::string& text, const std::vector<std::string>& path) {
    return eval_string(text, path);
  }

 private:
  // Resolves every interpolation in the subtree at `path` in place.
  void resolve_subtree(const std::vector<std::string>& path) {
    Node* n = find_path(root_, join_path(path));
    if (!n) return;
    if (n->is_map()) {
      std::vector<std::string> keys;
      for (const auto& [k, v] : n->items()) keys.push_back(k);
      for (const auto& k : keys) {
        auto p = path;
        p.push_back(k);
        resolve_subtree(p);
      }
    } else if (n->is_list()) {
      size_t count = n->elements().size();
      for (size_t i = 0; i < count; ++i) {
        auto p = path;
        p.push_back(std::to_string(i));
        resolve_subtree(p);
      }
    } else if (n->is_interpolation()) {
      resolve_node(path);
    } else if (n->is_string() && n->as_string().find("\\${") != std::string::npos) {
      Node copy = *n;
      Node r = eval_string(n->as_string(), path);  // only unescapes
      r.mark = copy.mark;
      *find_path(root_, join_path(path)) = r;
    }
  }

  // Resolves the interpolation stored at `path` (and whatever it depends on).
  void resolve_node(const std::vector<std::string>& path) {
    std::string key = join_path(path);
    if (done_.count(key)) return;
    if (std::find(stack_.begin(), stack_.end(), key) != stack_.end()) {
      std::string chain;
      for (const auto& s : stack_) chain += s + " -> ";
      chain += key;
      throw ConfigError(fmt::format(
          "Recursive interpolation detected: {}\n    full_key: {}\n    object_type=dict\n"
          "Break the cycle by giving one of these keys a literal value.",
          chain, stack_.front()));
    }
    Node* n = find_path(root_, key);
    if (!n || !n->is_interpolation()) return;
    stack_.push_back(key);
    Mark mark = n->mark;
    std::string text = n->as_string();
    Node r = eval_string(text, path);
    if (r.mark.file.empty()) r.mark = mark;
    stack_.pop_back();
    Node* target = find_path(root_, key);  // the tree may have changed shape; look again
    if (target) *target = std::move(r);
    done_.insert(key);
  }

  [[noreturn]] void fail(const std::vector<std::string>& path, const std::string& msg) const {
    std::string key = join_path(path);
    throw ConfigError(fmt::format("{}\n    full_key: {}\n    object_type=dict", msg,
                                  key.empty() ? "<root>" : key));
  }

  // Looks up a reference (absolute or relative to `path`) and returns its resolved value.
  Node lookup(const std::string& ref, const std::vector<std::string>& path) {
    std::vector<std::string> target;
    std::string rest = ref;
    if (!ref.empty() && ref[0] == '.') {
      size_t dots = 0;
      while (dots < ref.size() && ref[dots] == '.') ++dots;
      // One dot = the node's parent container; each extra dot goes one level up.
      if (dots > path.size()) fail(path, fmt::format("Interpolation '${{{}}}' goes above the config root", ref));
      target.assign(path.begin(), path.end() - static_cast<long>(dots));
      rest = ref.substr(dots);
    }
    for (const auto& part : split_path(brackets_to_dots(rest))) target.push_back(part);
    // An intermediate interpolation (x: ${model}, then ${x.d}) must be resolved first.
    for (size_t k = 1; k < target.size(); ++k) {
      std::vector<std::string> prefix(target.begin(), target.begin() + static_cast<long>(k));
      const Node* p = find_path(root_, join_path(prefix));
      if (!p) break;
      if (p->is_interpolation()) resolve_node(prefix);
    }
    std::string key = join_path(target);
    const Node* n = find_path(root_, key);
    if (!n) fail(path, fmt::format("Interpolation key '{}' not found", ref));
    if (n->is_interpolation()) {
      resolve_node(target);
      n = find_path(root_, key);
    } else if (!n->is_scalar()) {
      resolve_subtree(target);
      n = find_path(root_, key);
    }
    return *n;
  }

  // Splits resolver arguments at top-level commas (not inside ${...} or quotes).
  std::vector<std::string> split_args(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    int depth = 0;
    char quote = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (quote) {
        if (c == quote) quote = 0;
        cur += c;
        continue;
      }
      if (c == '\'' || c == '"') quote = c;
      if (c == '{') ++depth;
      if (c == '}') --depth;
      if (c == ',' && depth == 0) {
        out.push_back(cur);
        cur.clear();
        continue;
      }
      cur += c;
    }
    out.push_back(cur);
    for (auto& a : out) {
      size_t b = a.find_first_not_of(" \t"), e = a.find_last_not_of(" \t");
      a = b == std::string::npos ? "" : a.substr(b, e - b + 1);
    }
    return out;
  }

  Node eval_arg(const std::string& a, const std::vector<std::string>& path) {
    if (a.size() >= 2 && (a[0] == '\'' || a[0] == '"') && a.back() == a[0])
      return Node::string(a.substr(1, a.size() - 2));
    if (a.find("${") != std::string::npos) return eval_string(a, path);
    return parse_override_value(a);
  }

  // Evaluates the inside of one ${...}.
  Node eval_expr(const std::string& expr, const std::vector<std::string>& path) {
    size_t colon = expr.find(':');
    size_t brace = expr.find("${");
    bool is_resolver = colon != std::string::npos && (brace == std::string::npos || colon < brace);
    if (!is_resolver) {
      std::string ref = expr;
      if (ref.find("${") != std::string::npos) ref = eval_string(ref, path).scalar_text();
      return lookup(ref, path);
    }
    std::string name = expr.substr(0, colon);
    std::string args_text = expr.substr(colon + 1);
    if (name == "now") {
      std::tm tm{};
      localtime_r(&ctx_.now, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, args_text.c_str(), &tm);
      return Node::string(std::string(buf, n));
    }
    auto args = split_args(args_text);
    if (name == "oc.env") {
      const char* v = std::getenv(args[0].c_str());
      if (v) return Node::string(v);
      if (args.size() > 1) {
        Node d = eval_arg(args[1], path);
        // OmegaConf keeps string defaults as strings; null stays null.
        return d.is_null() ? d : Node::string(d.scalar_text());
      }
      fail(path, fmt::format("Environment variable '{}' not found (set it, or give a default: "
                             "${{oc.env:{},default}})",
                             args[0], args[0]));
    }
    if (name == "oc.select") {
      std::string ref = args[0];
      std::vector<std::string> target;
      const Node* n = find_path(root_, brackets_to_dots(ref));
      if (n) return lookup(ref, path);
      return args.size() > 1 ? eval_arg(args[1], path) : Node();
    }
    if (name == "hydra") {
      if (!ctx_.hydra) fail(path, "Interpolation '${hydra:...}' used outside a Hydra job");
      const Node* n = find_path(*ctx_.hydra, args_text);
      if (!n) fail(path, fmt::format("Interpolation key 'hydra.{}' not found", args_text));
      if (n->is_interpolation()) return Node::string(resolve_string(n->as_string(), *ctx_.hydra, ctx_));
      return *n;
    }
    fail(path, fmt::format("Unsupported interpolation type '{}' (supported: oc.env, "
                           "oc.select, now, hydra, or a key path)",
                           name));
  }

  // Evaluates a string with interpolations. A string that is exactly one ${...} takes the
  // referenced value's type; anything else becomes a string.
  Node eval_string(const std::string& s, const std::vector<std::string>& path) {
    std::string out;
    std::vector<Node> pieces;
    bool single = false;
    size_t i = 0;
    size_t n_interp = 0;
    bool has_text = false;
    Node single_value;
    while (i < s.size()) {
      if (s[i] == '\\') {
        // OmegaConf's grammar: backslashes matter only before "${". An odd run escapes the
        // interpolation (\${a} is the text ${a}); an even run is that many escaped
        // backslashes followed by a real interpolation (\\${a} is a backslash + a's value).
        size_t j = i;
        while (j < s.size() && s[j] == '\\') ++j;
        size_t run = j - i;
        bool before_interp = j + 1 < s.size() && s[j] == '$' && s[j + 1] == '{';
        out.append(before_interp ? run / 2 : run, '\\');
        has_text = true;
        i = j;
        if (before_interp && run % 2 == 1) {
          out += "${";
          i += 2;
        }
        continue;
      }
      if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
        int depth = 0;
        size_t j = i;
        for (; j < s.size(); ++j) {
          if (s[j] == '{') ++depth;
          if (s[j] == '}' && --depth == 0) break;
        }
        if (j >= s.size()) fail(path, fmt::format("Unterminated interpolation in '{}'", s));
        std::string expr = s.substr(i + 2, j - i - 2);
        Node v = eval_expr(expr, path);
        ++n_interp;
        single_value = v;
        if (v.is_missing()) {
          out += "???";
        } else if (!v.is_scalar()) {
          out += "<" + std::string(v.kind_name()) + ">";
        } else {
          out += v.scalar_text();
        }
        i = j + 1;
        continue;
      }
      out += s[i++];
      has_text = true;
    }
    single = n_interp == 1 && !has_text;
    if (single) return single_value;
    if (n_interp > 0 && !single) {
      // A dict or list cannot be spliced into text.
      // (Detected by the placeholder; report it clearly.)
      if (out.find("<dict>") != std::string::npos || out.find("<list>") != std::string::npos)
        fail(path, fmt::format("String interpolation '{}' refers to a dict or list", s));
    }
    return Node::string(out);
  }

  Node root_;
  ResolveContext ctx_;
  std::vector<std::string> stack_;
  std::set<std::string> done_;
};

}  // namespace

Node resolve(const Node& root, const ResolveContext& ctx) { return Resolver(root, ctx).run(); }

std::string resolve_string(const std::string& text, const Node& root, const ResolveContext& ctx) {
  Resolver r(root, ctx);
  return r.resolve_text(text, {}).scalar_text();
}

}  // namespace portrait::cfg
