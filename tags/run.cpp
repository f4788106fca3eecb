// `portrait tags`: shards (+ segments, scores) -> tags.h5, tags.csv (+ segment_rules.json).
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/shard.h"
#include "tags/rfm.h"
#include "tags/rules.h"
#include "tags/tags.h"

namespace portrait::tags {

TagSummary run_tags(const TagParams& p) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::filesystem::path dir(p.output_dir);
  std::vector<NamedInput> inputs;
  for (const auto& s : data::list_shards(p.shards)) inputs.push_back({"tags.shards", s});
  for (const auto& [key, path, file] : {std::tuple{"tags.segments", p.segments, "segments.h5"},
                                        std::tuple{"tags.scores", p.scores, "scores.h5"}})
    if (!path.empty()) {
      std::filesystem::path f(path);
      if (std::filesystem::is_directory(f)) f /= file;
      inputs.push_back({key, f});
    }
  for (const char* out : {"tags.h5", "tags.csv", "segment_rules.json"})
    check_output_not_input(dir / out, "tags.output_dir", inputs);

  const ActivityTable a = read_activity(p.shards, activity_options(p));
  Table t = compute_tags(a, p);
  t.attrs["shards"] = p.shards;
  t.attrs["config_yaml"] = p.config_yaml;
  if (!p.segments.empty()) attach_segments(t, a, p.segments);
  if (!p.scores.empty()) attach_scores(t, p.scores);

  TagSummary sum;
  sum.users = int64_t(t.rows());
  for (auto v : t.at("purchases").i) sum.buyers += v > 0;
  sum.rfm_counts.assign(kRfmNameCount, 0);
  for (const auto& n : t.at("rfm_segment").s)
    for (size_t k = 0; k < kRfmNames.size(); ++k)
      if (n == kRfmNames[k]) ++sum.rfm_counts[k];
  sum.h5 = (dir / "tags.h5").string();
  sum.csv = (dir / "tags.csv").string();
  write_table_files(t, dir / "tags.h5", dir / "tags.csv", kTagsFormat, kTagsFormatVersion);

  if (!p.segments.empty() && p.rules.enabled) {
    const auto& seg = t.at("segment").i;
    std::vector<int> label(seg.begin(), seg.end());
    int k = 0;
    for (int s : label) k = std::max(k, s + 1);
    auto rules = learn_segment_rules(rule_features(t, a), label, k, p.rules);
    const auto& names = t.at("segment_name").s;
    for (auto& r : rules)
      for (size_t i = 0; i < label.size(); ++i)
        if (label[i] == r.segment) {
          r.name = names[i];
          break;
        }
    auto doc = rules_json(rules, p.rules);
    // Each segment's tag distributions (shares of its users), for the profile report.
    for (auto& js : doc["segments"]) {
      if (js["suppressed"].get<bool>()) continue;
      const int sid = js["segment"].get<int>();
      nlohmann::json shares;
      for (const char* col : {"rfm_segment", "lifecycle", "price_sensitivity"}) {
        std::map<std::string, int64_t> n;
        int64_t total = 0;
        const auto& v = t.at(col).s;
        for (size_t i = 0; i < label.size(); ++i)
          if (label[i] == sid) ++n[v[i]], ++total;
        nlohmann::json m = nlohmann::json::object();
        for (const auto& [k, c] : n) m[k] = double(c) / double(std::max<int64_t>(total, 1));
        shares[col] = m;
      }
      js["tag_shares"] = shares;
    }
    sum.rules = (dir / "segment_rules.json").string();
    write_file_atomic(sum.rules, doc.dump(2) + "\n");
  }
  sum.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PLOG_INFO("tags: {} users ({} buyers) -> {}", sum.users, sum.buyers, p.output_dir);
  return sum;
}

}  // namespace portrait::tags
