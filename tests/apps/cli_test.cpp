// Runs the real `portrait` binary: exit codes, messages, run directories, multirun.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "../core/config_fixture.h"
#include "common/shell.h"
#include "core/config/yaml_io.h"
#include "core/fs.h"

namespace portrait {
namespace {

using Result = testing::ShellResult;

Result run(const std::string& args) {
  return testing::run_shell(std::string(PORTRAIT_BINARY_DIR) + "/bin/portrait " + args);
}

TEST(Cli, UnknownConfigKeyExitsTwoWithHydraMessageAndSuggestion) {
  Result r = run("config train.lrr=1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("Could not override 'train.lrr'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Did you mean 'train.lr'?"), std::string::npos) << r.out;
}

TEST(Cli, UnknownGroupOptionListsTheAvailableOptions) {
  Result r = run("config model=nosuch");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("Could not find 'model/nosuch'"), std::string::npos) << r.out;
  for (const char* o : {"\tbase", "\tsmall", "\ttiny"}) EXPECT_NE(r.out.find(o), std::string::npos) << r.out;
}

TEST(Cli, MalformedYamlNamesTheFileAndLine) {
  testing::TempDir d;
  d.write("model/broken.yaml", "d_model: 8\nn_layers: [1,\n");
  Result r = run("config -cd " + d.path().string() + " model=broken");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find((d.path() / "model/broken.yaml").string() + ":"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("malformed YAML"), std::string::npos) << r.out;
}

TEST(Cli, ConfigPrintsTheComposedConfigWithOverrides) {
  Result r = run("config model=small train.lr=3e-4");
  ASSERT_EQ(r.code, 0) << r.out;
  cfg::Node n = cfg::load_yaml_string(r.out, "stdout");
  EXPECT_EQ(cfg::find_path(n, "model.d_model")->as_int(), 256);
  EXPECT_DOUBLE_EQ(cfg::find_path(n, "train.lr")->as_double(), 3e-4);
}

TEST(Cli, CfgHydraPrintsTheHydraSettings) {
  Result r = run("demo --cfg hydra hydra.run.dir=/tmp/somewhere");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("dir: /tmp/somewhere"), std::string::npos) << r.out;
}

TEST(Cli, UnknownFlagIsAUsageErrorNamingIt) {
  Result r = run("demo --frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown option '--frobnicate'"), std::string::npos) << r.out;
}

TEST(Cli, UnknownCommandSuggestsTheClosest) {
  Result r = run("confg");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("Did you mean 'config'?"), std::string::npos) << r.out;
}

TEST(Cli, LegacyLocalRankFlagsAreAcceptedAndIgnored) {
  EXPECT_EQ(run("config --local-rank=3").code, 0);
  EXPECT_EQ(run("config --local_rank=0").code, 0);
  EXPECT_EQ(run("--local-rank=1 version").code, 0);
}

TEST(Cli, EveryCommandHasHelp) {
  for (const char* c : {"demo", "version", "config"}) {
    Result r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find(std::string("Usage: portrait ") + c), std::string::npos) << r.out;
  }
  Result top = run("--help");
  EXPECT_EQ(top.code, 0);
  EXPECT_NE(top.out.find("Commands:"), std::string::npos);
  EXPECT_NE(run("demo --help").out.find("model            base, small, tiny"), std::string::npos);
}

TEST(Cli, VersionReportsLibTorchAndGpuVisibility) {
  Result r = run("version");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("LibTorch  2.11.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GPUs"), std::string::npos) << r.out;
}

TEST(Cli, JobWritesItsRunDirectoryFilesAndLog) {
  testing::TempDir d;
  auto run_dir = d.path() / "run";
  // demo.stages=[] runs no stage: only the command runner's own work is exercised.
  Result r = run("demo seed=7 'demo.stages=[]' hydra.run.dir=" + run_dir.string());
  ASSERT_EQ(r.code, 0) << r.out;
  cfg::Node config = cfg::load_yaml_file(run_dir / ".hydra/config.yaml");
  EXPECT_EQ(cfg::find_path(config, "seed")->as_int(), 7);
  cfg::Node ov = cfg::load_yaml_file(run_dir / ".hydra/overrides.yaml");
  ASSERT_EQ(ov.elements().size(), 2u);
  EXPECT_EQ(ov.elements()[0].as_string(), "seed=7");
  EXPECT_EQ(ov.elements()[1].as_string(), "demo.stages=[]");
  EXPECT_TRUE(std::filesystem::exists(run_dir / "demo.log"));
}

TEST(Cli, ASecretGivenByMistakeAsAnOverrideReachesNoOutputLogOrRunRecord) {
  testing::TempDir d;
  const std::string secret = "hunter2-0f9a8b7c6d5e4f3a";
  d.write("ev.csv", "user_id,item_id,event_type,timestamp\nu1,i1,view,2024-01-01T00:00:00\n");
  const std::string input = "'prep.input=[" + (d.path() / "ev.csv").string() + "]' ";
  struct Case { std::string args, names; };
  const Case cases[] = {
      {"prep data.privacy.key=" + secret, "data.privacy.key"},          // not in struct
      {"prep " + input + "+data.privacy.key=" + secret, "data.privacy.key"},  // unknown key
      {"prep " + input + "data.privacy.key_env=" + secret, "data.privacy.key_env"},  // the key pasted into key_env
  };
  int i = 0;
  for (const Case& c : cases) {
    const auto run_dir = d.path() / ("run" + std::to_string(i++));
    Result r = run(c.args + " hydra.run.dir=" + run_dir.string());
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find(c.names), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find(secret), std::string::npos) << r.out;
    if (!std::filesystem::exists(run_dir)) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(run_dir))
      if (e.is_regular_file()) EXPECT_EQ(read_file(e.path()).find(secret), std::string::npos) << e.path();
  }
  Result shown = run("config data.privacy.key_env=" + secret);  // --cfg / config print it redacted
  ASSERT_EQ(shown.code, 0) << shown.out;
  EXPECT_EQ(shown.out.find(secret), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("key_env: <redacted>"), std::string::npos) << shown.out;
}

TEST(Cli, MultirunRunsEachCombinationInItsOwnDirectory) {
  testing::TempDir d;
  Result r = run("demo -m seed=1,2 model=tiny,small 'demo.stages=[]' hydra.sweep.dir=" + d.path().string());
  ASSERT_EQ(r.code, 0) << r.out;
  for (int j = 0; j < 4; ++j) {
    auto ov = cfg::load_yaml_file(d.path() / std::to_string(j) / ".hydra/overrides.yaml");
    ASSERT_EQ(ov.elements().size(), 3u) << j;
  }
  auto first = cfg::load_yaml_file(d.path() / "0/.hydra/overrides.yaml");
  auto last = cfg::load_yaml_file(d.path() / "3/.hydra/overrides.yaml");
  EXPECT_EQ(first.elements()[0].as_string(), "seed=1");
  EXPECT_EQ(first.elements()[1].as_string(), "model=tiny");
  EXPECT_EQ(last.elements()[0].as_string(), "seed=2");
  EXPECT_EQ(last.elements()[1].as_string(), "model=small");
}

// Defect 8 (disk full), through the real binary: prep used to segfault at exit after an HDF5
// flush error. `ulimit -f` makes every write past 24 KiB fail (EFBIG, the path ENOSPC takes).
TEST(Cli, AFullDiskIsAnErrorExitNamingTheFileNotACrash) {
  testing::TempDir d;
  const std::string bin = std::string(PORTRAIT_BINARY_DIR) + "/bin/portrait";
  Result s = run("synth synth.users=150 synth.items=200 synth.days=20 synth.fault_fraction=0 synth.output_dir=" +
                 (d.path() / "syn").string() + " hydra.run.dir=" + (d.path() / "r1").string());
  ASSERT_EQ(s.code, 0) << s.out;
  Result r = testing::run_shell("bash -c \"trap '' XFSZ; ulimit -f 24; PORTRAIT_HASH_KEY=cli-disk-full-key-0123456789 " +
                                bin + " prep 'prep.input=[" + (d.path() / "syn/events_00000.csv").string() +
                                "]' prep.output_dir=" + (d.path() / "out").string() +
                                " hydra.run.dir=" + (d.path() / "r2").string() + "\"");
  EXPECT_EQ(r.code, 1) << r.out;  // an error exit, not a signal (-1) or abort
  EXPECT_NE(r.out.find("free space"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(d.path() / "out" / "prep_manifest.json"));
}

TEST(Cli, SweepWithoutMultirunIsRejected) {
  Result r = run("demo seed=1,2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("add --multirun"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace portrait
