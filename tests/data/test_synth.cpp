#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
