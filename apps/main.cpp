// `portrait`: one binary, git-style subcommands, Hydra-style configs.
#include <fmt/format.h>

#include <iostream>
#include <string>
#include <vector>

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
    v.push_back(campaign_command());
    v.push_back(version_command());
    v.push_back(config_command());
    return v;
  }();
  return cmds;
}

}  // namespace portrait::apps

namespace {

std::string top_help() {
  std::string s =
      "Usage: portrait <command> [options] [key=value ...]\n\n"
      "Portrait builds user portraits from e-commerce behaviour logs and review text:\n"
      "ingest -> tokenize -> train a transformer user encoder -> embed every user ->\n"
      "segments, lookalikes, recommendations, purchase scores and segment reports.\n\n"
      "Commands:\n";
  for (const auto& c : portrait::apps::all_commands()) s += fmt::format("  {:<10} {}\n", c.name, c.summary);
  s += "\nRun 'portrait <command> --help' for a command's options and config groups.\n"
       "Configs are Hydra-style YAML (configs/); override any key on the command line.\n";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Legacy launchers may put --local-rank=N before the command name.
  std::erase_if(args, [](const std::string& a) {
    return a.rfind("--local-rank=", 0) == 0 || a.rfind("--local_rank=", 0) == 0;
  });
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << top_help();
    return args.empty() ? portrait::kExitUsage : portrait::kExitOk;
  }
  if (args[0] == "--version") args[0] = "version";
  portrait::apps::install_run_dir_agreement();
  if (args[0] == "campaign") {
    return portrait::apps::run_campaign_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "config") {
    return portrait::apps::run_config_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  const auto& cmds = portrait::apps::all_commands();
  for (const auto& c : cmds) {
    if (c.name == args[0]) {
      return portrait::run_command(c, std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  std::vector<std::string> names;
  for (const auto& c : cmds) names.push_back(c.name);
  std::string hint = portrait::cfg::did_you_mean(args[0], names);
  std::cerr << fmt::format("portrait: '{}' is not a portrait command.{}\nSee 'portrait --help'.\n",
                           args[0], hint.empty() ? "" : fmt::format(" Did you mean '{}'?", hint));
  return portrait::kExitUsage;
}
