// Data commands: `portrait synth`, `portrait prep`, `portrait tokenizer`.
#include <fmt/format.h>

#include <iostream>

#include "apps/commands.h"
#include "apps/job_dist.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "core/log.h"
#include "data/prep.h"
#include "data/synth.h"
#include "tokenizer/train.h"

namespace portrait::apps {

CommandSpec synth_command() {
  CommandSpec c;
  c.name = "synth";
  c.summary = "generate synthetic shop logs with planted segments and injected faults";
  c.description =
      "Writes realistic event logs (view -> click -> cart -> purchase funnels, reviews in\n"
      "English and Chinese) from K latent segments, a truth file (planted segment and oracle\n"
      "purchase probability per user) and faults.json (rows injected per rejection reason).\n"
      "Deterministic given synth.seed.\n\n"
      "  portrait synth synth.users=100000 synth.output_dir=data/synth";
  c.config_name = "synth";
  c.run = [](JobContext& ctx) {
    auto p = data::synth_params_from_config(ctx.cfg);
    auto s = data::run_synth(p);
    std::cout << fmt::format("synth: {} users ({} active), {} rows ({} valid events) -> {}\n", s.users,
                             s.active_users, s.rows, s.valid_events, s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec prep_command() {
  CommandSpec c;
  c.name = "prep";
  c.summary = "validate, clean and pseudonymize event logs into HDF5 training shards";
  c.description =
      "Reads event logs (CSV/TSV/JSON Lines, optionally gzip), quarantines every rejected row\n"
      "with its file, line and reason, removes duplicates, pseudonymizes user ids with a keyed\n"
      "hash (key from data.privacy.key_file or $PORTRAIT_HASH_KEY), masks PII in review text,\n"
      "trains the SentencePiece tokenizer and writes HDF5 shards with a temporal split.\n\n"
      "Under torchrun each rank reads its share of the input files and cleans and writes its\n"
      "user-hash partitions; ranks meet through the store and files in prep.output_dir (which\n"
      "must be on a file system every rank sees). The output equals a one-process run's.\n\n"
      "  PORTRAIT_HASH_KEY=... portrait prep prep.input='[logs/*.csv.gz]' prep.output_dir=shards\n"
      "  portrait prep data=movielens prep.input='[ratings.csv]'\n"
      "  torchrun --nproc-per-node=4 --no-python portrait prep prep.input='[logs/*.csv.gz]' ...";
  c.config_name = "prep";
  c.run = [](JobContext& ctx) {
    auto p = data::prep_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    auto d = job_dist();
    if (d->distributed()) {
      p.rank = d->rank();
      p.world = d->world_size();
      p.barrier = [d](const std::string& name) { d->barrier("prep/" + name); };
      p.broadcast = [d](const std::string& name, const std::string& value) {
        return d->broadcast_string("prep/" + name, value);
      };
      if (p.rank != 0) p.progress = false;
    }
    auto s = data::run_prep(p);
    if (p.rank != 0) return kExitOk;
    std::cout << fmt::format(
        "prep: {} rows -> {} events of {} users (train/val/test {}/{}/{}), {} quarantined, "
        "{} items, {} categories, {:.1f}s\n",
        s.rows, s.accepted_events, s.users, s.users_per_split[0], s.users_per_split[1],
        s.users_per_split[2], s.quarantined, s.items, s.categories, s.seconds);
    for (const auto& [reason, n] : s.rejects)
      if (n) std::cout << fmt::format("  rejected {:>10}  {}\n", n, reason);
    std::cout << fmt::format("shards: {}\n", p.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec tokenizer_command() {
  CommandSpec c;
  c.name = "tokenizer";
  c.summary = "train a SentencePiece tokenizer on review text";
  c.description =
      "Trains SentencePiece (unigram or BPE, byte fallback, special tokens) on a text file with\n"
      "one sentence per line (e.g. the masked reviews.txt written by `portrait prep`) and\n"
      "writes the model with its sha256 beside it.\n\n"
      "  portrait tokenizer tokenizer.input=shards/reviews.txt tokenizer.vocab_size=16000";
  c.config_name = "tokenizer";
  c.run = [](JobContext& ctx) {
    auto p = tok::tokenizer_params_from_config(ctx.cfg);
    auto s = tok::run_tokenizer_train(p);
    std::cout << fmt::format("tokenizer: {} pieces from {} sentences -> {} (sha256 {})\n", s.vocab_size,
                             s.sentences, s.model_path, s.sha256);
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
