// The seal of a `portrait prep` output directory: prep_manifest.json, written LAST by prep
// (after every shard, the tokenizer and prep_summary.json), and removed FIRST when a prep
// starts writing into the directory. Its presence says "one prep run finished here and these
// are exactly its shards"; a prep killed midway, a killed rerun with another partition count
// and a directory with foreign shard files all fail its checks instead of training on a
// partial or mixed set of users.
//
// Format (JSON, one object):
//   format = "portrait-prep-manifest", format_version = 1,
//   prep_run_id        hex id of the run (also attribute `prep_run_id` of every shard):
//                      sha256 of what decides the shards' contents (config, inputs' names and
//                      sizes, partition count, vocabularies, tokenizer), so identical reruns
//                      keep byte-identical outputs while different runs differ,
//   vocab_fingerprint  sha256 of the vocabularies and the tokenizer (also a shard attribute):
//                      what a model trained on these shards depends on; carried into models,
//                      checkpoints and exports and compared wherever two artefacts meet,
//   tokenizer_sha256   "" without text,
//   num_shards         int,
//   shards             [{"file": "shard_00000.h5", "bytes": int, "sha256": hex}, ...] in
//                      shard_index order, file names relative to the directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace portrait::data {

inline constexpr const char* kManifestFile = "prep_manifest.json";
inline constexpr const char* kManifestFormat = "portrait-prep-manifest";
inline constexpr int64_t kManifestFormatVersion = 1;

struct ManifestShard {
  std::string file;  ///< name inside the directory
  int64_t bytes = 0;
  std::string sha256;
};

struct PrepManifest {
  std::string prep_run_id, vocab_fingerprint, tokenizer_sha256;
  int64_t num_shards = 0;
  std::vector<ManifestShard> shards;
};

/// sha256 over the vocabularies (items, categories, event types, in token-id order) and the
/// tokenizer hash: two shard sets with equal fingerprints map every token id alike.
std::string vocab_fingerprint(const std::vector<std::string>& items, const std::vector<std::string>& categories,
                              const std::vector<std::string>& event_types, const std::string& tokenizer_sha256);

/// Hashes `shard_files` (in shard_index order) and writes `<dir>/prep_manifest.json`
/// atomically. Returns what it wrote.
PrepManifest write_prep_manifest(const std::filesystem::path& dir, const std::string& prep_run_id,
                                 const std::string& vocab_fingerprint, const std::string& tokenizer_sha256,
                                 const std::vector<std::filesystem::path>& shard_files);

/// Removes the manifest (a prep about to write into `dir` unseals it first).
void remove_prep_manifest(const std::filesystem::path& dir);

/// Reads `<dir>/prep_manifest.json` and checks the directory against it: every listed shard
/// present with its recorded size, no other shard_*.h5; `checksums` also compares every
/// shard's sha256 (reads all bytes). Throws DataError naming the file and the fix.
PrepManifest verify_prep_dir(const std::filesystem::path& dir, bool checksums = false);

}  // namespace portrait::data
