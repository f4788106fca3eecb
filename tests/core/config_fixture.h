// A throwaway config directory per test: write YAML files, compose, resolve.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/config/compose.h"
#include "core/config/interpolate.h"
#include "core/config/node.h"
#include "core/error.h"

namespace portrait::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("portrait_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  void write(const std::string& rel, const std::string& text) const {
    auto p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

 private:
  std::filesystem::path path_;
};

class ConfigTest : public ::testing::Test {
 protected:
  cfg::Composed compose(const std::string& name, std::vector<std::string> overrides = {}) {
    cfg::ComposeOptions o;
    o.search_path = {dir.path()};
    o.config_name = name;
    o.overrides = std::move(overrides);
    return cfg::compose(o);
  }
  cfg::Node composed(const std::string& name, std::vector<std::string> overrides = {}) {
    return compose(name, std::move(overrides)).config;
  }
  cfg::Node resolved(const std::string& name, std::vector<std::string> overrides = {}) {
    return cfg::resolve(composed(name, std::move(overrides)));
  }
  // The message of the ConfigError/UsageError thrown by `fn`, or "" if none.
  template <typename Fn>
  static std::string error_of(Fn&& fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      return e.what();
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  }
  TempDir dir;
};

inline const cfg::Node& at(const cfg::Node& root, const std::string& path) {
  const cfg::Node* n = cfg::find_path(root, path);
  if (!n) throw std::runtime_error("no key " + path);
  return *n;
}

}  // namespace portrait::testing
