// Runs a shell command for tests that drive the real `portrait` binary or torchrun:
// exit status and the merged stdout + stderr.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace portrait::testing {

struct ShellResult {
  int code = -1;    ///< exit status (-1: killed by a signal or popen failed)
  std::string out;  ///< stdout + stderr
};

inline ShellResult run_shell(const std::string& cmd) {
  ShellResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace portrait::testing
