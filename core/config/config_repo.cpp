#include "core/config/config_repo.h"

#include <fmt/format.h>
#include <fstream>
#include <regex>
#include <set>

#include "core/config/yaml_io.h"

namespace portrait::cfg {

namespace fs = std::filesystem;

fs::path ConfigRepo::find(const std::string& config_path) const {
  for (const auto& dir : search_path_) {
    fs::path p = dir / (config_path + ".yaml");
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p;
  }
  return {};
}

bool ConfigRepo::group_exists(const std::string& group) const {
  if (group.empty()) return false;
  for (const auto& dir : search_path_) {
    std::error_code ec;
    if (fs::is_directory(dir / group, ec)) return true;
  }
  return false;
}

std::vector<std::string> ConfigRepo::options(const std::string& group) const {
  std::set<std::string> out;
  for (const auto& dir : search_path_) {
    std::error_code ec;
    fs::path g = dir / group;
    if (!fs::is_directory(g, ec)) continue;
    for (const auto& e : fs::directory_iterator(g, ec)) {
      if (e.is_regular_file() && e.path().extension() == ".yaml") out.insert(e.path().stem().string());
    }
  }
  return {out.begin(), out.end()};
}

const Node& ConfigRepo::load(const fs::path& file) {
  std::string key = file.lexically_normal().string();
  auto it = cache_.find(key);
  if (it == cache_.end()) it = cache_.emplace(key, load_yaml_file(file)).first;
  return it->second;
}

std::optional<std::string> ConfigRepo::package_header(const fs::path& file) {
  std::ifstream f(file);
  std::string line;
  static const std::regex kHeader(R"(#\s*@package\s+(\S+)\s*)");
  while (std::getline(f, line)) {
    size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    std::string t = line.substr(b);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t' || t.back() == '\r')) t.pop_back();
    if (t[0] != '#') break;
    std::smatch m;
    if (std::regex_match(t, m, kHeader)) return m[1].str();
  }
  return std::nullopt;
}

std::string ConfigRepo::search_path_text() const {
  std::string s = "Config search path:";
  for (size_t i = 0; i < search_path_.size(); ++i) {
    s += fmt::format("\n\tprovider={}, path=file://{}",
                     i + 1 == search_path_.size() ? "main" : "command-line",
                     fs::absolute(search_path_[i]).lexically_normal().string());
  }
  return s;
}

}  // namespace portrait::cfg
