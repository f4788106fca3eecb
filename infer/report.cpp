// `portrait profile`'s report generator: see report.h.
#include "infer/report.h"

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"

namespace portrait::infer {

namespace {

// The folder of the running executable ("" when /proc is not mounted).
std::filesystem::path executable_dir() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : self.parent_path();
}

}  // namespace

std::string shell_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'')
      o += "'\\''";
    else
      o += c;
  }
  return o + "'";
}

std::filesystem::path find_report_script(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* env = std::getenv(kReportScriptEnv); env != nullptr && *env != '\0') return env;
  const std::filesystem::path start = executable_dir();
  // Walking up covers the installed layout (bin/ beside share/) and the build tree's
  // test binaries (tests/<area>/ two levels below share/) alike.
  for (std::filesystem::path dir = start; !dir.empty(); dir = dir.parent_path()) {
    const std::filesystem::path candidate = dir / kReportScriptRelative;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
    if (dir == dir.parent_path()) break;
  }
  throw ConfigError(fmt::format(
      "profile: no report script: profile.script is empty, ${} is not set, and no folder above "
      "{} holds {} (install the project, or set profile.script or ${}; profile.html=false skips "
      "the report)",
      kReportScriptEnv, start.empty() ? std::string("the executable") : start.string(),
      kReportScriptRelative, kReportScriptEnv));
}

void render_report(const std::string& python, const std::filesystem::path& script,
                   const std::filesystem::path& profile_json, const std::filesystem::path& html,
                   const std::filesystem::path& log) {
  std::string cmd = shell_quote(python) + " " + shell_quote(script.string()) + " --profile " +
                    shell_quote(profile_json.string()) + " --output " + shell_quote(html.string()) +
                    " > " + shell_quote(log.string()) + " 2>&1";
  int rc = std::system(cmd.c_str());
  if (rc == 0) return;
  std::string tail;
  try {
    tail = read_file(log);
  } catch (...) {
  }
  if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
  // std::system returns a wait status: say what it means, not the raw number (256 = exit 1).
  std::string how;
  if (rc == -1) how = "could not be started";
  else if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127) how = "was not found (exit status 127: is profile.python right?)";
  else if (WIFEXITED(rc)) how = fmt::format("exited with status {}", WEXITSTATUS(rc));
  else if (WIFSIGNALED(rc)) how = fmt::format("was killed by signal {} ({})", WTERMSIG(rc), strsignal(WTERMSIG(rc)));
  else how = fmt::format("failed (wait status {})", rc);
  throw std::runtime_error(fmt::format("profile: the report script {}: {}\n{}{}", how, cmd, tail,
                                       tail.empty() ? "" : "\n(the whole log: " + log.string() + ")"));
}

}  // namespace portrait::infer
