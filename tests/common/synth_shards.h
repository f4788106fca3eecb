// Synthetic shop logs prepped into shards: the setup tests that need real shards share.
#pragma once

#include <filesystem>
#include <string>

#include "data/prep.h"
#include "data/synth.h"

namespace portrait::testing {

/// Writes clean synthetic logs (`sp` as given, no faults, no bots) under <root>/syn and preps
/// them (`pp` as given: key, seq_len, text_len, tokenizer; two partitions, no progress) into
/// <root>/<shards>. Returns the shard directory.
inline std::filesystem::path synth_and_prep(const std::filesystem::path& root, data::SynthParams sp,
                                            data::PrepParams pp, const std::string& shards = "shards") {
  sp.output_dir = (root / "syn").string();
  sp.fault_fraction = 0;
  sp.bot_users = 0;
  data::run_synth(sp);
  pp.input = {(root / "syn/events_00000.csv").string()};
  pp.output_dir = (root / shards).string();
  pp.partitions = 2;
  pp.progress = false;
  data::run_prep(pp);
  return root / shards;
}

}  // namespace portrait::testing
