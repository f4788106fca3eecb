// HDF5 training shards written by `portrait prep` and read by the loader (and by h5py).
//
// File layout (one file per partition, "shard_00000.h5"):
//   attributes on "/": format = "portrait-shard", format_version = 3 (int64), shard_index,
//     num_shards, prep_run_id and vocab_fingerprint (see data/manifest.h: the directory is
//     sealed by prep_manifest.json, and a shard belongs to it only with its run id),
//     tokenizer_sha256 ("" without text), prep_config (YAML text), seq_len,
//     text_len, label_window_ms, protocol ("temporal" | "leave_last_out": how the splits'
//     inputs and targets were cut, see data/prep.h), target_event_types (comma-separated
//     canonical names: the events that count as positives and targets), and per split
//     "<split>_cutoff_ms" (temporal: the cut-off; latest: last event + 1 ms; 0 where a
//     protocol has no global cut-off).
//   /vocab/items, /vocab/categories          variable-length UTF-8 strings; index = token id
//                                            (0 "<pad>", 1 "<oov>")
//   /vocab/item_counts, /vocab/category_counts int64, same length (counts of the OOV bucket
//                                            at index 1)
//   /vocab/event_types                        "<pad>", "view", "click", "cart", "purchase", "review"
//   /users/id                                 pseudonymous user ids (HMAC-SHA256, hex)
//   /<split>/ for split in train, val, test, latest — ragged per-user arrays, row i = i-th
//     user (latest: every event of the user as input, no targets: what exports embed):
//     user             int32 [n]      index into /users/id
//     input_offsets    int64 [n+1]    events of row i: [input_offsets[i], input_offsets[i+1])
//     input_item, input_category, input_event, input_gap, input_price   int32 [E]
//     input_ts         int64 [E]      unix ms, all before the split's targets
//     text_offsets     int64 [n+1];   text_tokens int32 [T]  (SentencePiece ids)
//     target_offsets   int64 [n+1];   target_item, target_category, target_event int32,
//                                     target_ts int64: temporal: the positive actions in
//                                     [cutoff, cutoff + label_window); leave_last_out: the
//                                     one positive event the inputs stop before
//     purchase_offsets int64 [n+1];   purchase_category int32: distinct categories purchased
//                                     within the window (multi-hot labels)
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace portrait {
class AtomicOutput;
}

namespace portrait::data {

inline constexpr const char* kShardFormat = "portrait-shard";
/// Version 2: a fourth split `latest` and the `protocol` / `target_event_types` attributes.
/// Version 3: `prep_run_id` / `vocab_fingerprint` attributes and the directory manifest.
inline constexpr int64_t kShardFormatVersion = 3;
inline constexpr int kNumSplits = 4;
inline constexpr const char* kSplitNames[kNumSplits] = {"train", "val", "test", "latest"};
inline constexpr int kLatestSplit = 3;
/// Index of a split name in kSplitNames, or -1.
int split_index(std::string_view name);
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
  SplitArrays splits[kNumSplits];                 ///< train, val, test, latest
};

/// Writes `c` to `path` atomically (temporary file + rename). Sets format/format_version.
void write_shard(const std::filesystem::path& path, const ShardContents& c);

/// Writes a shard one split at a time, so a writer holds one split's arrays at a time:
/// attributes, vocabularies and user ids from `header` (its splits are ignored), then
/// write_split(0), (1), (2) in order, then commit() (atomic rename). write_shard() is this.
class ShardWriter {
 public:
  ShardWriter(const std::filesystem::path& path, const ShardContents& header);
  ~ShardWriter();  ///< without commit(): the temporary file is removed
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  void write_split(int split, const SplitArrays& a);
  void commit();

 private:
  std::unique_ptr<AtomicOutput> out_;
  int64_t file_ = -1;
  int next_split_ = 0;
};

/// Reads a shard; throws DataError naming the file when it is not a portrait shard or has an
/// unsupported format_version. `splits` selects which splits to read (others left empty);
/// `with_vocab` = false skips the vocabularies.
ShardContents read_shard(const std::filesystem::path& path,
                         const std::vector<std::string>& splits = {"train", "val", "test", "latest"},
                         bool with_vocab = true);

/// Random access to the rows of one split of one shard without loading the split: each
/// read_rows() opens the file and reads only the requested rows (point selections for the
/// offsets, one hyperslab union per data array), so memory is O(rows read), not O(split).
/// Thread-safe (HDF5 calls are serialized).
class ShardSplitReader {
 public:
  /// Reads the attributes and the split's row count; throws DataError like read_shard.
  ShardSplitReader(std::filesystem::path path, const std::string& split);
  /// Closes the file descriptor read_rows() keeps (at most 256 shard files stay open per
  /// process; beyond that each read opens and closes its file).
  ~ShardSplitReader();
  ShardSplitReader(const ShardSplitReader&) = delete;
  ShardSplitReader& operator=(const ShardSplitReader&) = delete;
  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, std::string>& str_attrs() const { return str_attrs_; }
  const std::map<std::string, int64_t>& int_attrs() const { return int_attrs_; }
  int64_t rows() const { return rows_; }
  int64_t num_items() const { return items_; }        ///< /vocab/items length
  int64_t num_categories() const { return cats_; }    ///< /vocab/categories length
  /// The given rows (any order, repeats allowed) as SplitArrays whose row i is rows[i].
  SplitArrays read_rows(const std::vector<int64_t>& rows) const;
  /// /users/id of the shard and the split's /user column (row -> index into /users/id).
  void read_user_ids(std::vector<std::string>& ids, std::vector<int32_t>& user) const;

 private:
  std::filesystem::path path_;
  std::string split_;
  std::map<std::string, std::string> str_attrs_;
  std::map<std::string, int64_t> int_attrs_;
  int64_t rows_ = 0, items_ = 0, cats_ = 0;
  // Fast path: every array of the split is stored contiguously, uncompressed, in the native
  // type (as write_shard writes them), so rows are read with pread() at byte offsets found
  // once: no HDF5 call and no lock per read, and prefetch threads read in parallel. Other
  // layouts fall back to HDF5 hyperslab reads under the HDF5 mutex.
  struct Extent {
    uint64_t offset = 0;  // byte offset of element 0 in the file
    uint64_t length = 0;  // elements
  };
  bool raw_ = false;
  std::map<std::string, Extent> extents_;
  mutable std::mutex fd_mu_;
  mutable int fd_ = -1;
  int acquire_fd(bool& temporary) const;
  SplitArrays read_rows_raw(const std::vector<int64_t>& u) const;
  SplitArrays read_rows_hdf5(const std::vector<int64_t>& u) const;
};

/// The shards of a finished prep run in `dir`, in shard_index order, after verify_prep_dir
/// (data/manifest.h): throws DataError when the manifest is missing, or when shards are
/// missing, resized or not listed. Every reader of a shard directory goes through this.
std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir);
/// The "shard_*.h5" files present in `dir`, sorted, without any check (prep's own cleanup).
std::vector<std::filesystem::path> list_shard_files(const std::filesystem::path& dir);

}  // namespace portrait::data
