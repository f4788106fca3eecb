#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>

#include "config_fixture.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/progress.h"

namespace portrait {
namespace {

TEST(ReadFile, ReadsBinaryAndEmptyFilesAndFilesThatReportNoSize) {
  testing::TempDir d;
  std::string bin(3 << 20, '\0');
  for (size_t i = 0; i < bin.size(); ++i) bin[i] = char((i * 2654435761u) >> 13);
  write_file_atomic(d.path() / "bin", bin);
  EXPECT_EQ(read_file(d.path() / "bin"), bin);
  write_file_atomic(d.path() / "empty", "");
  EXPECT_EQ(read_file(d.path() / "empty"), "");
  // /proc files report size 0 but have content: the size is only a hint.
  EXPECT_NE(read_file("/proc/self/status").find("Name:"), std::string::npos);
  EXPECT_THROW(read_file(d.path() / "missing"), std::runtime_error);
}

TEST(AtomicFiles, WriteReplacesWholeFileAndLeavesNoTemporary) {
  testing::TempDir d;
  auto p = d.path() / "sub" / "out.txt";
  write_file_atomic(p, "first");
  write_file_atomic(p, "second");
  EXPECT_EQ(read_file(p), "second");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path())) (void)e, ++n;
  EXPECT_EQ(n, 1);
}

TEST(AtomicFiles, UncommittedOutputNeverAppearsUnderItsFinalName) {
  testing::TempDir d;
  auto p = d.path() / "x.h5";
  {
    AtomicOutput out(p);
    std::ofstream(out.temp_path()) << "partial";
    EXPECT_FALSE(std::filesystem::exists(p));
  }  // destroyed without commit (a crash / exception)
  EXPECT_FALSE(std::filesystem::exists(p));
  EXPECT_TRUE(std::filesystem::is_empty(d.path()));
  AtomicOutput ok(p);
  std::ofstream(ok.temp_path()) << "full";
  ok.commit();
  EXPECT_EQ(read_file(p), "full");
}

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  testing::TempDir d;
  write_file_atomic(d.path() / "f", "abc");
  EXPECT_EQ(sha256_file(d.path() / "f"), sha256_hex("abc"));
}

TEST(Metrics, WritesOneJsonObjectPerLineWithNullForNonFinite) {
  testing::TempDir d;
  auto p = d.path() / "metrics.jsonl";
  {
    MetricsWriter m(p.string());
    m.write({{"step", 1}, {"loss", 0.5}});
    m.write({{"step", 2}, {"loss", std::nan("")}});
  }
  std::ifstream f(p);
  std::string l1, l2, l3;
  std::getline(f, l1);
  std::getline(f, l2);
  EXPECT_FALSE(std::getline(f, l3));
  auto j1 = nlohmann::json::parse(l1), j2 = nlohmann::json::parse(l2);
  EXPECT_EQ(j1["step"], 1);
  EXPECT_DOUBLE_EQ(j1["loss"].get<double>(), 0.5);
  EXPECT_TRUE(j1.contains("time"));
  EXPECT_TRUE(j2["loss"].is_null());
}

TEST(Progress, RendersPercentRateAndEta) {
  ProgressParams pp;
  pp.enabled = false;
  Progress p("prep", 200, "events", pp);
  p.add(50);
  std::string line = p.render(false);
  EXPECT_NE(line.find("prep ["), std::string::npos) << line;
  EXPECT_NE(line.find("25.0%"), std::string::npos) << line;
  EXPECT_NE(line.find("50/200 events"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA"), std::string::npos) << line;
  EXPECT_TRUE(std::regex_search(line, std::regex(R"(events/s \| ETA [0-9.]+s$)"))) << line;
  p.set_postfix("loss=0.1");
  EXPECT_NE(p.render(false).find("| loss=0.1"), std::string::npos);
  EXPECT_NE(p.render(true).find("done"), std::string::npos);
}

TEST(Progress, UnknownTotalShowsCountAndRateOnly) {
  ProgressParams pp;
  pp.enabled = false;
  Progress p("scan", 0, "rows", pp);
  p.add(7);
  std::string line = p.render(false);
  EXPECT_NE(line.find("scan 7 rows"), std::string::npos) << line;
  EXPECT_TRUE(std::regex_search(line, std::regex(R"( rows/s$)"))) << line;
  EXPECT_EQ(line.find("ETA"), std::string::npos) << line;
}

TEST(Progress, DurationsAreHumanReadable) {
  EXPECT_EQ(Progress::format_duration(4.14), "4.1s");
  EXPECT_EQ(Progress::format_duration(123), "2m03s");
  EXPECT_EQ(Progress::format_duration(3723), "1h02m03s");
}

TEST(Logging, LevelsParseAndFilter) {
  EXPECT_EQ(log::parse_level("WARN"), log::Level::kWarn);
  EXPECT_THROW(log::parse_level("loud"), ConfigError);
  testing::TempDir d;
  auto p = d.path() / "job.log";
  log::set_file(p.string());
  log::set_level(log::Level::kWarn);
  PLOG_INFO("hidden {}", 1);
  PLOG_WARN("shown {}", 2);
  log::set_level(log::Level::kInfo);
  log::set_file("");
  std::string text = read_file(p);
  EXPECT_EQ(text.find("hidden"), std::string::npos);
  EXPECT_NE(text.find("[WARN] shown 2"), std::string::npos) << text;
}

}  // namespace
}  // namespace portrait
