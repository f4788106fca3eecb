// Reading a `portrait embed` export (see embed.h for the layout). Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/fs.h"

namespace portrait::infer {

struct EmbeddingsFile {
  std::string path;
  int64_t n = 0, dim = 0;
  std::vector<float> x;                 ///< [n, dim] (float16 files are widened)
  std::vector<std::string> user_id;     ///< [n]
  std::string checkpoint_sha256, split, shards, dtype;
  /// Provenance carried from the shards (data/manifest.h); "" in exports older than them.
  std::string vocab_fingerprint, prep_run_id, tokenizer_sha256;
  /// Files the export's datasets live in: the file itself, then its VDS part files.
  std::vector<std::string> files;
  // Items (when read with items = true and present).
  int64_t n_items = 0;
  std::vector<float> items;             ///< [n_items, dim]
  std::vector<std::string> item_id;
  // Purchase heads (when read with head = true and present).
  int64_t head_hidden = 0, head_targets = 0;
  std::vector<float> w1, b1, w2, b2;
  std::vector<std::string> head_target;
  std::string head_activation;
  std::string head_calibration;         ///< JSON text of core/calibration.h's HeadCalibration ("" = none)
};

/// Reads the export; throws DataError naming the file when it is not a complete
/// portrait-embeddings file, has an unsupported format_version, when a virtual dataset's
/// part file is missing (HDF5 would read its rows as zeros: an embeddings.h5 copied without
/// its .parts folder), or when an embedding or head weight is not finite (NaN rows would
/// become confident scores and vanish from searches).
EmbeddingsFile read_embeddings(const std::string& path, bool items = false, bool head = false);

/// The export's files as inputs named by `key`, for check_output_not_input.
std::vector<NamedInput> embeddings_inputs(const EmbeddingsFile& e, const std::string& key);

/// Throws DataError when the prep output `shards` (named by config key `key`) has another
/// vocabulary than the shards the export was embedded from: token ids would name other items.
void check_same_vocabulary(const EmbeddingsFile& e, const std::string& shards, const std::string& key);

/// Common attributes of every file derived from an embeddings export (segments, scores,
/// search): format, format_version, source embeddings path and checkpoint hash, created_utc.
void tag_derived_file(int64_t file_id, const char* format, const EmbeddingsFile& src,
                      const std::string& config_yaml);

/// A CSV field, quoted (RFC 4180) when it contains a comma, quote or newline.
std::string csv_field(const std::string& s);

}  // namespace portrait::infer
