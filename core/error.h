// Portrait's error taxonomy. Every subcommand maps these to exit codes:
//   UsageError / ConfigError -> 2 (the user asked for something malformed; fix the command),
//   any other exception      -> 1 (runtime failure).
// Messages are written for the person at the terminal: they name the file, line and field
// involved and say how to fix the problem.
#pragma once

#include <stdexcept>
#include <string>

namespace portrait {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;

/// Bad command line: unknown flag, missing argument, malformed override.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Bad configuration: unknown key, wrong type, value out of range, malformed YAML.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Bad input data that the user must fix (names file, line and field).
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace portrait
