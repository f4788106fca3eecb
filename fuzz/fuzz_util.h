// Shared helpers of the libFuzzer targets (fuzz/README.md).
//
// Contract checked by every target: malformed input may only end in Portrait's own errors
// (UsageError, ConfigError, DataError: clean messages, exit codes 2/1). A crash, a sanitizer
// report, a hang, or any other exception escaping (std::logic_error, std::out_of_range,
// a third-party library's exception) is a finding: libFuzzer reports the uncaught exception
// (abort) and saves the input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.h"

namespace portrait::fuzz {

/// A per-process scratch directory, in /dev/shm when there is one (the HDF5 and file
/// readers need a real path; tmpfs keeps a write per execution cheap). Removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    if (const char* t = std::getenv("PORTRAIT_FUZZ_TMP")) base = t;
    std::filesystem::path d = base / ("portrait-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static struct Cleanup {
      std::filesystem::path p;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(p, ec);
      }
    } cleanup{d};
    return d;
  }();
  return dir;
}

/// Writes `bytes` to `path` (truncating), creating its parent directory.
inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::create_directories(path.parent_path());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

/// A violated property of the code under test (not an expected error): abort, so libFuzzer
/// saves the input.
[[noreturn]] inline void property_failed(const char* what) {
  std::fprintf(stderr, "portrait fuzz: property violated: %s\n", what);
  std::abort();
}

/// Runs `f`; Portrait's own error types are the expected outcome of bad input.
template <typename F>
void expect_clean_errors(F&& f) {
  try {
    f();
  } catch (const UsageError&) {
  } catch (const ConfigError&) {
  } catch (const DataError&) {
  }
}

}  // namespace portrait::fuzz
