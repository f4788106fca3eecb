#include "core/config/compose.h"

#include <algorithm>
#include <fmt/format.h>
#include <fstream>
#include <regex>
#include <set>

#include "core/config/config_repo.h"
#include "core/config/defaults_list.h"
#include "core/config/section.h"
#include "core/config/yaml_io.h"
#include "core/error.h"

namespace portrait::cfg {

namespace fs = std::filesystem;

namespace {

// Deep merge that refuses keys the destination dict lacks (OmegaConf's merge into a struct
// config). Returns the dotted path of the first such key below `path`, or "".
std::string struct_merge(Node& dst, const Node& src, const std::string& path) {
  if (!dst.is_map() || !src.is_map()) {
    dst = src;
    return "";
  }
  for (const auto& [k, v] : src.items()) {
    std::string key = path.empty() ? k : path + "." + k;
    Node* d = dst.find(k);
    if (!d) return key;
    if (d->is_map() && v.is_map()) {
      std::string bad = struct_merge(*d, v, key);
      if (!bad.empty()) return bad;
    } else {
      *d = v;
    }
  }
  return "";
}

class Composer {
 public:
  explicit Composer(const ComposeOptions& o) : opts_(o), repo_(o.search_path) {}

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
            o.text));
      }
      if (o.key == "hydra" || o.key.rfind("hydra.", 0) == 0 || o.key.rfind("hydra/", 0) == 0) {
        hydra_overrides_.push_back(o);
        out.hydra_overrides.push_back(o.text);
      } else if (!o.value.is_map() && repo_.group_exists(o.key) && o.key.find('.') == std::string::npos) {
        group_overrides_.push_back(o);
        out.task_overrides.push_back(o.text);
      } else {
        value_overrides_.push_back(o);
        out.task_overrides.push_back(o.text);
      }
    }

    // Hydra's order: the whole defaults list first (overrides of every config applied),
    // then the merge, then the command line's values.
    DefaultsList defaults = build_defaults_list(repo_, opts_.config_name, group_overrides_);
    Node root = Node::map();
    for (const auto& rd : defaults.configs) {
      Node content = repo_.load(rd.file);
      content.erase("defaults");
      merge_into(root, wrap(content, rd.package));
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
    for (const auto& [g, opt] : defaults.choices) {
      choices[g] = opt;
      out.choices[g] = opt.is_null() ? "" : opt.is_list() ? value_to_override_text(opt) : opt.scalar_text();
    }
    out.hydra["runtime"]["choices"] = choices;
    out.hydra["runtime"]["config_name"] = Node::string(opts_.config_name);
    Node task = Node::list();
    for (const auto& t : out.task_overrides) task.push_back(Node::string(t));
    out.hydra["overrides"]["task"] = task;
    Node hy = Node::list();
    for (const auto& t : out.hydra_overrides) hy.push_back(Node::string(t));
    out.hydra["overrides"]["hydra"] = hy;
    out.config = std::move(root);
    return out;
  }

 private:
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
        if (existing->is_map() && value.is_map()) {
          // OmegaConf.update(merge=True) into a struct config: new keys inside are refused.
          std::string bad = struct_merge(*existing, value, o.key);
          if (!bad.empty()) {
            auto bad_parts = split_path(bad);
            not_in_struct(root, o, prefix, bad_parts, bad_parts.size() - 1);
          }
        } else {
          *existing = value;
        }
        break;
      case Override::Type::kAdd:
        // Hydra: `+key={...}` or `+key=[...]` on an existing key merges like `++`.
        if (existing && !value.is_map() && !value.is_list()) {
          std::string bare = o.text.substr(1);
          throw ConfigError(fmt::format(
              "Could not append to config. An item is already at '{}'.\n"
              "Either remove + prefix: '{}'\nOr add a second + to add or override '{}': '+{}'",
              shown, bare, shown, o.text));
        }
        [[fallthrough]];
      case Override::Type::kForceAdd: {
        if (existing) {
          // OmegaConf.update(merge=True, force_add=True): a dict merges into a dict, adding
          // keys; anything else replaces.
          if (existing->is_map() && value.is_map()) merge_into(*existing, value);
          else *existing = value;
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
  ConfigRepo repo_;
  std::vector<Override> group_overrides_, value_overrides_, hydra_overrides_;
};

}  // namespace

std::vector<std::string> group_options(const std::vector<fs::path>& search_path,
                                       const std::string& group) {
  return ConfigRepo(search_path).options(group);
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
