// Torch-free batch loader over `portrait prep` shards (a directory sealed by its
// prep_manifest.json, verified on construction: see data/manifest.h): random access by global user index,
// a deterministic shuffle per (seed, epoch), sharding by GLOBAL position across ranks, and
// background prefetch threads producing padded int32/float arrays.
//
// Memory: by default (LoaderParams::lazy) the loader keeps only per-shard metadata and reads
// the rows of each batch from the HDF5 files (ShardSplitReader), so a split of any size costs
// O(batch) memory; user_id() loads a shard's id list on first use. lazy = false loads every
// shard's split up front (the original behaviour; fastest for small data).
//
// Global order: epoch e visits users in permutation perm(seed, e) of [0, N). Global batch b
// is perm[b*G, (b+1)*G) with G = batch_size * world; rank r takes positions r, r+W, r+2W, ...
// of it. Resuming at a sample offset (start_epoch(e, consumed)) continues the same global
// order under any world size, as long as the offset is a multiple of the new G.
//
// Batch layout (row-major, B = rows in this batch on this rank, <= batch_size):
//   item, category, event, gap, price : int32 [B, L]  events left-aligned, oldest first,
//                                       padding (0) after `length[b]` real events
//   input_mask                        : float [B, L]  1 real, 0 padding
//   text, text_mask                   : int32/float [B, T]  text tokens, left-aligned
//   target_item, target_category, target_event : int32 [B, M]; target_mask float [B, M]
//                                       first M future positive actions in the label window
//   purchase                          : float [B, C]  1 if category c was purchased in the
//                                       window (C = category vocabulary size)
//   user_index                        : int64 [B] global user index; length int32 [B]
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/shard.h"

namespace portrait::data {

struct LoaderParams {
  std::string shard_dir;          ///< directory with shard_*.h5 (mandatory)
  std::string split = "train";    ///< train | val | test
  int batch_size = 64;            ///< rows per rank per batch
  int max_targets = 32;           ///< M
  uint64_t seed = 0;
  bool shuffle = true;            ///< false: global order 0..N-1
  bool drop_last = false;         ///< drop the final incomplete global batch
  int rank = 0, world = 1;
  int prefetch = 4;               ///< batches prepared ahead
  int threads = 2;                ///< worker threads
  bool lazy = true;               ///< read batches from the files (false: load the split)
};

struct Batch {
  int64_t rows = 0, L = 0, T = 0, M = 0, C = 0;
  int64_t global_batch = 0;       ///< index of the global batch in the epoch
  std::vector<int64_t> user_index;
  std::vector<int32_t> length;
  std::vector<int32_t> item, category, event, gap, price;
  std::vector<float> input_mask;
  std::vector<int32_t> text;
  std::vector<float> text_mask;
  std::vector<int32_t> target_item, target_category, target_event;
  std::vector<float> target_mask;
  std::vector<float> purchase;
};

class Loader {
 public:
  explicit Loader(LoaderParams p);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t num_users() const { return total_; }
  int64_t seq_len() const { return L_; }
  int64_t text_len() const { return T_; }
  int64_t num_categories() const { return C_; }
  int64_t num_items() const { return I_; }
  /// The prep run (data/manifest.h) and vocabulary fingerprint of the verified shard set.
  const std::string& prep_run_id() const { return run_id_; }
  const std::string& vocab_fingerprint() const { return fingerprint_; }
  /// A string attribute of the first shard (protocol, target_event_types, ...); "" if absent.
  std::string str_attr(const std::string& name) const {
    auto it = attrs_.find(name);
    return it == attrs_.end() ? std::string() : it->second;
  }
  /// Global batches per epoch (each rank sees this many batches; the last may be short or
  /// empty on some ranks).
  int64_t batches_per_epoch() const;
  /// The global visiting order of an epoch.
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  /// Global user indices this rank gets in global batch `b` of `epoch`.
  std::vector<int64_t> rank_indices(int64_t epoch, int64_t b) const;
  /// A batch of arbitrary global user indices (random access), built synchronously.
  Batch make_batch(const std::vector<int64_t>& users) const;
  /// Pseudonymous id of a global user index.
  const std::string& user_id(int64_t global_index) const;

  /// Starts (or restarts) iteration at `start_sample` users into the global order of `epoch`.
  void start_epoch(int64_t epoch, int64_t start_sample = 0);
  /// Next batch of this rank, in order; false at the end of the epoch.
  bool next(Batch& out);

 private:
  void stop_workers();
  void locate(int64_t g, size_t& shard, size_t& row) const;

  LoaderParams p_;
  std::vector<ShardContents> shards_;                       // lazy = false
  std::vector<std::unique_ptr<ShardSplitReader>> readers_;  // lazy = true
  struct UserIds {
    std::vector<std::string> ids;
    std::vector<int32_t> user;
  };
  mutable std::mutex ids_mu_;
  mutable std::vector<std::unique_ptr<UserIds>> ids_;       // lazy: per shard, on first use
  std::vector<int64_t> starts_;  // prefix sums of users per shard
  std::map<std::string, std::string> attrs_;  // string attributes of the first shard
  std::string run_id_, fingerprint_;
  int64_t total_ = 0, L_ = 0, T_ = 0, C_ = 0, I_ = 0;
  int split_ = 0;

  // Iteration state.
  int64_t epoch_ = 0, first_batch_ = 0, end_batch_ = 0, next_batch_ = 0, next_claim_ = 0;
  std::vector<int64_t> order_;
  std::map<int64_t, Batch> ready_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace portrait::data
