#include "core/config/defaults_list.h"

#include <algorithm>
#include <fmt/format.h>
#include <optional>
#include <set>

#include "core/config/section.h"
#include "core/error.h"

namespace portrait::cfg {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}
std::string strip_slash(const std::string& s) { return !s.empty() && s[0] == '/' ? s.substr(1) : s; }
std::string dir_of(const std::string& p) {
  size_t i = p.rfind('/');
  return i == std::string::npos ? "" : p.substr(0, i);
}
std::string base_of(const std::string& p) {
  size_t i = p.rfind('/');
  return i == std::string::npos ? p : p.substr(i + 1);
}
std::string dots(std::string s) {
  std::replace(s.begin(), s.end(), '/', '.');
  return s;
}
std::string option_text(const Node& v) {
  if (v.is_null()) return "null";
  if (!v.is_list()) return v.scalar_text();
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v.elements()[i].scalar_text();
  return s + "]";
}

// One entry of a defaults list (Hydra's GroupDefault / ConfigDefault / `_self_`), with the
// path and package arithmetic of hydra/core/default_element.py.
struct InputDefault {
  enum class Kind { kSelf, kGroup, kConfig };
  Kind kind = Kind::kConfig;
  std::string path;  ///< kGroup: the group as written ("db", "/server"); kConfig: the config path
  Node value;        ///< kGroup: an option (string), options (list) or null
  std::optional<std::string> package;  ///< "@pkg" as written
  bool optional = false, override_ = false, external_append = false, primary = false;
  std::string parent_base_dir, parent_package;
  std::optional<std::string> header;  ///< the file's "# @package" header
  std::string origin;                 ///< where it was written, for errors

  bool is_self() const { return kind == Kind::kSelf; }
  bool is_group() const { return kind == Kind::kGroup; }
  bool is_options() const { return is_group() && value.is_list(); }
  void update_parent(const std::string& base_dir, const std::string& pkg) {
    parent_base_dir = base_dir;
    parent_package = pkg;
  }
  std::string group_path() const {
    bool absolute = !path.empty() && path[0] == '/';
    std::string group = is_group() ? strip_slash(path) : dir_of(strip_slash(path));
    if (absolute || parent_base_dir.empty()) return group;
    if (group.empty()) return parent_base_dir;
    return parent_base_dir + "/" + group;
  }
  std::optional<std::string> name() const {
    if (!is_group()) return base_of(strip_slash(path));
    if (value.is_string()) return value.as_string();
    return std::nullopt;
  }
  std::string config_path() const {
    std::string g = group_path(), n = name().value_or("");
    return g.empty() ? n : g + "/" + n;
  }
  std::string relative_group_path() const {
    return is_group() ? strip_slash(path) : dir_of(strip_slash(path));
  }
  std::string final_package(bool use_header = true) const {
    std::optional<std::string> pkg = package;
    if (!pkg && use_header && header && *header != "_group_") pkg = header;
    std::string p = pkg ? *pkg : dots(relative_group_path());
    if (auto n = name()) {
      for (size_t at; (at = p.find("_name_")) != std::string::npos;) p.replace(at, 6, *n);
    }
    if (p == "_here_") p = "";
    std::string ret = parent_package.empty() ? p : p.empty() ? parent_package : parent_package + "." + p;
    size_t g = ret.rfind("_global_");
    if (g == std::string::npos) return ret;
    size_t start = std::min(ret.size(), g + 8 + (g + 8 < ret.size() ? 1 : 0));
    return ret.substr(start);
  }
  /// "db", or "db@pkg" when the option does not land at the group's default package.
  std::string override_key() const {
    std::string key = group_path(), fin = final_package(false);
    if (dots(key) != fin && !fin.empty()) key += "@" + fin;
    return key;
  }
};

// The command line's group overrides plus the `override` entries met so far (Hydra's
// Overrides class): what each group is set to, what was deleted, what was chosen.
class Overrides {
 public:
  struct Choice {
    Node value;
    bool external = false;
    std::string containing;  ///< config holding the `override` entry ("" for the command line)
    std::string text;        ///< the command-line argument
    std::optional<std::string> relocate;  ///< legacy `group@pkg=option` moving the group
    bool used = false;
  };
  struct Deletion {
    std::optional<std::string> name;
    bool used = false;
  };

  Overrides(const std::vector<Override>& cli, const std::set<std::string>& relocated) {
    for (const auto& o : cli) {
      std::string key = o.package.empty() ? o.key : o.key + "@" + o.package;
      Node v = normalise(o);
      if (o.type == Override::Type::kDelete) {
        deletions_[key] = Deletion{o.has_value ? std::optional(o.value.scalar_text()) : std::nullopt};
      } else if (o.type == Override::Type::kAdd) {
        InputDefault a;
        a.kind = InputDefault::Kind::kGroup;
        a.path = o.key;
        a.value = v;
        if (!o.package.empty()) a.package = o.package;
        a.external_append = true;
        a.origin = "<command line: " + o.text + ">";
        appends.push_back(a);
      } else if (relocated.count(key)) {
        add(o.key, Choice{v, true, "", o.text, o.package});
      } else {
        add(key, Choice{v, true, "", o.text, std::nullopt});
      }
    }
  }

  std::vector<InputDefault> appends;  ///< `+group=option`, appended to the primary's list
  std::map<std::string, Node> known;  ///< override key -> chosen option(s)
  std::map<std::string, std::set<std::string>> known_per_group;

  void add_override(const std::string& containing, const InputDefault& d) {
    std::string key = d.override_key();
    if (!choices_.count(key)) add(key, Choice{d.value, false, containing, "", std::nullopt});
  }
  bool is_overridden(const InputDefault& d) const {
    return d.is_group() && choices_.count(d.override_key());
  }
  void override_default_option(InputDefault& d) {
    Choice& c = choices_.at(d.override_key());
    d.value = c.value;
    if (c.relocate) d.package = c.relocate;
    c.used = true;
  }
  void set_known_choice(const InputDefault& d) {
    if (!d.is_group()) return;
    std::string key = d.override_key();
    Node v = d.name() ? Node::string(*d.name()) : Node();
    auto [it, fresh] = known.emplace(key, v);
    if (!fresh && !(it->second == v)) {
      throw ConfigError(fmt::format("Multiple values for {}. To override a value use 'override {}: {}'",
                                    key, key, option_text(it->second)));
    }
    known_per_group[d.group_path()].insert(key);
  }
  bool is_deleted(const InputDefault& d) {
    if (!d.is_group()) return false;
    auto it = deletions_.find(d.override_key());
    if (it == deletions_.end()) return false;
    const auto& want = it->second.name;
    if (want && *want != d.name().value_or("null")) {
      throw ConfigError(fmt::format("Could not delete from config. The value of '{}' is {} and not {}.",
                                    it->first, option_text(d.value), *want));
    }
    it->second.used = true;
    return true;
  }
  /// Unused `group@pkg=option` arguments whose group is in the defaults list at its own
  /// package: composed again as relocations (this project's extension; Hydra refuses them).
  std::set<std::string> legacy_relocations() const {
    std::set<std::string> out;
    for (const auto& [key, c] : choices_) {
      size_t at = key.find('@');
      if (c.used || !c.external || at == std::string::npos) continue;
      std::string group = key.substr(0, at);
      auto it = known_per_group.find(group);
      if (it != known_per_group.end() && it->second.count(group) && !choices_.count(group)) out.insert(key);
    }
    return out;
  }
  void ensure_used() const {
    for (const auto& key : order_) {
      const Choice& c = choices_.at(key);
      if (c.used) continue;
      std::string group = key.substr(0, key.find('@'));
      auto it = known_per_group.find(group);
      std::vector<std::string> near;
      if (it != known_per_group.end()) near.assign(it->second.begin(), it->second.end());
      std::string msg;
      if (near.size() > 1) {
        std::string list;
        for (size_t i = 0; i < near.size(); ++i) list += (i ? ", " : "") + near[i];
        msg = fmt::format("Could not override '{}'.\nDid you mean to override one of {}?", key, list);
      } else if (near.size() == 1) {
        msg = fmt::format("Could not override '{}'.\nDid you mean to override {}?", key, near[0]);
      } else {
        msg = fmt::format("Could not override '{}'. No match in the defaults list.", key);
      }
      if (!c.containing.empty()) msg = fmt::format("In '{}': {}", c.containing, msg);
      if (c.external) {
        msg += fmt::format("\nTo append to your default list use +{}",
                           c.text.substr(c.text.find_first_not_of("+~")));
      }
      throw ConfigError(msg);
    }
    for (const auto& [key, d] : deletions_) {
      if (!d.used) {
        throw ConfigError(fmt::format("Could not delete '{}'. No match in the defaults list",
                                      d.name ? key + "=" + *d.name : key));
      }
    }
  }

 private:
  static Node normalise(const Override& o) {
    if (!o.has_value || o.value.is_null()) return Node();
    if (o.value.is_list()) {
      Node l = Node::list();
      for (const auto& e : o.value.elements()) {
        if (!e.is_scalar() || e.is_null())
          throw ConfigError(fmt::format("Could not override '{}': a multi-select list holds option "
                                        "names, got {}",
                                        o.key, e.kind_name()));
        l.push_back(Node::string(e.scalar_text()));
      }
      return l;
    }
    if (!o.value.is_scalar())
      throw ConfigError(fmt::format("Could not override '{}': a config group option must be a name "
                                    "or a list of names, got {}",
                                    o.key, o.value.kind_name()));
    return Node::string(o.value.scalar_text());
  }
  void add(const std::string& key, Choice c) {
    if (!choices_.count(key)) order_.push_back(key);
    choices_[key] = std::move(c);
  }

  std::vector<std::string> order_;
  std::map<std::string, Choice> choices_;
  std::map<std::string, Deletion> deletions_;
};

class TreeBuilder {
 public:
  TreeBuilder(ConfigRepo& repo, Overrides& ov) : repo_(repo), ov_(ov) {}

  // Hydra's _create_defaults_tree_impl, flattened on the way back up: returns the configs
  // of `node`'s subtree in merge order.
  std::vector<ResultDefault> process(InputDefault& node, const InputDefault* parent, bool is_root) {
    if (is_root) node.update_parent("", "");
    std::optional<std::string> name = node.name();
    fs::path file = name && *name != "???" ? repo_.find(node.config_path()) : fs::path();
    if (is_root && file.empty()) not_found(node, nullptr);
    if (!file.empty()) node.header = ConfigRepo::package_header(file);
    if (ov_.is_deleted(node)) return {};
    ov_.set_known_choice(node);
    if (!name) return {};  // `group: null`
    if (*name == "???") mandatory(node);
    if (file.empty()) {
      if (node.optional) return {};
      not_found(node, parent);
    }
    std::string here = node.config_path();
    if (std::find(stack_.begin(), stack_.end(), here) != stack_.end() || stack_.size() > 32)
      throw ConfigError(fmt::format("defaults list cycle: '{}' includes itself ({})", here, file.string()));
    stack_.push_back(here);

    const Node& content = repo_.load(file);
    if (!content.is_map()) {
      throw ConfigError(fmt::format("{}: a config file must hold a dict at the top level, got {}",
                                    file.string(), content.kind_name()));
    }
    std::vector<InputDefault> defaults;
    if (const Node* d = content.find("defaults")) defaults = parse_defaults(*d, file.string());
    if (!defaults.empty() || (is_root && !ov_.appends.empty())) validate_self(node, defaults);
    if (is_root) defaults.insert(defaults.end(), ov_.appends.begin(), ov_.appends.end());
    register_overrides(defaults, node);

    // Children last to first, so that the `override`s of later entries are known first.
    std::vector<std::vector<ResultDefault>> children;
    for (auto it = defaults.rbegin(); it != defaults.rend(); ++it) {
      InputDefault& d = *it;
      if (d.is_self()) {
        children.push_back({result(node, file)});
        continue;
      }
      if (d.override_) continue;
      d.update_parent(node.group_path(), node.final_package());
      if (ov_.is_overridden(d)) ov_.override_default_option(d);
      if (!d.is_options()) {
        children.push_back(process(d, &node, false));
        continue;
      }
      // As in Hydra 1.3, a multi-select is no entry of hydra.runtime.choices.
      const auto& opts = d.value.elements();
      for (auto o = opts.rbegin(); o != opts.rend(); ++o) {
        InputDefault c;
        c.kind = InputDefault::Kind::kConfig;
        c.path = d.path + "/" + o->as_string();
        c.package = d.package;
        c.optional = d.optional;
        c.origin = d.origin;
        c.update_parent(node.group_path(), node.final_package());
        children.push_back(process(c, &node, false));
      }
    }
    stack_.pop_back();
    if (children.empty()) return {result(node, file)};  // a leaf stands for itself
    std::vector<ResultDefault> out;
    for (auto it = children.rbegin(); it != children.rend(); ++it) out.insert(out.end(), it->begin(), it->end());
    return out;
  }

 private:
  static ResultDefault result(const InputDefault& node, const fs::path& file) {
    return ResultDefault{file, node.config_path(), node.final_package()};
  }

  std::vector<InputDefault> parse_defaults(const Node& list, const std::string& origin) const {
    if (!list.is_list()) {
      throw ConfigError(fmt::format("{}: 'defaults' must be a list (- group: option, - _self_)",
                                    list.mark.str().empty() ? origin : list.mark.str()));
    }
    std::vector<InputDefault> out;
    for (const auto& item : list.elements()) {
      std::string where = item.mark.str().empty() ? origin : item.mark.str();
      InputDefault e;
      e.origin = where;
      if (item.is_string()) {
        e.kind = item.as_string() == "_self_" ? InputDefault::Kind::kSelf : InputDefault::Kind::kConfig;
        e.path = item.as_string();
        out.push_back(e);
        continue;
      }
      if (!item.is_map() || item.size() != 1) {
        throw ConfigError(fmt::format(
            "{}: invalid defaults list entry; use '_self_', 'config_name' or 'group: option'", where));
      }
      const auto& [k, v] = item.items().front();
      std::string key = trim(k);
      for (bool more = true; more;) {
        more = false;
        for (const char* word : {"optional ", "override "}) {
          if (key.rfind(word, 0) != 0) continue;
          (word[1] == 'p' ? e.optional : e.override_) = true;
          key = trim(key.substr(9));
          more = true;
        }
      }
      if (size_t at = key.find('@'); at != std::string::npos) {
        e.package = key.substr(at + 1);
        key = key.substr(0, at);
      }
      e.kind = InputDefault::Kind::kGroup;
      e.path = key;
      if (v.is_null()) {
        e.value = Node();
      } else if (v.is_scalar()) {
        e.value = Node::string(v.scalar_text());
      } else if (v.is_list()) {
        e.value = Node::list();
        for (const auto& o : v.elements()) {
          if (!o.is_scalar() || o.is_null())
            throw ConfigError(fmt::format("{}: defaults entry '{}' lists options by name, got {}",
                                          where, k, o.kind_name()));
          e.value.push_back(Node::string(o.scalar_text()));
        }
      } else {
        throw ConfigError(fmt::format("{}: defaults entry '{}' must name an option or a list of options",
                                      where, k));
      }
      out.push_back(e);
    }
    return out;
  }

  // Hydra >= 1.1: a config's own values come after its defaults unless `_self_` says otherwise.
  static void validate_self(const InputDefault& node, std::vector<InputDefault>& defaults) {
    bool has_self = false, has_non_override = false;
    for (const auto& d : defaults) {
      if (!d.override_) has_non_override = true;
      if (!d.is_self()) continue;
      if (has_self) throw ConfigError(fmt::format("Duplicate _self_ defined in {}", node.config_path()));
      has_self = true;
    }
    if ((!has_self && has_non_override) || defaults.empty()) {
      InputDefault self;
      self.kind = InputDefault::Kind::kSelf;
      defaults.push_back(self);
    }
  }

  void register_overrides(std::vector<InputDefault>& defaults, const InputDefault& parent) {
    const InputDefault* last = nullptr;
    for (auto& d : defaults) {
      if (d.is_self()) continue;
      d.update_parent(parent.group_path(), parent.final_package());
      if (last && !(d.override_ || d.external_append)) {
        throw ConfigError(fmt::format(
            "In {}: Override '{} : {}' is defined before '{}: {}'.\n"
            "Overrides must be at the end of the defaults list",
            parent.config_path(), last->override_key(), option_text(last->value),
            d.is_group() ? d.override_key() : d.path, d.is_group() ? option_text(d.value) : ""));
      }
      if (d.is_group() && d.override_) {
        last = &d;
        ov_.add_override(parent.config_path(), d);
      }
    }
  }

  [[noreturn]] void mandatory(const InputDefault& node) const {
    std::string group = node.group_path(), list;
    for (const auto& o : repo_.options(group)) list += "\t" + o + "\n";
    throw ConfigError(fmt::format("You must specify '{}', e.g, {}=<OPTION>\nAvailable options:\n{}",
                                  group, group, list));
  }

  [[noreturn]] void not_found(const InputDefault& node, const InputDefault* parent) const {
    if (!parent) {
      throw ConfigError(fmt::format(
          "Cannot find primary config '{}'. Check that it's in your config search path.\n\n{}",
          node.config_path(), repo_.search_path_text()));
    }
    if (!node.is_group()) {
      throw ConfigError(fmt::format("In '{}': Could not load '{}'.\n\n{}", parent->config_path(),
                                    node.config_path(), repo_.search_path_text()));
    }
    std::string group = node.group_path();
    std::string msg = fmt::format("In '{}': Could not find '{}'\n\n", parent->config_path(), node.config_path());
    auto options = repo_.options(group);
    msg += fmt::format("Available options in '{}':\n", group);
    for (const auto& o : options) msg += "\t" + o + "\n";
    std::string hint = did_you_mean(node.name().value_or(""), options);
    if (!hint.empty()) msg += fmt::format("Did you mean '{}={}'?\n", group, hint);
    msg += repo_.search_path_text();
    throw ConfigError(msg);
  }

  ConfigRepo& repo_;
  Overrides& ov_;
  std::vector<std::string> stack_;
};

}  // namespace

DefaultsList build_defaults_list(ConfigRepo& repo, const std::string& config_name,
                                 const std::vector<Override>& group_overrides) {
  std::set<std::string> relocated;
  for (int attempt = 0;; ++attempt) {
    Overrides ov(group_overrides, relocated);
    InputDefault root;
    root.kind = InputDefault::Kind::kConfig;
    root.path = config_name;
    root.primary = true;
    TreeBuilder builder(repo, ov);
    DefaultsList out;
    out.configs = builder.process(root, nullptr, /*is_root=*/true);
    if (attempt == 0) {
      relocated = ov.legacy_relocations();
      if (!relocated.empty()) continue;
    }
    ov.ensure_used();
    out.choices = ov.known;
    return out;
  }
}

}  // namespace portrait::cfg
