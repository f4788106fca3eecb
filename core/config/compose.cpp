#include "core/config/compose.h"

#include <algorithm>
#include <fmt/format.h>
#include <fstream>
#include <regex>
#include <set>

#include "core/config/section.h"
#include "core/config/yaml_io.h"
#include "core/error.h"

namespace portrait::cfg {

namespace fs = std::filesystem;

namespace {

struct DefaultEntry {
  enum class Kind { kSelf, kGroup, kConfig };
  Kind kind = Kind::kConfig;
  std::string group;    // absolute group path ("model", "model/encoder"); config path for kConfig
  std::string option;   // option name; "" with is_null; "???" mandatory
  std::string package;  // explicit @package (relative to the parent's package), or ""
  bool optional = false;
  bool override_ = false;
  bool is_null = false;
  std::string from_cli;  // the override text when it came from the command line
};

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string pkg_join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "." + b;
}

std::string group_to_package(const std::string& group) {
  std::string p = group;
  std::replace(p.begin(), p.end(), '/', '.');
  return p;
}

std::string search_path_text(const std::vector<fs::path>& sp) {
  std::string s = "Config search path:";
  for (size_t i = 0; i < sp.size(); ++i) {
    s += fmt::format("\n\tprovider={}, path=file://{}", i + 1 == sp.size() ? "main" : "command-line",
                     fs::absolute(sp[i]).lexically_normal().string());
  }
  return s;
}

class Composer {
 public:
  explicit Composer(const ComposeOptions& o) : opts_(o) {}

  Composed run() {
    Composed out;
    std::string job = opts_.job_name.empty() ? opts_.config_name : opts_.job_name;
    out.hydra = default_hydra_config(job);

    // Split the overrides into group overrides, hydra overrides and value overrides.
    for (const auto& text : opts_.overrides) {
      Override o = parse_override(text);
      if (o.is_sweep()) {
        throw UsageError(fmt::format(
            "Ambiguous value for argument '{}'\n"
            "1. To use it as a list, use key=[value1,value2]\n"
            "2. To use it as string, quote the value: key=\\'value1,value2\\'\n"
            "3. To sweep over it, add --multirun to your command line",
            text));
      }
      if (o.key == "hydra" || o.key.rfind("hydra.", 0) == 0 || o.key.rfind("hydra/", 0) == 0) {
        hydra_overrides_.push_back(o);
        out.hydra_overrides.push_back(text);
      } else if (is_group(o.key)) {
        group_overrides_.push_back(o);
        out.task_overrides.push_back(text);
      } else {
        value_overrides_.push_back(o);
        out.task_overrides.push_back(text);
      }
    }

    // Command-line group selections.
    for (const auto& o : group_overrides_) {
      if (o.type == Override::Type::kChange || o.type == Override::Type::kForceAdd) {
        if (o.has_value && !o.value.is_scalar())
          throw ConfigError(fmt::format("Could not override '{}': a config group option must "
                                        "be a name, got {}",
                                        o.key, o.value.kind_name()));
        cli_choice_[o.key] = o;
      } else if (o.type == Override::Type::kDelete) {
        cli_delete_[o.key] = o;
      }
    }

    fs::path primary = find_config("", opts_.config_name);
    if (primary.empty()) {
      throw ConfigError(fmt::format(
          "Cannot find primary config '{}'. Check that it's in your config search path.\n\n{}",
          opts_.config_name, search_path_text(opts_.search_path)));
    }
    Node root = Node::map();
    std::vector<DefaultEntry> appended;
    for (const auto& o : group_overrides_) {
      if (o.type != Override::Type::kAdd) continue;
      DefaultEntry e;
      e.kind = DefaultEntry::Kind::kGroup;
      e.group = o.key;
      e.package = o.package;
      e.option = o.value.is_null() ? "" : o.value.scalar_text();
      e.is_null = o.value.is_null();
      e.from_cli = o.text;
      appended.push_back(e);
    }
    process_config(primary, opts_.config_name, "", "", root, appended, /*is_primary=*/true);

    for (const auto& [group, o] : cli_choice_) {
      if (!used_cli_.count(group)) {
        throw ConfigError(fmt::format(
            "Could not override '{}'. No match in the defaults list.\n"
            "To append to your default list use +{}",
            o.key_with_prefix(), o.text.substr(o.text.find_first_not_of("+~"))));
      }
    }
    for (const auto& [group, o] : cli_delete_) {
      if (!used_delete_.count(group)) {
        throw ConfigError(fmt::format("Could not delete from config. The defaults list has no "
                                      "entry for '{}'.",
                                      group));
      }
    }

    if (opts_.overlay.is_map()) merge_into(root, opts_.overlay);
    for (const auto& o : value_overrides_) apply_value_override(root, o, "");
    for (const auto& o : hydra_overrides_) {
      Override h = o;
      h.key = o.key == "hydra" ? "" : o.key.substr(6);
      if (h.key.empty()) throw ConfigError("Could not override 'hydra': set its keys, e.g. hydra.run.dir=...");
      apply_value_override(out.hydra, h, "hydra.");
    }

    Node choices = Node::map();
    for (const auto& [g, opt] : choices_) choices[g] = opt.empty() ? Node() : Node::string(opt);
    out.hydra["runtime"]["choices"] = choices;
    out.hydra["runtime"]["config_name"] = Node::string(opts_.config_name);
    Node task = Node::list();
    for (const auto& t : out.task_overrides) task.push_back(Node::string(t));
    out.hydra["overrides"]["task"] = task;
    Node hy = Node::list();
    for (const auto& t : out.hydra_overrides) hy.push_back(Node::string(t));
    out.hydra["overrides"]["hydra"] = hy;
    out.choices = choices_;
    out.config = std::move(root);
    return out;
  }

 private:
  bool is_group(const std::string& key) const {
    if (key.find('.') != std::string::npos) return false;
    for (const auto& dir : opts_.search_path) {
      std::error_code ec;
      if (fs::is_directory(dir / key, ec)) return true;
    }
    return false;
  }

  // Finds "<group>/<name>.yaml" along the search path; empty path if absent.
  fs::path find_config(const std::string& group, const std::string& name) const {
    for (const auto& dir : opts_.search_path) {
      fs::path p = group.empty() ? dir / (name + ".yaml") : dir / group / (name + ".yaml");
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p;
    }
    return {};
  }

  // "# @package X" in the first comment lines of a config file.
  static std::string package_header(const fs::path& p) {
    std::ifstream f(p);
    std::string line;
    static const std::regex kHeader(R"(#\s*@package\s+(\S+)\s*)");
    while (std::getline(f, line)) {
      std::string t = trim(line);
      if (t.empty()) continue;
      if (t[0] != '#') break;
      std::smatch m;
      if (std::regex_match(t, m, kHeader)) return m[1];
    }
    return "";
  }

  std::vector<DefaultEntry> parse_defaults(const Node& list, const std::string& parent_group,
                                           const std::string& origin) const {
    std::vector<DefaultEntry> out;
    if (!list.is_list()) {
      throw ConfigError(fmt::format("{}: 'defaults' must be a list", list.mark.str()));
    }
    for (const auto& item : list.elements()) {
      DefaultEntry e;
      if (item.is_string()) {
        std::string s = item.as_string();
        if (s == "_self_") {
          e.kind = DefaultEntry::Kind::kSelf;
        } else {
          e.kind = DefaultEntry::Kind::kConfig;
          e.group = s[0] == '/' ? s.substr(1) : (parent_group.empty() ? s : parent_group + "/" + s);
        }
        out.push_back(e);
        continue;
      }
      if (!item.is_map() || item.size() != 1) {
        throw ConfigError(fmt::format(
            "{}: invalid defaults list entry; use '_self_', 'config_name' or 'group: option'",
            item.mark.str().empty() ? origin : item.mark.str()));
      }
      const auto& [k, v] = item.items().front();
      std::string key = trim(k);
      while (true) {
        if (key.rfind("optional ", 0) == 0) {
          e.optional = true;
          key = trim(key.substr(9));
        } else if (key.rfind("override ", 0) == 0) {
          e.override_ = true;
          key = trim(key.substr(9));
        } else {
          break;
        }
      }
      size_t at = key.find('@');
      if (at != std::string::npos) {
        e.package = key.substr(at + 1);
        key = key.substr(0, at);
      }
      e.kind = DefaultEntry::Kind::kGroup;
      e.group = key[0] == '/' ? key.substr(1) : (parent_group.empty() ? key : parent_group + "/" + key);
      if (v.is_null()) {
        e.is_null = true;
      } else if (v.is_scalar()) {
        e.option = v.scalar_text();
      } else {
        throw ConfigError(fmt::format("{}: defaults entry '{}' must name one option",
                                      v.mark.str().empty() ? origin : v.mark.str(), k));
      }
      out.push_back(e);
    }
    return out;
  }

  [[noreturn]] void missing_option(const std::string& in_config, const std::string& group,
                                   const std::string& option) const {
    std::string msg = fmt::format("In '{}': Could not find '{}/{}'\n\n", in_config, group, option);
    auto options = group_options(opts_.search_path, group);
    msg += fmt::format("Available options in '{}':\n", group);
    for (const auto& o : options) msg += "\t" + o + "\n";
    std::string hint = did_you_mean(option, options);
    if (!hint.empty()) msg += fmt::format("Did you mean '{}={}'?\n", group, hint);
    msg += search_path_text(opts_.search_path);
    throw ConfigError(msg);
  }

  // Loads one config file and merges it (and its defaults) into `root` at `package`.
  void process_config(const fs::path& path, const std::string& display_name,
                      const std::string& group, const std::string& package, Node& root,
                      const std::vector<DefaultEntry>& appended, bool is_primary) {
    if (stack_.size() > 32) throw ConfigError("defaults list nesting too deep (a cycle?) at " + path.string());
    std::string key = path.lexically_normal().string();
    if (std::find(stack_.begin(), stack_.end(), key) != stack_.end()) {
      throw ConfigError("defaults list cycle: " + key + " includes itself");
    }
    stack_.push_back(key);
    Node content = load_yaml_file(path);
    if (!content.is_map()) {
      throw ConfigError(fmt::format("{}: a config file must hold a dict at the top level, got {}",
                                    path.string(), content.kind_name()));
    }
    std::vector<DefaultEntry> entries;
    if (const Node* d = content.find("defaults")) {
      entries = parse_defaults(*d, group, path.string());
      content.erase("defaults");
    }
    for (const auto& e : appended) entries.push_back(e);
    bool has_self = std::any_of(entries.begin(), entries.end(),
                                [](const DefaultEntry& e) { return e.kind == DefaultEntry::Kind::kSelf; });
    if (!has_self) {
      // Hydra >= 1.1: a config's own values come after its defaults.
      DefaultEntry self;
      self.kind = DefaultEntry::Kind::kSelf;
      auto pos = entries.end() - static_cast<long>(appended.size());
      entries.insert(pos, self);
    }
    // `override` entries re-select options of groups chosen elsewhere; the command line wins.
    for (const auto& e : entries) {
      if (e.kind == DefaultEntry::Kind::kGroup && e.override_ && !config_override_.count(e.group))
        config_override_[e.group] = e;
    }

    for (auto e : entries) {
      switch (e.kind) {
        case DefaultEntry::Kind::kSelf: {
          Node wrapped = wrap(content, package);
          merge_into(root, wrapped);
          break;
        }
        case DefaultEntry::Kind::kConfig: {
          fs::path p = find_config("", e.group);
          if (p.empty()) {
            throw ConfigError(fmt::format("In '{}': Could not load '{}'.\n\n{}", display_name,
                                          e.group, search_path_text(opts_.search_path)));
          }
          std::string parent_dir = fs::path(e.group).parent_path().string();
          std::string hdr = package_header(p);
          std::string pkg = hdr == "_global_" ? "" : hdr.empty() || hdr == "_group_" ? package : hdr;
          process_config(p, e.group, parent_dir, pkg, root, {}, false);
          break;
        }
        case DefaultEntry::Kind::kGroup: {
          if (e.override_) break;  // applied through config_override_
          std::string seen_key = e.group + "@" + e.package;
          if (selected_.count(seen_key)) {
            throw ConfigError(fmt::format(
                "In '{}': Multiple values for {}. To override a value use 'override {}: {}'",
                display_name, e.group, e.group, e.option));
          }
          selected_.insert(seen_key);
          if (auto it = config_override_.find(e.group); it != config_override_.end()) {
            e.option = it->second.option;
            e.is_null = it->second.is_null;
          }
          if (e.from_cli.empty()) {
            if (auto it = cli_delete_.find(e.group); it != cli_delete_.end()) {
              const Override& d = it->second;
              if (d.has_value && d.value.scalar_text() != e.option) {
                throw ConfigError(fmt::format(
                    "Could not delete from config. The value of '{}' is {} and not {}.", e.group,
                    e.option, d.value.scalar_text()));
              }
              used_delete_.insert(e.group);
              break;
            }
            if (auto it = cli_choice_.find(e.group); it != cli_choice_.end()) {
              used_cli_.insert(e.group);
              e.is_null = it->second.value.is_null();
              e.option = e.is_null ? "" : it->second.value.scalar_text();
              if (!it->second.package.empty()) e.package = it->second.package;
            }
          }
          if (e.is_null) {
            choices_[e.group] = "";
            break;
          }
          if (e.option == "???") {
            auto options = group_options(opts_.search_path, e.group);
            std::string list;
            for (const auto& o : options) list += "\t" + o + "\n";
            throw ConfigError(fmt::format(
                "You must specify '{}', e.g, {}=<OPTION>\nAvailable options:\n{}", e.group,
                e.group, list));
          }
          fs::path p = find_config(e.group, e.option);
          if (p.empty()) {
            if (e.optional) break;
            missing_option(display_name, e.group, e.option);
          }
          choices_[e.group] = e.option;
          std::string hdr = package_header(p);
          std::string pkg;
          if (!e.package.empty()) {
            pkg = e.package == "_global_" ? "" : e.package == "_here_" ? package
                                                                       : pkg_join(package, e.package);
          } else if (hdr == "_global_") {
            pkg = "";
          } else if (!hdr.empty() && hdr != "_group_") {
            pkg = hdr;
          } else {
            pkg = group_to_package(e.group);
          }
          process_config(p, e.group + "/" + e.option, e.group, pkg, root, {}, false);
          break;
        }
      }
    }
    stack_.pop_back();
  }

  static Node wrap(const Node& content, const std::string& package) {
    if (package.empty()) return content;
    auto parts = split_path(package);
    Node out = content;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
      Node m = Node::map();
      m.mark = content.mark;
      m[*it] = std::move(out);
      out = std::move(m);
    }
    return out;
  }

  // Struct-mode failure with Hydra's message (plus a did-you-mean hint).
  [[noreturn]] void not_in_struct(const Node& root, const Override& o, const std::string& prefix,
                                  const std::vector<std::string>& parts, size_t missing) const {
    std::string full = prefix + join_path(parts, missing + 1);
    std::string wanted = prefix + o.key;
    std::string msg = fmt::format(
        "Could not override '{}'.\nTo append to your config use +{}\nKey '{}' is not in struct\n"
        "    full_key: {}\n    object_type=dict",
        wanted, o.text.substr(o.text.find_first_not_of("+~")), parts[missing], full);
    const Node* parent = find_path(root, join_path(parts, missing));
    if (parent && parent->is_map()) {
      std::vector<std::string> keys;
      for (const auto& [k, v] : parent->items()) keys.push_back(k);
      std::string hint = did_you_mean(parts[missing], keys);
      if (!hint.empty()) {
        std::vector<std::string> fixed = parts;
        fixed[missing] = hint;
        if (find_path(root, join_path(fixed))) {
          msg += fmt::format("\nDid you mean '{}'?", prefix + join_path(fixed));
        } else {
          std::vector<std::string> head(fixed.begin(), fixed.begin() + static_cast<long>(missing) + 1);
          msg += fmt::format("\nDid you mean '{}'?", prefix + join_path(head));
        }
      }
    }
    throw ConfigError(msg);
  }

  void apply_value_override(Node& root, const Override& o, const std::string& prefix) {
    auto parts = split_path(o.key);
    std::string shown = prefix + o.key;
    // Walk to the parent, noting the first missing component.
    Node* cur = &root;
    size_t missing = parts.size();
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      Node* next = nullptr;
      if (cur->is_map()) {
        next = cur->find(parts[i]);
      } else if (cur->is_list()) {
        next = find_path(*cur, parts[i]);
      }
      if (!next || (!next->is_map() && !next->is_list())) {
        if (next && !next->is_null()) {
          throw ConfigError(fmt::format("Could not override '{}': '{}' is a {} ({}), not a dict",
                                        shown, prefix + join_path(parts, i + 1), next->kind_name(),
                                        next->scalar_text()));
        }
        missing = i;
        break;
      }
      cur = next;
    }
    const std::string& leaf = parts.back();
    Node* existing = missing == parts.size() ? (cur->is_map() ? cur->find(leaf) : cur->is_list() ? find_path(*cur, leaf) : nullptr) : nullptr;
    if (missing == parts.size() && !existing) missing = parts.size() - 1;
    Node value = o.value;
    value.mark = Mark{"<command line: " + o.text + ">", 0};

    switch (o.type) {
      case Override::Type::kChange:
        if (!existing) not_in_struct(root, o, prefix, parts, missing);
        if (existing->is_map() && value.is_map()) merge_into(*existing, value);
        else *existing = value;
        break;
      case Override::Type::kAdd:
        if (existing) {
          std::string bare = o.text.substr(1);
          throw ConfigError(fmt::format(
              "Could not append to config. An item is already at '{}'.\n"
              "Either remove + prefix: '{}'\nOr add a second + to add or override '{}': '+{}'",
              shown, bare, shown, o.text));
        }
        [[fallthrough]];
      case Override::Type::kForceAdd: {
        if (existing) {
          *existing = value;
          break;
        }
        Node* n = &root;
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
          Node* next = n->is_list() ? find_path(*n, parts[i]) : n->find(parts[i]);
          if (!next || next->is_null()) {
            if (n->is_list()) throw ConfigError(fmt::format("Could not add '{}': list index '{}' out of range", shown, parts[i]));
            (*n)[parts[i]] = Node::map();
            next = n->find(parts[i]);
          }
          n = next;
        }
        if (n->is_list()) throw ConfigError(fmt::format("Could not add '{}': list index '{}' out of range (lists cannot grow by key)", shown, leaf));
        (*n)[leaf] = value;
        break;
      }
      case Override::Type::kDelete: {
        if (!existing) {
          throw ConfigError(fmt::format("Could not delete from config. '{}' does not exist.", shown));
        }
        if (o.has_value && !(*existing == o.value) &&
            existing->scalar_text() != o.value.scalar_text()) {
          throw ConfigError(fmt::format("Could not delete from config. The value of '{}' is {} and not {}.",
                                        shown, existing->scalar_text(), o.value.scalar_text()));
        }
        if (cur->is_map()) {
          cur->erase(leaf);
        } else {
          auto& el = cur->elements();
          el.erase(el.begin() + std::stol(leaf));
        }
        break;
      }
    }
  }

  const ComposeOptions& opts_;
  std::vector<Override> group_overrides_, value_overrides_, hydra_overrides_;
  std::map<std::string, Override> cli_choice_, cli_delete_;
  std::set<std::string> used_cli_, used_delete_, selected_;
  std::map<std::string, DefaultEntry> config_override_;
  std::map<std::string, std::string> choices_;
  std::vector<std::string> stack_;
};

}  // namespace

std::vector<std::string> group_options(const std::vector<fs::path>& search_path,
                                       const std::string& group) {
  std::set<std::string> out;
  for (const auto& dir : search_path) {
    std::error_code ec;
    fs::path g = dir / group;
    if (!fs::is_directory(g, ec)) continue;
    for (const auto& e : fs::directory_iterator(g, ec)) {
      if (e.is_regular_file() && e.path().extension() == ".yaml") out.insert(e.path().stem().string());
    }
  }
  return {out.begin(), out.end()};
}

std::vector<std::string> list_groups(const std::vector<fs::path>& search_path) {
  std::set<std::string> out;
  for (const auto& dir : search_path) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_regular_file() && it->path().extension() == ".yaml" && it->path().parent_path() != dir) {
        out.insert(fs::relative(it->path().parent_path(), dir).string());
      }
    }
  }
  return {out.begin(), out.end()};
}

Node default_hydra_config(const std::string& job_name) {
  Node h = Node::map();
  h["run"]["dir"] = Node::string("outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}");
  h["sweep"]["dir"] = Node::string("multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}");
  h["sweep"]["subdir"] = Node::string("${hydra.job.num}");
  h["output_subdir"] = Node::string(".hydra");
  h["mode"] = Node::string("RUN");
  h["job"]["name"] = Node::string(job_name);
  h["job"]["num"] = Node::integer(0);
  h["job"]["chdir"] = Node::boolean(false);
  h["runtime"]["output_dir"] = Node::string("");
  h["runtime"]["cwd"] = Node::string(fs::current_path().string());
  h["verbose"] = Node::boolean(false);
  for (auto& [k, v] : h.items()) v.mark = Mark{"<hydra defaults>", 0};
  return h;
}

Composed compose(const ComposeOptions& opts) { return Composer(opts).run(); }

}  // namespace portrait::cfg
