// HDF5 training shards written by `portrait prep` and read by the loader (and by h5py).
//
// File layout (one file per partition, "shard_00000.h5"):
//   attributes on "/": format = "portrait-shard", format_version = 1 (int64), shard_index,
//     num_shards, tokenizer_sha256 ("" without text), prep_config (YAML text), seq_len,
//     text_len, label_window_ms, and per split "<split>_cutoff_ms".
//   /vocab/items, /vocab/categories          variable-length UTF-8 strings; index = token id
//                                            (0 "<pad>", 1 "<oov>")
//   /vocab/item_counts, /vocab/category_counts int64, same length (counts of the OOV bucket
//                                            at index 1)
//   /vocab/event_types                        "<pad>", "view", "click", "cart", "purchase", "review"
//   /users/id                                 pseudonymous user ids (HMAC-SHA256, hex)
//   /<split>/ for split in train, val, test — ragged per-user arrays, row i = i-th user:
//     user             int32 [n]      index into /users/id
//     input_offsets    int64 [n+1]    events of row i: [input_offsets[i], input_offsets[i+1])
//     input_item, input_category, input_event, input_gap, input_price   int32 [E]
//     input_ts         int64 [E]      unix ms, all strictly before the split's cutoff
//     text_offsets     int64 [n+1];   text_tokens int32 [T]  (SentencePiece ids)
//     target_offsets   int64 [n+1];   target_item, target_category, target_event int32,
//                                     target_ts int64: future positive actions in
//                                     [cutoff, cutoff + label_window)
//     purchase_offsets int64 [n+1];   purchase_category int32: distinct categories purchased
//                                     within the window (multi-hot labels)
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace portrait::data {

inline constexpr const char* kShardFormat = "portrait-shard";
inline constexpr int64_t kShardFormatVersion = 1;
inline constexpr const char* kSplitNames[] = {"train", "val", "test"};
inline constexpr int32_t kPadToken = 0;
inline constexpr int32_t kOovToken = 1;

/// The ragged arrays of one split of one shard.
struct SplitArrays {
  std::vector<int32_t> user;
  std::vector<int64_t> input_offsets{0};
  std::vector<int32_t> input_item, input_category, input_event, input_gap, input_price;
  std::vector<int64_t> input_ts;
  std::vector<int64_t> text_offsets{0};
  std::vector<int32_t> text_tokens;
  std::vector<int64_t> target_offsets{0};
  std::vector<int32_t> target_item, target_category, target_event;
  std::vector<int64_t> target_ts;
  std::vector<int64_t> purchase_offsets{0};
  std::vector<int32_t> purchase_category;
  size_t size() const { return user.size(); }
};

struct ShardContents {
  std::map<std::string, std::string> str_attrs;   ///< format, tokenizer_sha256, prep_config ...
  std::map<std::string, int64_t> int_attrs;       ///< format_version, seq_len, cutoffs ...
  std::vector<std::string> items, categories, event_types, user_ids;
  std::vector<int64_t> item_counts, category_counts;
  SplitArrays splits[3];                          ///< train, val, test
};

/// Writes `c` to `path` atomically (temporary file + rename). Sets format/format_version.
void write_shard(const std::filesystem::path& path, const ShardContents& c);

/// Reads a shard; throws DataError naming the file when it is not a portrait shard or has an
/// unsupported format_version. `splits` selects which splits to read (others left empty);
/// `with_vocab` = false skips the vocabularies.
ShardContents read_shard(const std::filesystem::path& path,
                         const std::vector<std::string>& splits = {"train", "val", "test"},
                         bool with_vocab = true);

/// Shard files in a directory ("shard_*.h5"), sorted.
std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir);

}  // namespace portrait::data
