#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "data/synth.h"

using namespace portrait::data;
namespace fs = std::filesystem;

namespace {
fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("portrait_synth_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}
SynthParams small(const fs::path& dir) {
  SynthParams p;
  p.output_dir = dir.string();
  p.users = 300;
  p.items = 400;
  p.days = 60;
  p.fault_fraction = 0.05;
  p.bot_users = 2;
  p.bot_events = 50;
  return p;
}
}  // namespace

TEST(Synth, SameSeedGivesByteIdenticalOutputs) {
  auto a = tmpdir("a"), b = tmpdir("b");
  run_synth(small(a));
  run_synth(small(b));
  for (const char* f : {"events_00000.csv", "truth.csv", "catalogue.csv", "faults.json"})
    EXPECT_EQ(portrait::sha256_file(a / f), portrait::sha256_file(b / f)) << f;
  auto p = small(b);
  p.seed = 43;
  run_synth(p);
  EXPECT_NE(portrait::sha256_file(a / "events_00000.csv"), portrait::sha256_file(b / "events_00000.csv"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(Synth, InjectsEveryFaultKindAndCountsRows) {
  auto d = tmpdir("faults");
  auto s = run_synth(small(d));
  auto j = nlohmann::json::parse(portrait::read_file(d / "faults.json"));
  for (const char* k : {"invalid_utf8", "malformed_row", "field_too_long", "missing_field",
                        "bad_timestamp", "timestamp_out_of_range", "unknown_event_type",
                        "bad_price", "bad_rating", "duplicate", "bot_user"})
    EXPECT_GT(j["injected"][k].get<int64_t>(), 0) << k;
  EXPECT_EQ(j["injected"]["bot_user"].get<int64_t>(), 100);
  int64_t injected = 0;
  for (auto& [k, v] : s.injected) injected += v;
  EXPECT_EQ(s.rows, s.valid_events + injected);
  // Truth: one row per user plus header; probabilities in [0, 1].
  std::ifstream t(d / "truth.csv");
  std::string line;
  int n = 0;
  std::getline(t, line);
  while (std::getline(t, line)) ++n;
  EXPECT_EQ(n, 300);
  fs::remove_all(d);
}

namespace {
// Largest number of distinct items one user touched within one category.
size_t max_distinct_items_per_user_category(const fs::path& dir) {
  auto fields = [](const std::string& line) {
    std::vector<std::string> f;
    std::string cur;
    for (char c : line) {
      if (c == ',') {
        f.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    f.push_back(cur);
    return f;
  };
  std::map<std::string, std::string> category;  // item -> category, from the catalogue
  std::ifstream cat(dir / "catalogue.csv");
  std::string line;
  std::getline(cat, line);
  while (std::getline(cat, line)) {
    auto f = fields(line);
    category[f[0]] = f[1];
  }
  std::map<std::pair<std::string, std::string>, std::set<std::string>> seen;
  std::ifstream ev(dir / "events_00000.csv");
  std::getline(ev, line);
  while (std::getline(ev, line)) {
    auto f = fields(line);
    seen[{f[0], category.at(f[3])}].insert(f[3]);
  }
  size_t m = 0;
  for (auto& [k, items] : seen) m = std::max(m, items.size());
  return m;
}
}  // namespace

TEST(Synth, FavouritesBoundTheItemsAUserTouchesPerCategory) {
  // With every pick a favourite (and no complements, whose items come from the catalogue),
  // a user touches at most `favourites` distinct items per category; without favourites the
  // same users browse far more widely, so the personal structure is really there.
  auto d = tmpdir("fav");
  auto p = small(d);
  p.fault_fraction = 0;
  p.bot_users = 0;
  p.review_prob = 0;  // no free text: one row per line
  p.copurchase_prob = 0;
  p.favourite_prob = 1.0;
  p.favourites = 3;
  run_synth(p);
  EXPECT_LE(max_distinct_items_per_user_category(d), 3u);
  p.favourite_prob = 0.0;
  run_synth(p);
  EXPECT_GT(max_distinct_items_per_user_category(d), 6u);
  fs::remove_all(d);
}
