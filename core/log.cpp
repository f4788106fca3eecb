#include "core/log.h"

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>

#include "core/error.h"

namespace portrait::log {
namespace {
std::mutex g_mu;
Level g_level = Level::kInfo;
int g_rank = -1;
std::ofstream g_file;

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarn: return "WARN";
    case Level::kError: return "ERROR";
    default: return "";
  }
}
}  // namespace

Level parse_level(std::string_view s) {
  std::string v;
  for (char c : s) v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "debug") return Level::kDebug;
  if (v == "info") return Level::kInfo;
  if (v == "warn" || v == "warning") return Level::kWarn;
  if (v == "error") return Level::kError;
  if (v == "off") return Level::kOff;
  throw ConfigError("unknown log level '" + std::string(s) +
                    "'; allowed values: debug, info, warn, error, off");
}

void set_level(Level level) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_level = level;
}
Level level() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_level;
}
void set_rank(int rank) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_rank = rank;
}
void set_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_file.is_open()) g_file.close();
  if (!path.empty()) g_file.open(path, std::ios::app);
}

void write(Level lvl, std::string_view msg) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mu);
  std::string line = fmt::format("[{}.{:03d}][{}]", ts, ms, level_name(lvl));
  if (g_rank >= 0) line += fmt::format("[r{}]", g_rank);
  line += ' ';
  line.append(msg);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  if (g_file.is_open()) {
    g_file << line;
    g_file.flush();
  }
}

}  // namespace portrait::log
