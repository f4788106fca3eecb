// `portrait profile`: see profile.h.
#include "infer/profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/shard.h"
#include "infer/embeddings_file.h"
#include "infer/h5.h"
#include "infer/report.h"
#include "infer/segment.h"
#include "tokenizer/tokenizer.h"

#ifndef PORTRAIT_INFER_PYTHON
#define PORTRAIT_INFER_PYTHON "python3"
#endif

namespace portrait::infer {

namespace fs = std::filesystem;
using json = nlohmann::json;

ProfileParams profile_params_from_config(const cfg::Node& root) {
  ProfileParams p;
  cfg::Section s(root, "profile");
  s.read("embeddings", p.embeddings);
  s.read("segments", p.segments);
  s.read("scores", p.scores);
  s.read("shards", p.shards);
  s.read("tokenizer", p.tokenizer);
  s.read("metrics", p.metrics);
  s.read("output_dir", p.output_dir);
  s.read("min_segment_size", p.min_segment_size, int64_t{1});
  s.read("top_categories", p.top_categories, 0, 1000);
  s.read("top_terms", p.top_terms, 0, 1000);
  s.read("min_term_count", p.min_term_count, int64_t{1});
  s.read("representatives", p.representatives, 0, 1000);
  s.read("html", p.html);
  s.read("python", p.python);
  s.read("script", p.script);
  s.read("pca_sample", p.pca_sample, int64_t{10});
  s.read("title", p.title);
  s.read("rules", p.rules);
  s.finish();
  return p;
}

// Segment names, rules and tag shares (RFM names, lifecycle stages, price sensitivity) from
// `portrait tags` (segment_rules.json, or the run directory that holds it), by segment id. Rules selecting fewer than `min_users` users are left out, so the
// report publishes no aggregate below the k-anonymity floor.
std::map<int, json> read_segment_rules(const std::string& path, int64_t min_users) {
  std::map<int, json> out;
  if (path.empty()) return out;
  fs::path f(path);
  if (fs::is_directory(f)) f /= "segment_rules.json";
  json doc;
  try {
    doc = json::parse(read_file(f));
  } catch (const json::exception& ex) {
    throw DataError("profile.rules " + f.string() + ": not JSON (" + ex.what() + ")");
  }
  if (doc.value("format", "") != "portrait-segment-rules")
    throw DataError("profile.rules " + f.string() + ": not a portrait-segment-rules file (portrait tags writes it)");
  for (const auto& sj : doc.at("segments")) {
    if (sj.value("suppressed", false)) continue;
    json r{{"name", sj.value("name", "")}, {"rules", json::array()},
           {"tag_shares", sj.value("tag_shares", json::object())}};
    for (const auto& rule : sj.at("rules"))
      if (rule.value("users", int64_t{0}) >= min_users)
        r["rules"].push_back({{"text", rule.at("text")}, {"precision", rule.at("precision")},
                              {"coverage", rule.at("coverage")}});
    out[sj.at("segment").get<int>()] = r;
  }
  return out;
}

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + long(m), v.end());
  double hi = v[m];
  if (v.size() % 2) return hi;
  double lo = *std::max_element(v.begin(), v.begin() + long(m));
  return 0.5 * (lo + hi);
}
double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

/// Review-term normalisation: drop the SentencePiece word marker, lower-case ASCII; keep
/// pieces with a letter (or any non-ASCII, e.g. CJK) of at least 3 bytes, except masks.
std::optional<std::string> term_of(std::string piece) {
  static const std::string marker = "\xE2\x96\x81";  // U+2581
  while (piece.rfind(marker, 0) == 0) piece.erase(0, marker.size());
  if (piece.size() < 3 || piece.front() == '<' || piece.front() == '[') return std::nullopt;
  bool letter = false;
  for (auto& c : piece) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80 || std::isalpha(u)) letter = true;
    if (u < 0x80) c = char(std::tolower(u));
  }
  if (!letter) return std::nullopt;
  static const char* stop[] = {"the", "and", "for", "with", "this", "that", "was", "are", "but",
                               "not", "you", "have", "had", "its", "very", "they", "from"};
  for (auto* s : stop)
    if (piece == s) return std::nullopt;
  return piece;
}

struct SegStats {
  std::vector<double> recency, frequency, purchases, monetary;
  std::map<int32_t, int64_t> categories;
  int64_t events = 0;
  std::unordered_map<std::string, int64_t> terms;
  int64_t term_total = 0;
};

}  // namespace

ProfileSummary run_profile(const ProfileParams& p) {
  auto t0 = std::chrono::steady_clock::now();
  if (p.embeddings.empty()) throw ConfigError("profile.embeddings: the embeddings file is mandatory");
  if (p.segments.empty()) throw ConfigError("profile.segments: the segments file is mandatory");
  if (p.output_dir.empty()) throw ConfigError("profile.output_dir is mandatory");
  EmbeddingsFile e = read_embeddings(p.embeddings);
  const int64_t N = e.n;

  // ---- segments ----------------------------------------------------------------------------
  h5::H sf = h5::open_file(p.segments);
  if (!h5::has_attr(sf, "format") || h5::attr_str(sf, "format") != kSegmentsFormat)
    throw DataError(p.segments + ": not a portrait-segments file");
  auto seg = h5::read_i32(sf, "segment");
  auto dist = h5::read_float(sf, "distance");
  auto seg_ids = h5::read_strings(sf, "user_id");
  const int K = int(h5::attr_i64(sf, "k"));
  if (int64_t(seg.size()) != N || seg_ids != e.user_id)
    throw DataError(p.segments + ": rows do not match " + p.embeddings);
  std::vector<int64_t> size(size_t(K), 0);
  for (auto s : seg) ++size[size_t(s)];

  // ---- scores ------------------------------------------------------------------------------
  std::string scores_file;
  if (!p.scores.empty()) scores_file = fs::is_directory(p.scores) ? (fs::path(p.scores) / "scores.h5").string() : p.scores;
  std::vector<std::string> heads;
  std::vector<std::vector<double>> head_mean(static_cast<size_t>(K));
  if (!scores_file.empty()) {
    h5::H f = h5::open_file(scores_file);
    heads = h5::read_strings(f, "target");
    if (h5::read_strings(f, "user_id") != e.user_id) throw DataError(scores_file + ": rows do not match " + p.embeddings);
    std::vector<hsize_t> dims;
    auto prob = h5::read_float(f, "probability", &dims);
    const size_t C = heads.size();
    for (auto& v : head_mean) v.assign(C, 0.0);
    for (int64_t i = 0; i < N; ++i)
      for (size_t c = 0; c < C; ++c) head_mean[size_t(seg[size_t(i)])][c] += prob[size_t(i) * C + c];
    for (int s = 0; s < K; ++s)
      for (auto& v : head_mean[size_t(s)]) v /= double(std::max<int64_t>(1, size[size_t(s)]));
    // Heads for the padding / out-of-vocabulary category ids ("<pad>", "<oov>") mean nothing
    // to a marketer: leave them out of the portraits.
    std::vector<size_t> keep;
    for (size_t c = 0; c < C; ++c)
      if (heads[c].empty() || heads[c][0] != '<') keep.push_back(c);
    std::vector<std::string> kept_heads;
    for (size_t c : keep) kept_heads.push_back(heads[c]);
    for (auto& v : head_mean) {
      std::vector<double> kv;
      for (size_t c : keep) kv.push_back(v[c]);
      v = std::move(kv);
    }
    heads = std::move(kept_heads);
  }

  // ---- behaviour from the shards -----------------------------------------------------------
  const std::string shards = p.shards.empty() ? e.shards : p.shards;
  std::unordered_map<std::string, int64_t> row_of;
  for (int64_t i = 0; i < N; ++i) row_of.emplace(e.user_id[size_t(i)], i);
  std::optional<tok::Tokenizer> tokenizer;
  fs::path tok_path = p.tokenizer.empty() ? fs::path(shards) / "tokenizer.model" : fs::path(p.tokenizer);
  if (fs::exists(tok_path)) tokenizer = tok::Tokenizer::load(tok_path);
  else if (!p.tokenizer.empty()) throw DataError("profile.tokenizer: " + p.tokenizer + " does not exist");
  check_same_vocabulary(e, shards, p.shards.empty() ? "the export's shards" : "profile.shards");
  // Another prep's tokenizer decodes the same token ids into other words.
  if (tokenizer && !e.tokenizer_sha256.empty() && tokenizer->sha256() != e.tokenizer_sha256)
    throw DataError((p.tokenizer.empty() ? "the shards' tokenizer " : "profile.tokenizer ") + tok_path.string() +
                    " is not the tokenizer of " + e.path + " (sha256 " + tokenizer->sha256().substr(0, 12) +
                    " vs the export's " + e.tokenizer_sha256.substr(0, 12) +
                    "): it would decode the review tokens into other words. Use the tokenizer.model of the prep "
                    "the model was trained on.");
  std::vector<SegStats> st(static_cast<size_t>(K));
  std::vector<std::string> categories;
  std::unordered_map<std::string, int64_t> all_terms;
  int64_t all_term_total = 0;
  int si = data::split_index(e.split);
  if (si < 0) si = 2;  // exports older than the split attribute: test
  int32_t purchase = -1;
  std::unordered_map<int32_t, std::optional<std::string>> piece_cache;
  for (auto& file : data::list_shards(shards)) {
    auto c = data::read_shard(file, {data::kSplitNames[si]}, categories.empty());
    if (categories.empty()) {
      categories = c.categories;
      auto it = std::find(c.event_types.begin(), c.event_types.end(), "purchase");
      purchase = it == c.event_types.end() ? -1 : int32_t(it - c.event_types.begin());
    }
    const int64_t cutoff = c.int_attrs[std::string(data::kSplitNames[si]) + "_cutoff_ms"];
    const auto& a = c.splits[si];
    for (size_t r = 0; r < a.size(); ++r) {
      auto it = row_of.find(c.user_ids[size_t(a.user[r])]);
      if (it == row_of.end()) continue;
      SegStats& s = st[size_t(seg[size_t(it->second)])];
      const int64_t b = a.input_offsets[r], en = a.input_offsets[r + 1];
      int64_t last = 0, buys = 0;
      double money = 0;
      for (int64_t k = b; k < en; ++k) {
        last = std::max(last, a.input_ts[size_t(k)]);
        ++s.categories[a.input_category[size_t(k)]];
        ++s.events;
        if (a.input_event[size_t(k)] == purchase) {
          ++buys;
          int32_t pb = a.input_price[size_t(k)];
          if (pb >= 1) money += std::exp2((double(pb) - 0.5) / 4.0) - 1.0;
        }
      }
      s.frequency.push_back(double(en - b));
      s.purchases.push_back(double(buys));
      s.monetary.push_back(money);
      if (en > b) s.recency.push_back(double(cutoff - last) / 86400000.0);
      if (tokenizer)
        for (int64_t k = a.text_offsets[r]; k < a.text_offsets[r + 1]; ++k) {
          int32_t id = a.text_tokens[size_t(k)];
          auto pc = piece_cache.find(id);
          if (pc == piece_cache.end()) pc = piece_cache.emplace(id, term_of(tokenizer->id_to_piece(id))).first;
          if (!pc->second) continue;
          ++s.terms[*pc->second];
          ++s.term_total;
          ++all_terms[*pc->second];
          ++all_term_total;
        }
    }
  }

  // ---- assemble ----------------------------------------------------------------------------
  ProfileSummary sum;
  sum.users = N;
  sum.segments = K;
  json segs = json::array();
  const auto seg_rules = read_segment_rules(p.rules, p.min_segment_size);
  int64_t suppressed_users = 0;
  for (int s = 0; s < K; ++s) {
    if (size[size_t(s)] < p.min_segment_size) {
      segs.push_back({{"segment", s}, {"suppressed", true}});
      ++sum.suppressed;
      suppressed_users += size[size_t(s)];
      continue;
    }
    ++sum.published;
    const SegStats& x = st[size_t(s)];
    json j;
    j["segment"] = s;
    j["suppressed"] = false;
    j["size"] = size[size_t(s)];
    j["share"] = double(size[size_t(s)]) / double(N);
    j["users_with_events"] = int64_t(x.frequency.size());
    j["recency_days"] = {{"mean", mean(x.recency)}, {"median", median(x.recency)}};
    j["frequency"] = {{"mean", mean(x.frequency)}, {"median", median(x.frequency)}};
    j["purchases"] = {{"mean", mean(x.purchases)}, {"median", median(x.purchases)}};
    j["monetary"] = {{"mean", mean(x.monetary)}, {"median", median(x.monetary)}, {"price_estimated", true}};
    std::vector<std::pair<int64_t, int32_t>> cats;
    for (auto& [c, n] : x.categories) cats.push_back({n, c});
    std::sort(cats.begin(), cats.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    json tc = json::array();
    for (int i = 0; i < std::min<int>(p.top_categories, int(cats.size())); ++i) {
      int32_t c = cats[size_t(i)].second;
      tc.push_back({{"category", c >= 0 && size_t(c) < categories.size() ? categories[size_t(c)] : std::to_string(c)},
                    {"share", double(cats[size_t(i)].first) / double(std::max<int64_t>(1, x.events))}});
    }
    j["top_categories"] = tc;
    std::vector<std::pair<double, std::string>> terms;
    for (auto& [t, n] : x.terms) {
      if (n < p.min_term_count) continue;
      double lift = (double(n) / double(x.term_total)) / (double(all_terms[t]) / double(all_term_total));
      terms.push_back({double(n) * std::log(std::max(lift, 1.0) + 1e-9) + 1e-6 * double(n), t});
    }
    std::sort(terms.begin(), terms.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    json tt = json::array();
    for (int i = 0; i < std::min<int>(p.top_terms, int(terms.size())); ++i) tt.push_back(terms[size_t(i)].second);
    j["top_terms"] = tt;
    if (!heads.empty()) {
      json hm = json::object();
      for (size_t c = 0; c < heads.size(); ++c) hm[heads[c]] = head_mean[size_t(s)][c];
      j["mean_probability"] = hm;
    }
    std::vector<int64_t> members;
    for (int64_t i = 0; i < N; ++i)
      if (seg[size_t(i)] == s) members.push_back(i);
    std::partial_sort(members.begin(), members.begin() + std::min<long>(p.representatives, long(members.size())), members.end(),
                      [&](int64_t a, int64_t b) { return dist[size_t(a)] != dist[size_t(b)] ? dist[size_t(a)] < dist[size_t(b)] : a < b; });
    json reps = json::array();
    for (int i = 0; i < std::min<int>(p.representatives, int(members.size())); ++i) reps.push_back(e.user_id[size_t(members[size_t(i)])]);
    j["representatives"] = reps;
    if (auto it = seg_rules.find(s); it != seg_rules.end()) {
      j["name"] = it->second["name"];
      j["rules"] = it->second["rules"];
      j["tag_shares"] = it->second["tag_shares"];
    }
    segs.push_back(j);
  }
  {
    std::vector<NamedInput> inputs = embeddings_inputs(e, "profile.embeddings");
    inputs.push_back({"profile.segments", p.segments});
    inputs.push_back({"profile.tokenizer", tok_path});
    for (const char* name : {"profile.json", "profile.csv", "report.html", "report.log"})
      check_output_not_input(fs::path(p.output_dir) / name, std::string("profile.output_dir's ") + name, inputs);
  }
  const fs::path dir(p.output_dir);
  fs::create_directories(dir);
  json doc;
  doc["format"] = "portrait-profile";
  doc["format_version"] = 1;
  doc["title"] = p.title;
  doc["created_utc"] = h5::utc_now();
  doc["users"] = N;
  doc["k"] = K;
  doc["min_segment_size"] = p.min_segment_size;
  doc["suppressed_segments"] = sum.suppressed;
  doc["suppressed_users"] = suppressed_users;
  doc["split"] = e.split;
  doc["checkpoint_sha256"] = e.checkpoint_sha256;
  doc["embeddings"] = fs::absolute(p.embeddings).string();
  doc["segments_file"] = fs::absolute(p.segments).string();
  doc["scores_file"] = scores_file.empty() ? "" : fs::absolute(scores_file).string();
  doc["metrics"] = p.metrics.empty() ? "" : fs::absolute(p.metrics).string();
  doc["heads"] = heads;
  doc["pca_sample"] = p.pca_sample;
  doc["segments"] = segs;
  sum.json = (dir / "profile.json").string();
  write_file_atomic(sum.json, doc.dump(2) + "\n");

  std::string csv = "segment,size,share,recency_days_median,frequency_mean,purchases_mean,monetary_mean,top_categories,top_terms";
  for (auto& h : heads) csv += ",p_" + csv_field(h);
  csv += "\n";
  for (auto& j : segs) {
    if (j["suppressed"].get<bool>()) continue;
    std::string cats, terms;
    for (auto& c : j["top_categories"]) cats += (cats.empty() ? "" : ";") + c["category"].get<std::string>();
    for (auto& t : j["top_terms"]) terms += (terms.empty() ? "" : ";") + t.get<std::string>();
    csv += fmt::format("{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{},{}", j["segment"].get<int>(), j["size"].get<int64_t>(),
                       j["share"].get<double>(), j["recency_days"]["median"].get<double>(), j["frequency"]["mean"].get<double>(),
                       j["purchases"]["mean"].get<double>(), j["monetary"]["mean"].get<double>(), csv_field(cats), csv_field(terms));
    for (auto& h : heads) csv += fmt::format(",{:.6g}", j["mean_probability"][h].get<double>());
    csv += "\n";
  }
  sum.csv = (dir / "profile.csv").string();
  write_file_atomic(sum.csv, csv);

  if (p.html) {
    auto r0 = std::chrono::steady_clock::now();
    const std::string python = p.python.empty() ? PORTRAIT_INFER_PYTHON : p.python;
    const fs::path html = dir / "report.html";
    render_report(python, find_report_script(p.script), sum.json, html, dir / "report.log");
    sum.html = html.string();
    sum.report_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
  }
  sum.output_dir = p.output_dir;
  sum.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PLOG_INFO("profile: {} segments ({} published, {} suppressed below {} users) -> {}", K, sum.published,
            sum.suppressed, p.min_segment_size, p.output_dir);
  return sum;
}

}  // namespace portrait::infer
