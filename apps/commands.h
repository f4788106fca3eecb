// The subcommand table of the `portrait` binary. Each command lives in its own cmd_*.cpp and
// registers a CommandSpec here; main.cpp dispatches git-style (`portrait <command> ...`).
#pragma once

#include <string>
#include <vector>

#include "core/cli.h"

namespace portrait::apps {

CommandSpec version_command();
CommandSpec config_command();
/// `portrait config [COMMAND] ...` = `portrait COMMAND --cfg job ...`.
/// `portrait config [COMMAND [SUBCOMMAND]] ...`; `subcommands` are specs named "<command> <sub>"
/// (portrait-torch passes the campaign ones; the front end execs it for those).
int run_config_command(const std::vector<std::string>& args, const std::vector<CommandSpec>& subcommands = {});
CommandSpec demo_command();
CommandSpec synth_command();
CommandSpec prep_command();
CommandSpec tokenizer_command();
CommandSpec train_command();
CommandSpec embed_command();
CommandSpec segment_command();
CommandSpec search_command();
CommandSpec score_command();
CommandSpec profile_command();
/// `portrait tags` (apps/cmd_tags.cpp).
CommandSpec tags_command();
/// `portrait campaign plan | evaluate | simulate` (apps/cmd_campaign.cpp).
CommandSpec campaign_command();
const std::vector<CommandSpec>& campaign_subcommands();
int run_campaign_command(const std::vector<std::string>& args);

/// Every command, in the order `portrait --help` lists them.
const std::vector<CommandSpec>& all_commands();

}  // namespace portrait::apps
