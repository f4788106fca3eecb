// `portrait`: the one entry point users, scripts and `torchrun --no-python portrait ...` run.
// Loading LibTorch costs seconds on a busy machine, so this binary links none of it: it
// answers what needs no torch itself (portrait --help, <command> --help, --cfg, --info,
// `config`, `version`, unknown commands) and exec()s portrait-torch, the pipeline binary
// installed beside it, for every command that does work. exec keeps the pid, argv and
// environment, so signals, exit codes and torchrun's worker contract are unchanged.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "apps/command_specs.h"
#include "core/error.h"

namespace {

namespace fs = std::filesystem;

// True when the command line only asks for text that the specs and configs can give.
bool answered_here(const std::vector<std::string>& args) {
  const std::string& cmd = args[0];
  if (cmd == "config") return !(args.size() > 1 && args[1] == "campaign");  // its subcommands: portrait-torch
  if (cmd == "version") return true;
  if (cmd == "campaign") return false;  // subcommands with their own help: portrait-torch answers
  bool known = false;
  for (const auto& c : portrait::apps::command_specs()) known = known || c.name == cmd;
  if (!known) return true;  // the usage error needs no torch either
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help" || a == "--info" || a == "-c" || a == "--cfg" || a.rfind("--cfg=", 0) == 0)
      return true;
  }
  return false;
}

fs::path backend_path() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return (ec ? fs::path(".") : self.parent_path()) / "portrait-torch";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> kept = args;
  // Legacy launchers may put --local-rank=N before the command name.
  std::erase_if(kept, [](const std::string& a) {
    return a.rfind("--local-rank=", 0) == 0 || a.rfind("--local_rank=", 0) == 0;
  });
  if (kept.empty() || kept[0] == "-h" || kept[0] == "--help" || kept[0] == "help") {
    std::cout << portrait::apps::top_help();
    return kept.empty() ? portrait::kExitUsage : portrait::kExitOk;
  }
  if (kept[0] == "--version") kept[0] = "version";
  if (answered_here(kept)) {
    std::vector<std::string> rest(kept.begin() + 1, kept.end());
    if (kept[0] == "config") return portrait::apps::run_config_command(rest);
    for (const auto& c : portrait::apps::command_specs())
      if (c.name == kept[0]) return portrait::run_command(c, rest);
    return portrait::apps::unknown_command(kept[0]);
  }
  const fs::path backend = backend_path();
  std::vector<char*> av;
  std::string b = backend.string();
  av.push_back(b.data());
  for (int i = 1; i < argc; ++i) av.push_back(argv[i]);
  av.push_back(nullptr);
  ::execv(b.c_str(), av.data());
  std::cerr << fmt::format("portrait: cannot run {}: {}. It is built and installed beside 'portrait' "
                           "(rebuild with scripts/build.sh).\n",
                           b, std::strerror(errno));
  return portrait::kExitRuntime;
}
