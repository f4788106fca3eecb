// `portrait search`: see search.h.
#include "infer/search.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/shard.h"
#include "infer/embeddings_file.h"
#include "infer/h5.h"
#include "kernels/dispatch.h"
#include "kernels/topk.h"

namespace portrait::infer {

namespace k = portrait::kernels;

SearchParams search_params_from_config(const cfg::Node& root) {
  SearchParams p;
  cfg::Section s(root, "search");
  s.read("embeddings", p.embeddings);
  s.read("output_dir", p.output_dir);
  s.read_enum("mode", p.mode, {"lookalike", "recommend", "both"});
  s.read("seeds", p.seeds);
  s.read("users", p.users);
  s.read("shards", p.shards);
  s.read("top_k", p.top_k, 1, k::kTopKMax);
  s.read_enum("metric", p.metric, {"cosine", "ip"});
  s.read("exclude_purchased", p.exclude_purchased);
  s.read("exclude_seen", p.exclude_seen);
  s.read("block_rows", p.block_rows, int64_t{1});
  s.read("threads", p.threads, 0, 1024);
  s.read_enum("device", p.device, {"auto", "cpu", "cuda"});
  s.finish();
  return p;
}

std::vector<std::string> read_id_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError("cannot read id file " + path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    auto b = line.find_first_not_of(" \t\r\n");
    if (b == std::string::npos || line[b] == '#') continue;
    auto e = line.find_last_not_of(" \t\r\n");
    out.push_back(line.substr(b, e - b + 1));
  }
  return out;
}

namespace {

// Distinct input items per user; only_purchases keeps events of type "purchase".
std::unordered_map<std::string, std::vector<int64_t>> history_items(const std::string& shards,
                                                                   const std::string& split, bool only_purchases) {
  int si = data::split_index(split);
  if (si < 0) throw DataError("unknown split '" + split + "'");
  std::unordered_map<std::string, std::vector<int64_t>> out;
  auto files = data::list_shards(shards);
  if (files.empty()) throw DataError("no shard_*.h5 in " + shards);
  int32_t purchase = -1;
  for (auto& f : files) {
    auto c = data::read_shard(f, {split}, purchase < 0);
    if (purchase < 0) {
      auto it = std::find(c.event_types.begin(), c.event_types.end(), "purchase");
      if (it == c.event_types.end()) throw DataError(f.string() + ": no 'purchase' event type");
      purchase = int32_t(it - c.event_types.begin());
    }
    const auto& a = c.splits[si];
    for (size_t r = 0; r < a.size(); ++r) {
      std::vector<int64_t> items;
      for (int64_t e = a.input_offsets[r]; e < a.input_offsets[r + 1]; ++e)
        if (!only_purchases || a.input_event[size_t(e)] == purchase) items.push_back(a.input_item[size_t(e)]);
      if (items.empty()) continue;
      std::sort(items.begin(), items.end());
      items.erase(std::unique(items.begin(), items.end()), items.end());
      out[c.user_ids[size_t(a.user[r])]] = std::move(items);
    }
  }
  return out;
}

}  // namespace

std::unordered_map<std::string, std::vector<int64_t>> purchased_items(const std::string& shards,
                                                                     const std::string& split) {
  return history_items(shards, split, /*only_purchases=*/true);
}

std::unordered_map<std::string, std::vector<int64_t>> seen_items(const std::string& shards,
                                                                const std::string& split) {
  return history_items(shards, split, /*only_purchases=*/false);
}

namespace {

// What both halves of `portrait search` read and write; one member function per half.
struct SearchRun {
  const SearchParams& p;
  const EmbeddingsFile& e;
  const std::unordered_map<std::string, int64_t>& row_of;  // user id -> embeddings row
  int d;
  k::Metric metric;
  k::Backend backend;
  std::filesystem::path dir;
  const h5::H& f;  // search.h5 (temporary name)
  SearchSummary& sum;

  void write_lookalikes(std::optional<AtomicStream>& look_csv,
                        std::optional<AtomicStream>& look_jl) const;
  void write_recommendations(std::optional<AtomicStream>& rec_csv,
                             std::optional<AtomicStream>& rec_jl) const;
};

// Lookalikes of the seed ids' mean unit vector: /lookalike in search.h5, lookalikes.{csv,jsonl}.
void SearchRun::write_lookalikes(std::optional<AtomicStream>& look_csv,
                                 std::optional<AtomicStream>& look_jl) const {
  std::vector<std::string> seeds_found;
  std::vector<int64_t> seed_rows;
  for (auto& id : read_id_file(p.seeds)) {
    auto it = row_of.find(id);
    if (it == row_of.end()) {
      ++sum.seeds_missing;
      continue;
    }
    seed_rows.push_back(it->second);
    seeds_found.push_back(id);
  }
  std::sort(seed_rows.begin(), seed_rows.end());
  seed_rows.erase(std::unique(seed_rows.begin(), seed_rows.end()), seed_rows.end());
  sum.seeds_found = int64_t(seed_rows.size());
  if (seed_rows.empty())
    throw DataError(fmt::format("search: none of the {} ids in {} is in {}", sum.seeds_missing,
                                p.seeds, p.embeddings));
  if (sum.seeds_missing)
    PLOG_WARN("search: {} seed id(s) of {} not in the export (skipped)", sum.seeds_missing, p.seeds);
  std::vector<float> q(size_t(d), 0.f);
  for (int64_t r : seed_rows) {
    const float* x = e.x.data() + size_t(r) * size_t(d);
    const float inv = k::row_inv_norm(x, d);
    for (int j = 0; j < d; ++j) q[size_t(j)] += x[j] * inv;
  }
  for (auto& v : q) v /= float(seed_rows.size());
  int64_t off[2] = {0, int64_t(seed_rows.size())};
  k::TopKParams tp;
  tp.k = p.top_k;
  tp.metric = metric;
  tp.exclude_offsets = off;
  tp.exclude_ids = seed_rows.data();
  tp.num_threads = p.threads;
  std::vector<float> sc(size_t(p.top_k));
  std::vector<int64_t> ids(size_t(p.top_k));
  k::topk(q.data(), 1, e.x.data(), e.n, d, tp, sc.data(), ids.data(), backend);
  std::vector<std::string> uid;
  std::vector<int64_t> rows;
  std::vector<float> scores;
  auto& csv = look_csv.emplace(dir / "lookalikes.csv");
  auto& jl = look_jl.emplace(dir / "lookalikes.jsonl");
  csv << "rank,user_id,score\n";
  for (int i = 0; i < p.top_k; ++i) {
    if (ids[size_t(i)] < 0) break;
    const auto& id = e.user_id[size_t(ids[size_t(i)])];
    uid.push_back(id);
    rows.push_back(ids[size_t(i)]);
    scores.push_back(sc[size_t(i)]);
    csv << (i + 1) << ',' << id << ',' << fmt::format("{:.6g}", sc[size_t(i)]) << '\n';
    jl << nlohmann::json{{"rank", i + 1}, {"user_id", id}, {"score", sc[size_t(i)]}}.dump() << '\n';
  }
  sum.lookalikes = int64_t(uid.size());
  h5::H g = h5::create_group(f, "lookalike");
  h5::write_fixed_strings(g, "seed_id", seeds_found);
  h5::write_fixed_strings(g, "user_id", uid);
  h5::write_i64(g, "row", rows.data(), {hsize_t(rows.size())});
  h5::write_float(g, "score", scores.data(), {hsize_t(scores.size())});
}

// Top items per user (all users or search.users), history excluded: /recommend in search.h5,
// recommendations.{csv,jsonl}.
void SearchRun::write_recommendations(std::optional<AtomicStream>& rec_csv,
                                      std::optional<AtomicStream>& rec_jl) const {
  if (e.n_items == 0) throw DataError(p.embeddings + ": no /item_embedding (embed.export_items=false?)");
  std::vector<int64_t> qrows;
  if (p.users.empty()) {
    qrows.resize(size_t(e.n));
    for (int64_t i = 0; i < e.n; ++i) qrows[size_t(i)] = i;
  } else {
    for (auto& id : read_id_file(p.users)) {
      auto it = row_of.find(id);
      if (it != row_of.end()) qrows.push_back(it->second);
    }
  }
  std::unordered_map<std::string, std::vector<int64_t>> excluded;  // per user id, sorted
  const std::string hist_shards = p.shards.empty() ? e.shards : p.shards;
  check_same_vocabulary(e, hist_shards, p.shards.empty() ? "the export's shards" : "search.shards");
  if (p.exclude_seen) excluded = seen_items(hist_shards, e.split);
  else if (p.exclude_purchased) excluded = purchased_items(hist_shards, e.split);
  const int64_t Q = int64_t(qrows.size()), K = p.top_k;
  sum.recommend_users = Q;
  h5::H g = h5::create_group(f, "recommend");
  std::vector<std::string> qids(static_cast<size_t>(Q));
  for (int64_t i = 0; i < Q; ++i) qids[size_t(i)] = e.user_id[size_t(qrows[size_t(i)])];
  h5::write_fixed_strings(g, "user_id", qids);
  h5::write_vlen_strings(g, "item_names", e.item_id);
  hsize_t dims[2] = {hsize_t(Q), hsize_t(K)};
  h5::H sp(H5Screate_simple(2, dims, nullptr), H5Sclose);
  h5::H ds_item(H5Dcreate2(g, "item", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  h5::H ds_score = h5::create_float(g, "score", {hsize_t(Q), hsize_t(K)}, {false, 0, 0});
  auto& csv = rec_csv.emplace(dir / "recommendations.csv");
  auto& jl = rec_jl.emplace(dir / "recommendations.jsonl");
  csv << "user_id,rank,item_id,score\n";
  std::vector<float> qbuf, sc;
  std::vector<int64_t> ids, ex_off, ex_ids;
  for (int64_t b0 = 0; b0 < Q; b0 += p.block_rows) {
    const int64_t nb = std::min(p.block_rows, Q - b0);
    qbuf.resize(size_t(nb) * size_t(d));
    ex_off.assign(1, 0);
    ex_ids.clear();
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t r = qrows[size_t(b0 + i)];
      std::copy_n(e.x.data() + size_t(r) * size_t(d), d, qbuf.data() + size_t(i) * size_t(d));
      ex_ids.push_back(0);  // padding
      ex_ids.push_back(1);  // OOV bucket
      auto it = excluded.find(e.user_id[size_t(r)]);
      if (it != excluded.end())
        for (int64_t item : it->second)
          if (item > 1 && item < e.n_items) {
            ex_ids.push_back(item);
            ++sum.excluded_purchases;
          }
      ex_off.push_back(int64_t(ex_ids.size()));
    }
    k::TopKParams tp;
    tp.k = p.top_k;
    tp.metric = metric;
    tp.exclude_offsets = ex_off.data();
    tp.exclude_ids = ex_ids.data();
    tp.num_threads = p.threads;
    sc.resize(size_t(nb * K));
    ids.resize(size_t(nb * K));
    k::topk(qbuf.data(), nb, e.items.data(), e.n_items, d, tp, sc.data(), ids.data(), backend);
    h5::write_rows(ds_item, H5T_NATIVE_INT64, hsize_t(b0), hsize_t(nb), ids.data());
    h5::write_rows(ds_score, H5T_NATIVE_FLOAT, hsize_t(b0), hsize_t(nb), sc.data());
    for (int64_t i = 0; i < nb; ++i) {
      const auto& uid = qids[size_t(b0 + i)];
      nlohmann::json items = nlohmann::json::array(), scores = nlohmann::json::array();
      for (int64_t j = 0; j < K; ++j) {
        int64_t it = ids[size_t(i * K + j)];
        if (it < 0) break;
        const std::string& name = e.item_id[size_t(it)];
        csv << uid << ',' << (j + 1) << ',' << csv_field(name) << ',' << fmt::format("{:.6g}", sc[size_t(i * K + j)]) << '\n';
        items.push_back(name);
        scores.push_back(sc[size_t(i * K + j)]);
      }
      jl << nlohmann::json{{"user_id", uid}, {"items", items}, {"scores", scores}}.dump() << '\n';
    }
  }
}

}  // namespace

SearchSummary run_search(const SearchParams& p) {
  auto t0 = std::chrono::steady_clock::now();
  if (p.embeddings.empty()) throw ConfigError("search.embeddings: the embeddings file is mandatory");
  if (p.output_dir.empty()) throw ConfigError("search.output_dir is mandatory");
  const bool do_look = p.mode != "recommend", do_rec = p.mode != "lookalike";
  if (do_look && p.seeds.empty())
    throw ConfigError("search.seeds: a seed id file is needed for lookalikes (or search.mode=recommend)");
  const k::Backend backend = k::choose_backend(p.device, "search.device");

  EmbeddingsFile e = read_embeddings(p.embeddings, do_rec, false);
  const int d = int(e.dim);
  const k::Metric metric = p.metric == "cosine" ? k::Metric::kCosine : k::Metric::kInnerProduct;
  std::unordered_map<std::string, int64_t> row_of;
  row_of.reserve(size_t(e.n));
  for (int64_t i = 0; i < e.n; ++i) row_of.emplace(e.user_id[size_t(i)], i);

  {
    std::vector<NamedInput> inputs = embeddings_inputs(e, "search.embeddings");
    if (!p.users.empty()) inputs.push_back({"search.users", p.users});
    for (const char* name : {"search.h5", "lookalikes.csv", "lookalikes.jsonl", "recommendations.csv",
                             "recommendations.jsonl"})
      check_output_not_input(std::filesystem::path(p.output_dir) / name, std::string("search.output_dir's ") + name,
                             inputs);
  }
  const std::filesystem::path dir(p.output_dir);
  std::filesystem::create_directories(dir);
  SearchSummary sum;
  sum.output_dir = p.output_dir;
  // Every output is written under a temporary name and renamed only when all of them are
  // complete: a failure (a full disk) leaves the previous outputs, never a mix.
  AtomicOutput ao(dir / "search.h5");
  std::optional<AtomicStream> look_csv, look_jl, rec_csv, rec_jl;
  h5::H f = h5::create_file(ao.temp_path());
  tag_derived_file(f, kSearchFormat, e, p.config_yaml);
  h5::set_attr(f, "metric", p.metric);
  h5::set_attr(f, "top_k", int64_t(p.top_k));

  const SearchRun run{p, e, row_of, d, metric, backend, dir, f, sum};
  if (do_look) run.write_lookalikes(look_csv, look_jl);
  if (do_rec) run.write_recommendations(rec_csv, rec_jl);
  h5::close_file(f, ao.temp_path());
  for (auto* s : {&look_csv, &look_jl, &rec_csv, &rec_jl})
    if (*s) (*s)->commit();
  ao.commit();
  sum.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PLOG_INFO("search: {} lookalikes from {} seeds, recommendations for {} users -> {}", sum.lookalikes,
            sum.seeds_found, sum.recommend_users, p.output_dir);
  return sum;
}

}  // namespace portrait::infer
