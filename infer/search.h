// `portrait search`: lookalike audiences and item recommendations by exact top-k search over
// an embeddings export (kernels/topk.h; the CUDA host-streaming search when a GPU is present).
//
// Lookalikes: the seed users (pseudonymous ids, one per line in `seeds`; blank lines and
// lines starting with '#' ignored; unknown ids are counted and skipped) are averaged into one
// query (mean of their unit embeddings); the top-k most similar users are returned, the
// seeds themselves excluded (topk exclusion list).
// Recommendations: every user (or those listed in `users`) against /item_embedding; the
// padding (0) and OOV (1) items and, with exclude_purchased, every item the user purchased
// in the split's input events (shards, event type "purchase") are excluded; with exclude_seen,
// every item of any event in them (discovery: nothing the user has viewed, clicked, carted or
// bought, which matters because the repeat channel ranks a user's own items high).
//
// Outputs in `output_dir`:
//   lookalikes.csv     rank,user_id,score                 (rank from 1)
//   lookalikes.jsonl   {"rank":1,"user_id":"..","score":0.93} per line
//   recommendations.csv   user_id,rank,item_id,score
//   recommendations.jsonl {"user_id":"..","items":["..",..],"scores":[..]} per line
//   search.h5  format = "portrait-search" (+ the derived-file attributes), metric, top_k;
//     /lookalike/seed_id [S] (seeds found), /lookalike/user_id [k'] fixed strings,
//     /lookalike/row [k'] int64 (row in the embeddings file), /lookalike/score [k'] float32;
//     /recommend/user_id [Q], /recommend/item [Q, k] int64 item token ids (-1 = no item),
//     /recommend/score [Q, k] float32, /recommend/item_names [n_items] vlen (vocabulary)
// Scores: cosine similarity (default) or inner product; higher is better.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config/node.h"

namespace portrait::infer {

inline constexpr const char* kSearchFormat = "portrait-search";

struct SearchParams {
  std::string embeddings;          ///< embeddings export (mandatory)
  std::string output_dir;          ///< mandatory
  std::string mode = "both";       ///< lookalike | recommend | both
  std::string seeds;               ///< seed id file (mandatory for lookalike)
  std::string users;               ///< recommend only for these ids ("" = every user)
  std::string shards;              ///< purchases for exclusion ("" = the export's shards)
  int top_k = 100;                 ///< results per query (<= 1024)
  std::string metric = "cosine";   ///< cosine | ip
  bool exclude_purchased = true;   ///< recommendations skip items already purchased
  bool exclude_seen = false;       ///< ... or every item in the user's history (any event type)
  int64_t block_rows = 16384;      ///< recommendation queries per search call
  int threads = 0;                 ///< CPU threads (0 = all cores)
  std::string device = "auto";     ///< auto | cpu | cuda
  // Set by the caller:
  std::string config_yaml;
};

SearchParams search_params_from_config(const cfg::Node& resolved_root);

struct SearchSummary {
  std::string output_dir;
  int64_t seeds_found = 0, seeds_missing = 0;
  int64_t lookalikes = 0;               ///< rows written
  int64_t recommend_users = 0;
  int64_t excluded_purchases = 0;       ///< (user, item) pairs excluded (purchased or seen)
  double wall_s = 0;
};

SearchSummary run_search(const SearchParams& p);

/// Non-empty, non-comment lines of an id file (trimmed).
std::vector<std::string> read_id_file(const std::string& path);

/// Per user id (of the given split of the shards): sorted distinct item ids purchased in the
/// input events. Users with no purchase are absent.
std::unordered_map<std::string, std::vector<int64_t>> purchased_items(const std::string& shards,
                                                                     const std::string& split);
/// The same for every input event, whatever its type (the items a user has seen).
std::unordered_map<std::string, std::vector<int64_t>> seen_items(const std::string& shards,
                                                                const std::string& split);

}  // namespace portrait::infer
