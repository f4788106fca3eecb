// The torch-free half of every command: its name, help texts and primary config (no `run`,
// except version and config, which are torch-free themselves). See command_specs.cpp.
#pragma once

#include <string>
#include <vector>

#include "apps/commands.h"

namespace portrait::apps {

CommandSpec demo_spec();
CommandSpec synth_spec();
CommandSpec prep_spec();
CommandSpec tokenizer_spec();
CommandSpec train_spec();
CommandSpec embed_spec();
CommandSpec segment_spec();
CommandSpec search_spec();
CommandSpec score_spec();
CommandSpec profile_spec();
CommandSpec tags_spec();
CommandSpec campaign_spec();

/// Every command's spec, in the order `portrait --help` lists them (the same order as
/// all_commands()); `run` is empty except for version and config.
const std::vector<CommandSpec>& command_specs();

/// `portrait --help`: usage and the command list.
std::string top_help();

/// Prints the "not a portrait command" usage error (with a did-you-mean); returns exit code 2.
int unknown_command(const std::string& name);

}  // namespace portrait::apps
