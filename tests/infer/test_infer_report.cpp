// Where `portrait profile` finds its report generator (infer/report.h): the configured path,
// then $PORTRAIT_REPORT_SCRIPT, then share/portrait/report.py above the running executable.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "infer/report.h"

namespace portrait::infer {
namespace {

namespace fs = std::filesystem;

// Sets or clears $PORTRAIT_REPORT_SCRIPT for one test and restores it afterwards.
class ReportScriptEnv {
 public:
  explicit ReportScriptEnv(const char* value) {
    if (const char* old = std::getenv(kReportScriptEnv)) saved_ = old, had_ = true;
    if (value) ::setenv(kReportScriptEnv, value, 1);
    else ::unsetenv(kReportScriptEnv);
  }
  ~ReportScriptEnv() {
    if (had_) ::setenv(kReportScriptEnv, saved_.c_str(), 1);
    else ::unsetenv(kReportScriptEnv);
  }

 private:
  std::string saved_;
  bool had_ = false;
};

TEST(ReportScript, ConfiguredPathWinsOverEverything) {
  ReportScriptEnv env("/elsewhere/report.py");
  EXPECT_EQ(find_report_script("/my/report.py"), fs::path("/my/report.py"));
}

TEST(ReportScript, EnvironmentVariableWinsOverTheInstalledCopy) {
  ReportScriptEnv env("/elsewhere/report.py");
  EXPECT_EQ(find_report_script(""), fs::path("/elsewhere/report.py"));
}

TEST(ReportScript, BuildTreeCopyIsFoundAboveTheExecutable) {
  ReportScriptEnv env(nullptr);
  const fs::path found = find_report_script("");
  EXPECT_TRUE(fs::is_regular_file(found)) << found;
  EXPECT_EQ(fs::weakly_canonical(found),
            fs::weakly_canonical(fs::path(PORTRAIT_BINARY_DIR) / kReportScriptRelative));
}

TEST(ReportScript, ShellQuoteSurvivesSingleQuotes) {
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
}

}  // namespace
}  // namespace portrait::infer
