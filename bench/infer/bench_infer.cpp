// `portrait embed` throughput on CPU: users/s and the share of wall time spent in HDF5 writes
// (target < 10%; the writes run on a background thread, so this is the writer's busy time,
// and `blocked` is how long compute actually waited for it).
//
//   bench_infer [--users 4000] [--batch 512] [--dtype float32|float16] [--gzip 0]
//               [--d-model 64] [--layers 2] [--dim 64] [--events 64] [--threads 0]
#include <fmt/format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "data/prep.h"
#include "data/shard.h"
#include "data/synth.h"
#include "infer/embed.h"
#include "models/checkpoint.h"
#include "tokenizer/tokenizer.h"

using namespace portrait;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  int64_t users = 4000, batch = 512, d_model = 64, layers = 2, dim = 64, events = 64, gzip = 0, threads = 0;
  std::string dtype = "float32";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--users") users = std::stoll(v);
    else if (a == "--batch") batch = std::stoll(v);
    else if (a == "--dtype") dtype = v;
    else if (a == "--gzip") gzip = std::stoll(v);
    else if (a == "--d-model") d_model = std::stoll(v);
    else if (a == "--layers") layers = std::stoll(v);
    else if (a == "--dim") dim = std::stoll(v);
    else if (a == "--events") events = std::stoll(v);
    else if (a == "--threads") threads = std::stoll(v);
    else {
      fmt::print(stderr, "unknown flag {}\n", a);
      return 2;
    }
  }
  fs::path root = fs::temp_directory_path() / ("portrait_bench_infer_" + std::to_string(::getpid()));
  fs::remove_all(root);
  data::SynthParams sp;
  sp.output_dir = (root / "syn").string();
  sp.users = users;
  sp.items = 2000;
  sp.days = 60;
  sp.fault_fraction = 0;
  sp.bot_users = 0;
  data::run_synth(sp);
  data::PrepParams pp;
  pp.input = {(root / "syn/events_00000.csv").string()};
  pp.output_dir = (root / "shards").string();
  pp.hash_key = "bench-infer-key-0123456789";
  pp.partitions = 2;
  pp.progress = false;
  pp.seq_len = int(events);
  pp.text_len = 32;
  pp.tokenizer.vocab_size = 1000;
  data::run_prep(pp);
  auto vocab = data::read_shard(data::list_shards(pp.output_dir).at(0), {}, true);
  ModelConfig c;
  c.n_items = int64_t(vocab.items.size());
  c.n_categories = int64_t(vocab.categories.size());
  c.n_text_tokens = tok::Tokenizer::load(root / "shards/tokenizer.model").vocab_size();
  c.n_targets = c.n_categories;
  c.n_price_buckets = 64;
  c.d_model = d_model;
  c.n_layers = layers;
  c.n_heads = 4;
  c.d_ff = 4 * d_model;
  c.dropout = 0;
  c.max_events = events;
  c.max_text_tokens = 32;
  c.embed_dim = dim;
  torch::manual_seed(0);
  save_model(ModelBundle::create(c), root / "model");

  infer::EmbedParams p;
  p.model_dir = (root / "model").string();
  p.shards = pp.output_dir;
  p.output = (root / "out/embeddings.h5").string();
  p.batch_size = int(batch);
  p.dtype = dtype;
  p.gzip = int(gzip);
  p.threads = int(threads);
  p.progress = false;
  auto s = infer::run_embed(p);
  fmt::print("embed bench: users={} dim={} d_model={} layers={} L={} batch={} dtype={} gzip={} torch_threads={}\n",
             s.users, s.dim, d_model, layers, events, batch, dtype, gzip, torch::get_num_threads());
  fmt::print("  wall {:.2f}s  users/s {:.1f}  compute {:.2f}s  hdf5 writer busy {:.3f}s ({:.2f}% of wall)  "
             "compute blocked on writer {:.3f}s  stitch {:.3f}s\n",
             s.wall_s, s.users_per_s, s.compute_s, s.write_s, 100.0 * s.write_s / s.wall_s, s.write_wait_s,
             s.stitch_s);
  fs::remove_all(root);
  return 0;
}
