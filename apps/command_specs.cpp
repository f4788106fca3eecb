// What `portrait --help`, `portrait <command> --help` and `--cfg` need to know about each
// command (name, summary, description, primary config), kept apart from the code that runs
// it: this file and cmd_config.cpp / cmd_version.cpp are torch-free, so the `portrait`
// front end (front_main.cpp) answers help, config and version without loading LibTorch.
// The cmd_*.cpp files start from these specs and attach the `run` functions.
#include "apps/command_specs.h"

#include <fmt/format.h>

#include <iostream>

#include "core/config/section.h"
#include "core/error.h"

namespace portrait::apps {

CommandSpec demo_spec() {
  CommandSpec c;
  c.name = "demo";
  c.summary = "run the whole pipeline on synthetic data (CPU, minutes)";
  c.description =
      "Runs synth -> prep (+ tokenizer) -> train -> embed -> segment -> score -> tags -> profile on a\n"
      "small synthetic shop, each stage in <run dir>/<stage>/ with its own config record, and\n"
      "ends with a summary table and the path of the HTML segment report.\n\n"
      "  portrait demo                                  ~2 minutes on 2 CPU cores\n"
      "  portrait demo demo.users=20000 train.steps=3000 model=small\n"
      "  portrait demo 'demo.stages=[synth,prep]'       only the data stages";
  c.config_name = "demo";
  return c;
}

CommandSpec synth_spec() {
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
  return c;
}

CommandSpec prep_spec() {
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
  return c;
}

CommandSpec tokenizer_spec() {
  CommandSpec c;
  c.name = "tokenizer";
  c.summary = "train a SentencePiece tokenizer on review text";
  c.description =
      "Trains SentencePiece (unigram or BPE, byte fallback, special tokens) on a text file with\n"
      "one sentence per line (e.g. the masked reviews.txt written by `portrait prep`) and\n"
      "writes the model with its sha256 beside it.\n\n"
      "  portrait tokenizer tokenizer.input=shards/reviews.txt tokenizer.vocab_size=16000";
  c.config_name = "tokenizer";
  return c;
}

CommandSpec train_spec() {
  CommandSpec c;
  c.name = "train";
  c.summary = "train the transformer user encoder on prepared shards";
  c.description =
      "Trains the user encoder (dense all-action contrastive loss with mixed negatives and logQ\n"
      "correction, purchase heads, behaviour<->text alignment) with AdamW, warmup + cosine,\n"
      "clipping and accumulation; bf16 autocast on CUDA. Checkpoints go to <run dir>/checkpoints\n"
      "(train.resume=auto continues the newest), the inference model to <run dir>/model, and\n"
      "full-ranking evaluation (Recall@K, NDCG@K vs the popularity baseline; purchase AUC) to\n"
      "eval.jsonl.\n\n"
      "  portrait train shards=<prep output> model=small train.steps=20000\n"
      "  portrait train shards=... hydra.run.dir=runs/exp1 train.resume=auto\n\n"
      "Several processes (one per GPU, or CPU processes over Gloo), launched by torchrun:\n"
      "  torchrun --standalone --nproc-per-node=8 --no-python portrait train shards=... \\\n"
      "      train.batch_size=256   # per rank: the global batch is 8 x 256\n"
      "Under --max-restarts a restarted job resumes from its newest checkpoint. SIGTERM or\n"
      "SIGINT: the step finishes, a checkpoint is written, exit status 143 (130 for SIGINT).";
  c.config_name = "train";
  return c;
}

CommandSpec embed_spec() {
  CommandSpec c;
  c.name = "embed";
  c.summary = "embed every user of the shards into an HDF5 file (also items and head weights)";
  c.description =
      "Streams every user through a trained encoder and writes /user_id (pseudonymous) and\n"
      "/embedding [N, D] to HDF5 (float32 or float16), plus item embeddings and the\n"
      "purchase-head weights. Written in parts: an interrupted run resumes, skipping finished\n"
      "parts. Under torchrun each rank embeds its parts and rank 0 stitches them.\n\n"
      "  portrait embed embed.model=<run>/model embed.shards=<prep output>\n"
      "  torchrun --nproc-per-node=4 --no-python portrait embed ...";
  c.config_name = "embed";
  return c;
}

CommandSpec segment_spec() {
  CommandSpec c;
  c.name = "segment";
  c.summary = "k-means segments of the user embeddings (ids stable across refreshes)";
  c.description =
      "Clusters the embeddings with k-means (CUDA kernel on a GPU, multithreaded CPU otherwise)\n"
      "and writes /segment per user, centroids and inertia. With segment.previous=<old\n"
      "segments.h5> new segments take the ids of the old ones they match.\n\n"
      "  portrait segment segment.embeddings=embeddings.h5 segment.k=16";
  c.config_name = "segment";
  return c;
}

CommandSpec search_spec() {
  CommandSpec c;
  c.name = "search";
  c.summary = "lookalike audiences and recommendations by exact top-k similarity";
  c.description =
      "Lookalikes: a seed list of (pseudonymous) user ids -> the top-k most similar users,\n"
      "seeds excluded. Recommendations: user -> top-k items, already purchased items\n"
      "excluded (search.exclude_seen=true: every item of the user's history, for discovery).\n"
      "Exact search (fused top-k kernel on a GPU, multithreaded CPU otherwise).\n\n"
      "  portrait search search.embeddings=embeddings.h5 search.seeds=seeds.txt\n"
      "  portrait search search.embeddings=embeddings.h5 search.mode=recommend search.exclude_seen=true";
  c.config_name = "search";
  return c;
}

CommandSpec score_spec() {
  CommandSpec c;
  c.name = "score";
  c.summary = "purchase probability per head for every user; best audience per campaign";
  c.description =
      "Runs the trained purchase heads (fused MLP kernel on a GPU, CPU otherwise) over every\n"
      "user embedding; score.top_m writes the M most likely buyers per head.\n\n"
      "  portrait score score.embeddings=embeddings.h5 score.top_m=10000";
  c.config_name = "score";
  return c;
}

CommandSpec profile_spec() {
  CommandSpec c;
  c.name = "profile";
  c.summary = "per-segment portraits (JSON, CSV) and an HTML report with charts";
  c.description =
      "Per segment: size and share, recency/frequency/monetary statistics, top categories,\n"
      "top review terms, mean purchase probability per head and representative users.\n"
      "Segments smaller than profile.min_segment_size are suppressed (k-anonymity).\n\n"
      "  portrait profile profile.embeddings=embeddings.h5 profile.segments=segments.h5";
  c.config_name = "profile";
  return c;
}

// Listed here so the front end knows it; its subcommands (plan, evaluate, simulate, uplift) answer
// their own --help and --cfg in portrait-torch (apps/cmd_campaign.cpp).
CommandSpec campaign_spec() {
  CommandSpec c;
  c.name = "campaign";
  c.summary = "plan a campaign with a control group, measure its lift, learn its uplift";
  c.description = "  portrait campaign plan|evaluate|simulate|uplift [key=value ...]   (portrait campaign --help)";
  c.creates_run_dir = false;
  return c;
}

CommandSpec tags_spec() {
  CommandSpec c;
  c.name = "tags";
  c.summary = "readable per-user tags (RFM, lifecycle, price sensitivity, ...) and segment rules";
  c.description =
      "One row per user (pseudonymous id) from the shards' latest split: RFM scores 1-5 and the\n"
      "conventional RFM segment name, lifecycle stage, price sensitivity, top categories with\n"
      "their shares, preferred weekday and hour; with tags.segments the segment and an automatic\n"
      "segment name, plus segment_rules.json (shallow decision trees: each segment's top rules\n"
      "with precision and coverage); with tags.scores the most likely next category. Writes\n"
      "tags.h5 (h5py) and tags.csv (pandas) to tags.output_dir. Rules: README, 'Portrait tags'.\n\n"
      "  portrait tags tags.shards=<prep output>\n"
      "  portrait tags tags.shards=... tags.segments=<segment run dir> tags.scores=<score run dir>\n"
      "  portrait tags tags.shards=... tags.lifecycle.churn_days=60 tags.utc_offset_hours=8";
  c.config_name = "tags";
  return c;
}

const std::vector<CommandSpec>& command_specs() {
  static const std::vector<CommandSpec> cmds = {demo_spec(),    synth_spec(),   prep_spec(),  tokenizer_spec(),
                                                train_spec(),   embed_spec(),   segment_spec(), search_spec(),
                                                score_spec(),   profile_spec(), tags_spec(),    campaign_spec(),  version_command(),
                                                config_command()};
  return cmds;
}

std::string top_help() {
  std::string s =
      "Usage: portrait <command> [options] [key=value ...]\n\n"
      "Portrait builds user portraits from e-commerce behaviour logs and review text:\n"
      "ingest -> tokenize -> train a transformer user encoder -> embed every user ->\n"
      "segments, lookalikes, recommendations, purchase scores and segment reports.\n\n"
      "Commands:\n";
  for (const auto& c : command_specs()) s += fmt::format("  {:<10} {}\n", c.name, c.summary);
  s += "\nRun 'portrait <command> --help' for a command's options and config groups.\n"
       "Configs are Hydra-style YAML (configs/); override any key on the command line.\n";
  return s;
}

int unknown_command(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& c : command_specs()) names.push_back(c.name);
  std::string hint = cfg::did_you_mean(name, names);
  std::cerr << fmt::format("portrait: '{}' is not a portrait command.{}\nSee 'portrait --help'.\n", name,
                           hint.empty() ? "" : fmt::format(" Did you mean '{}'?", hint));
  return kExitUsage;
}

}  // namespace portrait::apps
