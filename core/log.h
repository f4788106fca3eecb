// Levelled logging to stderr and, once a run directory exists, to a log file in it.
// Thread-safe; every line carries a UTC timestamp, the level and (under torchrun) the rank.
//
//   PLOG_INFO("read {} events from {}", n, path);   // fmt-style formatting (libfmt)
//
// Privacy: never log raw user ids, keys or secrets; log counts and pseudonymous ids only.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace portrait::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

/// Parses "debug|info|warn|error|off" (case-insensitive); throws ConfigError otherwise.
Level parse_level(std::string_view s);
void set_level(Level level);
Level level();
/// Rank shown in each line ("[r3]"); -1 (default) hides it.
void set_rank(int rank);
/// Also append every line to `path` (created if needed). Empty path closes the file.
void set_file(const std::string& path);
void write(Level level, std::string_view msg);

template <typename... Args>
void logf(Level lvl, fmt::format_string<Args...> f, Args&&... args) {
  if (lvl < level()) return;
  write(lvl, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace portrait::log

#define PLOG_DEBUG(...) ::portrait::log::logf(::portrait::log::Level::kDebug, __VA_ARGS__)
#define PLOG_INFO(...) ::portrait::log::logf(::portrait::log::Level::kInfo, __VA_ARGS__)
#define PLOG_WARN(...) ::portrait::log::logf(::portrait::log::Level::kWarn, __VA_ARGS__)
#define PLOG_ERROR(...) ::portrait::log::logf(::portrait::log::Level::kError, __VA_ARGS__)
