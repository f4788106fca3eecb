// The config search path as Hydra's ConfigRepository sees it: find `<group>/<name>.yaml`
// along the directories, read a file's `# @package` header, list a group's options, and
// describe the search path in errors. Loaded files are cached, because composition reads
// each config twice (its defaults list while the tree is built, its values when merging).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace portrait::cfg {

class ConfigRepo {
 public:
  explicit ConfigRepo(std::vector<std::filesystem::path> search_path)
      : search_path_(std::move(search_path)) {}

  /// "<config_path>.yaml" along the search path ("db/mysql", "train"); empty if absent.
  std::filesystem::path find(const std::string& config_path) const;
  bool group_exists(const std::string& group) const;
  /// Names of the options of a group (file stems, sorted), across the search path.
  std::vector<std::string> options(const std::string& group) const;
  /// The parsed file (cached). Throws ConfigError for malformed YAML.
  const Node& load(const std::filesystem::path& file);
  /// "# @package X" in the leading comment lines; nullopt when there is none.
  static std::optional<std::string> package_header(const std::filesystem::path& file);
  /// Hydra's "Config search path:" block for error messages.
  std::string search_path_text() const;
  const std::vector<std::filesystem::path>& search_path() const { return search_path_; }

 private:
  std::vector<std::filesystem::path> search_path_;
  std::map<std::string, Node> cache_;
};

}  // namespace portrait::cfg
