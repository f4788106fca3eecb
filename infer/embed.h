// `portrait embed`: streams every user of a split of the prepared shards (by default
// `latest`: each user's events up to the end of the logs, so an export is as fresh as its
// input) through a trained encoder and exports the L2-normalised user embeddings (plus item embeddings and the
// purchase-head weights) to HDF5 for h5py consumers.
//
// Output `<output>` (e.g. embeddings.h5), root attributes:
//   format = "portrait-embeddings", format_version = 1 (int64), checkpoint_sha256 (sha256 of
//   model.pt), model_dir, tokenizer_sha256, vocab_fingerprint and prep_run_id (of the shards
//   embedded, data/manifest.h: readers compare them with the shards or tokenizer they are
//   given), config_yaml (resolved config text), dim (int64),
//   num_users (int64), normalized = 1 (int64), repeat_dim (int64 R: the last R of the D
//   columns are the model's repeat channel, an item sketch of the user's history; the first
//   D - R the transformer's part; see models/encoder.h), dtype ("float32" | "float16"), split,
//   world_size, parts (int64), stitch ("vds" | "consolidate"), created_utc (ISO-8601 UTC),
//   torch_version, complete = 1 (written last).
// Datasets:
//   /embedding       [N, D] float32 (or IEEE float16 "<f2"), rows of ~1 MiB chunks, no
//                    compression by default (embed.gzip = 1..9 adds shuffle + deflate)
//   /user_id         [N] fixed-length null-padded UTF-8 strings, width = longest id (the
//                    pseudonyms of prep are 32 hex chars): h5py gives bytes ('S32'), use
//                    f['user_id'].asstr()[:] or .astype(str)
//   /item_embedding  [n_items, D] (same dtype), row = item token id (0 = padding, 1 = OOV)
//   /item_id         [n_items] vlen UTF-8 item names (the shards' /vocab/items)
//   /head/W1 [h, D], /head/b1 [h], /head/W2 [C, h], /head/b2 [C]  float32 (nn.Linear layout)
//   /head/target     [C] vlen UTF-8 target names (category vocabulary), attrs activation
//                    ("relu" | "gelu" = exact erf GELU), hidden, targets
//   /head/calibration [1] vlen UTF-8: the heads' calibration as JSON (core/calibration.h,
//                    format portrait-calibration), when the model has one (train.calibration)
// Row order: the split's users in shard order (shard_00000 rows first), i.e. the loader's
// global order with shuffle = false; rows are identical for any world size.
//
// Parts and resume: rows are cut into parts of `part_users`; part p is written by rank
// p % world to `<output>.parts/part-<p:05d>.h5` (/embedding, /user_id; attrs run_key, part,
// row0, rows, complete) under a temporary name and renamed when complete. A rerun skips every
// part whose file exists with the same run_key (model hash, split, N, part size, dtype, dim),
// so a killed run resumes with no duplicate and no missing row. After `barrier()` rank 0
// stitches:
//   stitch = "vds" (default): /embedding and /user_id are virtual datasets mapping row ranges
//     onto the parts with RELATIVE source paths ("<name>.parts/part-00000.h5"), so the output
//     file and its .parts folder move together as a unit;
//   stitch = "consolidate": the parts are copied into one self-contained file and removed.
// The output is written to a temporary name and renamed: it exists only when complete.
// Readers (read_embeddings) refuse a VDS export whose part files are missing, and any export
// holding a non-finite value; embed itself refuses a model that yields non-finite rows, shards
// of another vocabulary than the model's, and an output that is one of its inputs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/config/node.h"

namespace portrait::infer {

inline constexpr const char* kEmbeddingsFormat = "portrait-embeddings";
inline constexpr int64_t kEmbeddingsFormatVersion = 1;

struct EmbedParams {
  std::string model_dir;          ///< model artefact directory (model.json + model.pt); mandatory
  std::string shards;             ///< directory with shard_*.h5; mandatory
  std::string output;             ///< output file, e.g. run_dir/embeddings.h5; mandatory
  std::string split = "latest";   ///< latest (every event: as fresh as the logs) | train | val | test
  int batch_size = 1024;          ///< users per forward pass
  std::string dtype = "float32";  ///< on-disk embedding dtype: float32 | float16
  int gzip = 0;                   ///< 0 = uncompressed; 1..9 = shuffle + deflate level
  int64_t chunk_bytes = 1 << 20;  ///< target HDF5 chunk size (whole rows)
  int64_t part_users = 65536;     ///< users per part file (the resume granularity)
  std::string stitch = "vds";     ///< vds | consolidate
  bool export_items = true;       ///< write /item_embedding + /item_id
  bool export_head = true;        ///< write /head/* (when the model has purchase heads)
  int queue_depth = 4;            ///< batches buffered between compute and the HDF5 writer
  int threads = 0;                ///< torch intra-op threads (0 = torch default)
  std::string device = "auto";    ///< auto (cuda if available) | cpu | cuda
  std::string precision = "auto"; ///< auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
  bool progress = true;           ///< progress line on rank 0
  // Set by the caller, not from config:
  int rank = 0, world = 1;                ///< this process among `world` embedders
  std::function<void()> barrier;          ///< all ranks; required when world > 1
  std::string config_yaml;                ///< resolved config text stored in the output
  int64_t max_parts = -1;                 ///< debug: stop after writing this many parts
                                          ///< (simulates a killed run; no stitch)
};

/// Section `embed` of a resolved config (rejects unknown keys).
EmbedParams embed_params_from_config(const cfg::Node& resolved_root);

struct EmbedSummary {
  std::string output;           ///< final file ("" when not stitched by this rank)
  int64_t users = 0;            ///< rows of the whole export
  int64_t dim = 0;
  int64_t parts = 0;            ///< parts in the export
  int64_t parts_written = 0;    ///< written by this rank in this run
  int64_t parts_skipped = 0;    ///< found finished (resume)
  int64_t users_embedded = 0;   ///< users run through the encoder by this rank in this run
  bool stitched = false;        ///< this rank wrote the final file
  bool complete = false;        ///< false when stopped by max_parts
  double wall_s = 0;            ///< whole run_embed
  double compute_s = 0;         ///< batch building + forward passes
  double write_s = 0;           ///< HDF5 time on the writer thread (parts)
  double write_wait_s = 0;      ///< compute blocked on a full writer queue
  double stitch_s = 0;          ///< final file (VDS / consolidate + items + heads)
  double users_per_s = 0;       ///< users_embedded / wall_s
};

EmbedSummary run_embed(const EmbedParams& p);

}  // namespace portrait::infer
