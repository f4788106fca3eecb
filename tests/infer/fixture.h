// Shared test data for the inference tests: a small synthetic shop prepared into shards, and
// a random-init model sized from the shards' vocabularies (ModelBundle::create + save_model).
#pragma once

#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "data/prep.h"
#include "data/shard.h"
#include "data/synth.h"
#include "models/checkpoint.h"
#include "tokenizer/tokenizer.h"

namespace portrait::infer::testing {

namespace fs = std::filesystem;

struct Fixture {
  fs::path root, shards, model;
  ModelConfig cfg;
};

inline const Fixture& fixture() {
  static Fixture fx = [] {
    Fixture f;
    f.root = fs::temp_directory_path() / ("portrait_infer_" + std::to_string(::getpid()));
    fs::remove_all(f.root);
    data::SynthParams sp;
    sp.output_dir = (f.root / "syn").string();
    sp.users = 400;
    sp.items = 300;
    sp.days = 60;
    sp.fault_fraction = 0;
    sp.bot_users = 0;
    data::run_synth(sp);
    data::PrepParams p;
    p.input = {(f.root / "syn/events_00000.csv").string()};
    p.output_dir = (f.root / "shards").string();
    p.hash_key = "infer-test-key-0123456789";
    p.partitions = 3;
    p.progress = false;
    p.seq_len = 24;
    p.text_len = 12;
    p.tokenizer.vocab_size = 400;
    data::run_prep(p);
    f.shards = f.root / "shards";
    auto vocab = data::read_shard(data::list_shards(f.shards).at(0), {}, true);
    ModelConfig c;
    c.n_items = int64_t(vocab.items.size());
    c.n_categories = int64_t(vocab.categories.size());
    c.n_text_tokens = tok::Tokenizer::load(f.shards / "tokenizer.model").vocab_size();
    c.n_targets = c.n_categories;
    c.n_price_buckets = 64;  // prep's price buckets go up to 63
    c.d_model = 32;
    c.n_layers = 1;
    c.n_heads = 4;
    c.d_ff = 64;
    c.dropout = 0.0;
    c.max_events = 16;  // shorter than the shards' 24: exercises truncation
    c.max_text_tokens = 8;
    c.embed_dim = 16;
    c.repeat_dim = 4;  // exports carry the repeat channel inside D
    c.head_hidden = 16;
    f.cfg = c;
    torch::manual_seed(7);
    auto m = ModelBundle::create(c);
    m.meta["tokenizer_sha256"] = tok::Tokenizer::load(f.shards / "tokenizer.model").sha256();
    f.model = f.root / "model";
    save_model(m, f.model);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("portrait_infer_" + std::to_string(::getpid())), ec);
    });
    return f;
  }();
  return fx;
}

/// Runs a Python snippet with the project's interpreter (h5py, numpy); returns exit code and
/// combined output.
inline std::pair<int, std::string> run_python(const std::string& code, const fs::path& cwd) {
  static int counter = 0;
  fs::path script = fixture().root / ("snippet_" + std::to_string(counter++) + ".py");
  fs::path out = script;
  out += ".out";
  std::ofstream(script) << code;
  std::string cmd = "cd '" + cwd.string() + "' && '" PORTRAIT_PYTHON "' '" + script.string() + "' > '" +
                    out.string() + "' 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  return {rc, ss.str()};
}

}  // namespace portrait::infer::testing
