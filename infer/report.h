// The HTML report of `portrait profile`: where its generator (report.py) is found and the one
// call that runs it. The script is found relative to the running executable, as an installed
// tree lays it out, never through a path compiled in from the source tree.
#pragma once

#include <filesystem>
#include <string>

namespace portrait::infer {

/// Environment variable that names the report script, overriding the installed copy.
inline constexpr const char* kReportScriptEnv = "PORTRAIT_REPORT_SCRIPT";
/// Where the script sits below an install prefix (and below the build tree, which keeps a
/// copy there for its bin/ and tests/).
inline constexpr const char* kReportScriptRelative = "share/portrait/report.py";

/// The report script, in this order: `configured` (profile.script) when not empty;
/// $PORTRAIT_REPORT_SCRIPT when set and not empty; else <ancestor>/share/portrait/report.py
/// for the nearest ancestor of the running executable's folder that has one
/// (<prefix>/bin/portrait -> <prefix>/share/portrait/report.py). Throws ConfigError naming
/// the places looked at when there is none.
std::filesystem::path find_report_script(const std::string& configured);

/// Runs `python script --profile <profile_json> --output <html>` with its output in `log`.
/// Throws std::runtime_error saying how the script ended (exit status, signal, not found)
/// with the command and the tail of its log.
void render_report(const std::string& python, const std::filesystem::path& script,
                   const std::filesystem::path& profile_json, const std::filesystem::path& html,
                   const std::filesystem::path& log);

/// `s` quoted for a POSIX shell (single quotes).
std::string shell_quote(const std::string& s);

}  // namespace portrait::infer
