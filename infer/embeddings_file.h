// Reading a `portrait embed` export (see embed.h for the layout). Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace portrait::infer {

struct EmbeddingsFile {
  std::string path;
  int64_t n = 0, dim = 0;
  std::vector<float> x;                 ///< [n, dim] (float16 files are widened)
  std::vector<std::string> user_id;     ///< [n]
  std::string checkpoint_sha256, split, shards, dtype;
  // Items (when read with items = true and present).
  int64_t n_items = 0;
  std::vector<float> items;             ///< [n_items, dim]
  std::vector<std::string> item_id;
  // Purchase heads (when read with head = true and present).
  int64_t head_hidden = 0, head_targets = 0;
  std::vector<float> w1, b1, w2, b2;
  std::vector<std::string> head_target;
  std::string head_activation;
};

/// Reads the export; throws DataError naming the file when it is not a complete
/// portrait-embeddings file or has an unsupported format_version.
EmbeddingsFile read_embeddings(const std::string& path, bool items = false, bool head = false);

/// Common attributes of every file derived from an embeddings export (segments, scores,
/// search): format, format_version, source embeddings path and checkpoint hash, created_utc.
void tag_derived_file(int64_t file_id, const char* format, const EmbeddingsFile& src,
                      const std::string& config_yaml);

/// A CSV field, quoted (RFC 4180) when it contains a comma, quote or newline.
std::string csv_field(const std::string& s);

}  // namespace portrait::infer
