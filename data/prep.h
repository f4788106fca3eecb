// `portrait prep`: raw event logs -> cleaned, pseudonymized, tokenized HDF5 training shards.
//
// Phases (memory is bounded by the largest partition plus the vocabularies, not by the input:
// no per-user state outlives a partition):
//   1. read this rank's input files (CSV/TSV/JSONL, gzip or not), validate each row, mask PII
//      in review text, pseudonymize the user id (HMAC-SHA256 behind a fixed-size cache) and
//      spill accepted rows into `partitions` binary files by pseudonym hash; rejected rows go
//      to the file's quarantine segment.
//   2. per partition: order each user's events by time (ties keep input order: file, line),
//      drop exact duplicates, quarantine bot users and users below the minimum.
//   3. split cuts (prep.protocol: global cut-offs or per-user leave-last-out); item/category
//      counts and the tokenizer corpus from the TRAIN split's inputs only (no label/val/test
//      leakage: an item first seen later is out of vocabulary and has no count); train
//      SentencePiece on a bounded sample; write one shard per partition with train/val/test
//      inputs and labels and the `latest` split (every event, no labels: what exports embed).
// Outputs in output_dir: shard_NNNNN.h5, tokenizer.model(+.sha256), quarantine.jsonl,
// prep_summary.json, prep_manifest.json (written last: seals the directory, data/manifest.h;
// removed first when a prep starts, under an exclusive lock on .portrait.lock), reviews.txt (masked review text before the train cut-off = the
// tokenizer corpus). Work files live in output_dir/.prep.<pid>.<n>/ and are removed.
// quarantine.jsonl has one object per rejected row: file, line, reason (data/schema.h), field,
// detail, and `fields` (canonical field -> value) under the rules of every output: the user id
// pseudonymized ("u:<hex>"), review text PII-masked, unmapped columns left out. A row that
// cannot be split into its fields has `record` instead: withheld, or the raw line when
// data.privacy.quarantine_raw_lines is set.
//
// Several processes (torchrun): rank r reads the input files assigned to it (by size) and
// handles partitions p with p % world == r; ranks exchange statistics, counts and the
// vocabulary through files in the shared output_dir, separated by barriers. The outputs are
// byte-identical to a one-process run.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/config/node.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

namespace portrait::data {

/// Group `data:` (configs/data/*.yaml): how to read and clean one kind of export.
struct DataParams {
  /// Canonical field -> column name (CSV header or JSON key). Fields: user, timestamp,
  /// event_type, item, category, price, rating, review. Empty = column absent.
  std::map<std::string, std::string> columns = {
      {"user", "user_id"},   {"timestamp", "timestamp"}, {"event_type", "event_type"},
      {"item", "item_id"},   {"category", "category"},   {"price", "price"},
      {"rating", "rating"},  {"review", "review_text"}};
  /// Platform event name -> canonical (view|click|cart|purchase|review). Canonical names are
  /// always accepted.
  std::map<std::string, std::string> event_types = {
      {"pv", "view"}, {"page_view", "view"}, {"add_to_cart", "cart"}, {"buy", "purchase"},
      {"order", "purchase"}, {"rate", "review"}};
  std::string default_event_type;  ///< used when columns.event_type is empty (e.g. MovieLens)
  std::string format = "auto";     ///< auto (by extension) | csv | tsv | jsonl
  // Cleaning.
  std::string min_time = "2000-01-01";  ///< earliest plausible timestamp (inclusive)
  std::string max_time = "2035-01-01";  ///< latest plausible timestamp (exclusive)
  int64_t max_field_length = 4096;      ///< bytes per field
  double max_price = 1e7;
  double rating_min = 1, rating_max = 5;
  int64_t max_events_per_user = 5000;   ///< more (after de-dup) = bot: all rows quarantined
  double max_reject_fraction = 0.05;    ///< abort when quarantined rows / all rows exceeds it
  // Catalogue columns (optional file given by prep.catalogue).
  std::map<std::string, std::string> catalogue_columns = {
      {"item", "item_id"}, {"category", "category"}, {"title", "title"}, {"price", "price"}};
  std::string catalogue_category_separator;  ///< e.g. "|" for MovieLens genres: first kept
  std::string catalogue_format = "auto";     ///< auto (by extension) | csv | tsv
  // Privacy.
  std::string key_file;                   ///< file holding the HMAC key (preferred)
  std::string key_env = "PORTRAIT_HASH_KEY";  ///< else this environment variable
  std::string id_map_path;                ///< write raw id -> pseudonym here ("" = never);
                                          ///< rows grouped by shard, raw ids sorted within
  bool mask_pii = true;                   ///< mask emails/URLs/phones/digit runs in reviews
  int min_digit_run = 9;                  ///< digit runs at least this long become <num>
  int64_t min_events_per_user = 1;        ///< fewer (after cleaning): quarantined
  bool quarantine_raw_lines = false;      ///< true: keep the raw line of rows that cannot be
                                          ///< split into fields (raw user ids and PII!)
};

struct PrepParams {
  std::vector<std::string> input;   ///< files or globs (mandatory)
  std::string catalogue;            ///< optional item catalogue (CSV)
  std::string output_dir;           ///< mandatory
  /// Spill partitions = shard files. 0 = auto: one per `partition_bytes` of input (at least
  /// 1), so the memory phases 2 and 3 need per partition stays flat as inputs grow.
  int partitions = 0;
  int64_t partition_bytes = 48ll << 20;  ///< input bytes per partition under partitions=auto
  int threads = 2;                  ///< tokenizer encode threads
  int seq_len = 256;                ///< L: last L input events per user
  int text_len = 64;                ///< T: text tokens from the most recent reviews
  std::string train_cutoff = "auto";  ///< ISO/unix or auto (= val_cutoff - label window)
  std::string val_cutoff = "auto";    ///< auto = test_cutoff - label window
  std::string test_cutoff = "auto";   ///< auto = last event + 1 ms - label window
  double label_window_days = 14;
  /// How the train / val / test splits are cut (recorded in the shards as `protocol`):
  ///   temporal        global cut-offs; targets = the label window after each (production)
  ///   leave_last_out  per user: the last target-type event is test's target, the one before
  ///                   val's, the one before that train's; inputs = everything before the
  ///                   target (the SASRec / BERT4Rec protocol; ties keep input order)
  /// Both write a fourth split `latest`: every event as input, no target (exports).
  std::string protocol = "temporal";
  /// Events that count as targets and as training positives (recorded in the shards).
  std::vector<std::string> target_event_types = {"click", "cart", "purchase"};
  int64_t min_input_events = 1;     ///< users with fewer inputs are left out of a split
  int64_t min_item_count = 2;       ///< rarer items (counted before train_cutoff) map to the
                                    ///< OOV id 1, as do items first seen after it
  int64_t min_category_count = 1;
  bool train_tokenizer = true;      ///< false: no text tokens
  tok::TokenizerTrainParams tokenizer;
  bool progress = true;
  /// Multi-process prep: this process's rank and the world size. With world > 1 every rank
  /// must see output_dir (shared file system) and both functions below must be set.
  int rank = 0, world = 1;
  /// Every rank arrives before any leaves; `name` is the same on every rank.
  std::function<void(const std::string& name)> barrier;
  /// Rank 0's `value` on every rank.
  std::function<std::string(const std::string& name, const std::string& value)> broadcast;
  DataParams data;
  // Set by the caller, not from config:
  std::string config_yaml;          ///< resolved config text stored in every shard
  std::string hash_key;             ///< overrides key_file / key_env (tests, benchmarks)
  /// Tests: return after writing this many shards, as a prep killed midway would leave the
  /// directory (no summary, no manifest). One process only.
  int64_t debug_max_shards = -1;
};

/// Sections `prep`, `data` and `prep.tokenizer`; rejects unknown keys.
PrepParams prep_params_from_config(const cfg::Node& resolved_root);
/// Reads the `data` group section into `d` (rejects unknown keys).
void read_data_params(const cfg::Node& resolved_root, DataParams& d);

struct PrepSummary {
  int64_t rows = 0;               ///< data rows read (headers excluded)
  int64_t accepted_events = 0;    ///< events in shards' history (after all cleaning)
  int64_t quarantined = 0;        ///< rows in quarantine.jsonl
  std::map<std::string, int64_t> rejects;  ///< reason -> rows (every reason listed)
  int64_t users = 0;              ///< users kept
  int64_t users_per_split[4] = {0, 0, 0, 0};  ///< train, val, test, latest (data::kSplitNames)
  int64_t cutoff_ms[3] = {0, 0, 0};
  int64_t items = 0, categories = 0;  ///< vocabulary sizes (incl. pad/oov); counted before
                                      ///< the train cut-off only
  int64_t pii_masked = 0;
  std::string tokenizer_sha256;
  std::vector<std::string> shards;  ///< every shard of the run (all ranks')
  double seconds = 0;              ///< wall time of the whole run (this rank)
  double read_seconds = 0;         ///< phase 1: parse + validate + mask + pseudonymize + spill
                                   ///< (the slowest rank)
};

/// Runs prep (this rank's share when world > 1). Every rank returns the same summary; rank 0
/// writes the run-level outputs (quarantine.jsonl, prep_summary.json, reviews.txt, tokenizer,
/// id map).
PrepSummary run_prep(const PrepParams& p);

/// HMAC-SHA256(key, raw_id) as 32 lower-case hex chars (the first 16 bytes).
std::string pseudonymize(std::string_view key, std::string_view raw_id);

}  // namespace portrait::data
