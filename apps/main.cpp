// `portrait-torch`: the pipeline's binary (git-style subcommands, Hydra-style configs). Users
// run `portrait` (front_main.cpp), which exec()s this one for every command that does work.
#include <fmt/format.h>

#include <iostream>
#include <string>
#include <vector>

#include "apps/command_specs.h"
#include "apps/commands.h"
#include "apps/job_dist.h"
#include "core/config/section.h"
#include "core/error.h"

namespace portrait::apps {

const std::vector<CommandSpec>& all_commands() {
  static const std::vector<CommandSpec> cmds = [] {
    std::vector<CommandSpec> v;
    v.push_back(demo_command());
    v.push_back(synth_command());
    v.push_back(prep_command());
    v.push_back(tokenizer_command());
    v.push_back(train_command());
    v.push_back(embed_command());
    v.push_back(segment_command());
    v.push_back(search_command());
    v.push_back(score_command());
    v.push_back(profile_command());
    v.push_back(tags_command());
    v.push_back(campaign_command());
    v.push_back(version_command());
    v.push_back(config_command());
    return v;
  }();
  return cmds;
}

}  // namespace portrait::apps

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Legacy launchers may put --local-rank=N before the command name.
  std::erase_if(args, [](const std::string& a) {
    return a.rfind("--local-rank=", 0) == 0 || a.rfind("--local_rank=", 0) == 0;
  });
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << portrait::apps::top_help();
    return args.empty() ? portrait::kExitUsage : portrait::kExitOk;
  }
  if (args[0] == "--version") args[0] = "version";
  portrait::apps::install_run_dir_agreement();
  if (args[0] == "campaign") {
    return portrait::apps::run_campaign_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "config") {
    return portrait::apps::run_config_command(std::vector<std::string>(args.begin() + 1, args.end()),
                                              portrait::apps::campaign_subcommands());
  }
  const auto& cmds = portrait::apps::all_commands();
  for (const auto& c : cmds) {
    if (c.name == args[0]) {
      return portrait::run_command(c, std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  return portrait::apps::unknown_command(args[0]);
}
