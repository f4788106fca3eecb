// `portrait config [COMMAND] [options] [overrides]`: prints the composed config of any
// command (the demo pipeline's by default). Same as `portrait COMMAND --cfg job ...`.
#include <fmt/format.h>

#include <iostream>

#include "apps/command_specs.h"
#include "apps/commands.h"
#include "core/error.h"

namespace portrait::apps {

namespace {
constexpr const char* kDefaultTarget = "demo";

bool looks_like_command(const std::string& a) {
  return !a.empty() && a[0] != '-' && a[0] != '+' && a[0] != '~' && a.find('=') == std::string::npos;
}
}  // namespace

CommandSpec config_command() {
  CommandSpec c;
  c.name = "config";
  c.summary = "print the composed config of a command (default: demo)";
  c.description =
      "Composes and prints the config a command would run with: its defaults list, config\n"
      "groups and the command-line overrides. Add --resolve to resolve ${...}\n"
      "interpolations, --cfg hydra|all to see the hydra settings.\n\n"
      "  portrait config                      the demo pipeline's config\n"
      "  portrait config train model=small    the training config with model=small\n"
      "  portrait config train --resolve";
  c.creates_run_dir = false;
  c.positional_help = "[COMMAND]";
  c.max_positional = 1;
  c.run = [](JobContext&) { return kExitOk; };  // dispatched by run_config_command
  return c;
}

int run_config_command(const std::vector<std::string>& args_in, const std::vector<CommandSpec>& subcommands) {
  std::vector<std::string> args = args_in;
  std::string target = kDefaultTarget;
  if (!args.empty() && looks_like_command(args[0])) {
    target = args[0];
    args.erase(args.begin());
  } else if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    std::cout << command_help(config_command(), default_config_dir());
    return kExitOk;
  }
  // The specs suffice: --cfg, --info and --help print before a command would run.
  std::vector<CommandSpec> cmds = command_specs();
  // `portrait config campaign plan ...`: a subcommand ("campaign plan") has its own config.
  if (!args.empty() && looks_like_command(args[0])) {
    for (const auto& c : subcommands)
      if (c.name == target + " " + args[0]) {
        target = c.name;
        args.erase(args.begin());
        cmds.push_back(c);
        break;
      }
  }
  for (const auto& c : cmds) {
    if (c.name != target) continue;
    if (c.config_name.empty()) {
      std::cerr << fmt::format("portrait config: '{}' has no config\n", target);
      return kExitUsage;
    }
    bool has_cfg = false;
    for (const auto& a : args) has_cfg = has_cfg || a == "--cfg" || a.rfind("--cfg=", 0) == 0 || a == "-c" || a == "--info" || a == "-h" || a == "--help";
    if (!has_cfg) args.insert(args.begin(), {"--cfg", "job"});
    return run_command(c, args);
  }
  std::cerr << fmt::format("portrait config: unknown command '{}'. See 'portrait --help'.\n", target);
  return kExitUsage;
}

}  // namespace portrait::apps
