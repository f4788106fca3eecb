// Tiny synthetic shards shared by the trainer tests: 160 users, 300 items, 60 days, no faults,
// sequences of 16 events and 8 text tokens. Built once per test process under `root`
// (cleared first, removed at exit).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/synth_shards.h"
#include "data/prep.h"
#include "data/synth.h"

namespace portrait::testing {

inline std::filesystem::path make_tiny_shards(const std::filesystem::path& root, const std::string& hash_key) {
  std::filesystem::remove_all(root);
  data::SynthParams sp;
  sp.users = 160;
  sp.items = 300;
  sp.days = 60;
  data::PrepParams p;
  p.hash_key = hash_key;
  p.seq_len = 16;
  p.text_len = 8;
  p.tokenizer.vocab_size = 400;
  return synth_and_prep(root, sp, p, "out");
}

/// This test process's scratch root: <tmp>/<prefix><pid>.
inline std::filesystem::path process_root(const std::string& prefix) {
  return std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
}

/// make_tiny_shards under process_root(prefix), built on the first call and removed (with the
/// whole root) at exit. One set per test binary: later calls return it whatever they pass.
inline const std::filesystem::path& process_tiny_shards(const std::string& prefix, const std::string& hash_key) {
  static const std::filesystem::path root = process_root(prefix);
  static const std::filesystem::path dir = [&] {
    auto out = make_tiny_shards(root, hash_key);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(root, ec);
    });
    return out;
  }();
  return dir;
}

}  // namespace portrait::testing
