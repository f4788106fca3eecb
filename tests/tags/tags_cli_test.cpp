// `portrait tags` through the real binary: help from the torch-free front end, strict config,
// and a run on prepared synthetic shards with a segments and a scores file, whose outputs
// carry pseudonymous ids only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/shell.h"
#include "common/synth_shards.h"
#include "core/fs.h"
#include "data/prep.h"
#include "data/shard.h"
#include "data/synth.h"
#include "infer/h5.h"

namespace portrait::tags {
namespace {

namespace stdfs = std::filesystem;
namespace h5 = portrait::infer::h5;

testing::ShellResult run(const std::string& args) {
  return testing::run_shell(std::string(PORTRAIT_BINARY_DIR) + "/bin/portrait " + args);
}

TEST(TagsCli, HelpAndStrictConfig) {
  auto h = run("tags --help");
  EXPECT_EQ(h.code, 0) << h.out;
  EXPECT_NE(h.out.find("tags.shards"), std::string::npos) << h.out;
  EXPECT_NE(run("--help").out.find("tags "), std::string::npos);
  auto cfg = run("config tags tags.shards=/s tags.lifecycle.churn_days=60");
  EXPECT_EQ(cfg.code, 0) << cfg.out;
  EXPECT_NE(cfg.out.find("churn_days: 60"), std::string::npos) << cfg.out;
  auto typo = run("tags tags.shards=/nonexistent tags.lifecycle.churn_day=60");
  EXPECT_EQ(typo.code, 2) << typo.out;
  EXPECT_NE(typo.out.find("churn_day"), std::string::npos) << typo.out;
}

TEST(TagsCli, TagsWithSegmentsAndScoresCarryPseudonymousIdsOnly) {
  const auto root = stdfs::temp_directory_path() / ("portrait_tags_cli_" + std::to_string(::getpid()));
  stdfs::remove_all(root);
  data::SynthParams sp;
  sp.users = 300;
  sp.items = 200;
  sp.days = 60;
  sp.segments = 3;
  sp.categories = 6;
  data::PrepParams pp;
  pp.hash_key = "tags-cli-test-key-0123456789";
  pp.seq_len = 64;
  pp.text_len = 8;
  pp.tokenizer.vocab_size = 600;
  const stdfs::path shards = testing::synth_and_prep(root, sp, pp);
  // Segments (3, by row) and scores (two heads) for the shards' users.
  std::vector<std::string> ids;
  for (const auto& f : data::list_shards(shards)) {
    auto c = data::read_shard(f, {"latest"}, true);
    for (auto u : c.splits[data::kLatestSplit].user) ids.push_back(c.user_ids[size_t(u)]);
  }
  ASSERT_GT(ids.size(), 200u);
  std::vector<int32_t> seg;
  std::vector<float> prob;
  for (size_t i = 0; i < ids.size(); ++i) {
    seg.push_back(int32_t(i % 3));
    prob.push_back(0.9f);  // the padding head: never predicted
    prob.push_back(i % 2 ? 0.8f : 0.1f);
    prob.push_back(i % 2 ? 0.2f : 0.3f);
  }
  stdfs::create_directories(root / "seg");
  {
    h5::H f = h5::create_file(root / "seg/segments.h5");
    h5::set_attr(f, "format", "portrait-segments");
    h5::set_attr(f, "k", int64_t{3});
    h5::write_fixed_strings(f, "user_id", ids);
    h5::write_i32(f, "segment", seg.data(), {hsize_t(seg.size())});
    h5::close_file(f, root / "seg/segments.h5");
    h5::H g = h5::create_file(root / "seg/scores.h5");
    h5::set_attr(g, "format", "portrait-scores");
    h5::write_fixed_strings(g, "user_id", ids);
    h5::write_vlen_strings(g, "target", {"<pad>", "phones", "books"});
    h5::write_float(g, "probability", prob.data(), {hsize_t(ids.size()), 3});
    h5::close_file(g, root / "seg/scores.h5");
  }
  auto r = run("tags tags.shards=" + shards.string() + " tags.segments=" + (root / "seg").string() +
               " tags.scores=" + (root / "seg/scores.h5").string() + " hydra.run.dir=" + (root / "out").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tags: " + std::to_string(ids.size()) + " users"), std::string::npos) << r.out;
  for (const char* f : {"tags.h5", "tags.csv", "segment_rules.json"}) EXPECT_TRUE(stdfs::exists(root / "out" / f)) << f;
  const std::string csv = read_file(root / "out/tags.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), long(ids.size()) + 1);
  EXPECT_NE(csv.find(",next_category,next_category_probability"), std::string::npos);
  EXPECT_NE(csv.find(ids[1] + ","), std::string::npos);
  EXPECT_EQ(csv.find("<pad>"), std::string::npos);
  EXPECT_NE(csv.find(",phones,0.800000011920929"), std::string::npos);  // user 1: phones 0.8 (float32)
  EXPECT_NE(csv.find(",books,0.30000001192092896"), std::string::npos);  // user 0: books 0.3
  const auto rules = nlohmann::json::parse(read_file(root / "out/segment_rules.json"));
  EXPECT_EQ(rules["format"], "portrait-segment-rules");
  EXPECT_EQ(rules["segments"].size(), 3u);
  // No raw id (the synthetic log's "U00000123") in anything written.
  const std::string truth = read_file(root / "syn/truth.csv");
  const std::string raw = truth.substr(truth.find('\n') + 1, truth.find(',', truth.find('\n')) - truth.find('\n') - 1);
  ASSERT_EQ(raw.rfind("U", 0), 0u) << raw;
  for (const char* f : {"tags.h5", "tags.csv", "segment_rules.json"})
    EXPECT_EQ(read_file(root / "out" / f).find(raw.substr(0, 6)), std::string::npos) << f;
  stdfs::remove_all(root);
}

}  // namespace
}  // namespace portrait::tags
