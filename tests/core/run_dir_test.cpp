#include <gtest/gtest.h>

#include <regex>

#include "config_fixture.h"
#include "core/config/run_dir.h"
#include "core/config/yaml_io.h"
#include "core/fs.h"

namespace portrait::cfg {
namespace {

using portrait::testing::at;

class RunDir : public portrait::testing::ConfigTest {
 protected:
  void SetUp() override {
    dir.write("job.yaml", "defaults:\n  - m: a\n  - _self_\nx: 1\nout: ${hydra:runtime.output_dir}\n");
    dir.write("m/a.yaml", "v: 1\n");
    dir.write("m/b.yaml", "v: 2\n");
  }
};

TEST_F(RunDir, DefaultDirectoryIsOutputsDateTime) {
  Composed c = compose("job");
  ResolveContext ctx;
  std::filesystem::path p = decide_run_dir(c, ctx, false);
  std::string tail = p.parent_path().parent_path().filename().string() + "/" +
                     p.parent_path().filename().string() + "/" + p.filename().string();
  EXPECT_TRUE(std::regex_match(tail, std::regex(R"(outputs/\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2})"))) << p;
  EXPECT_EQ(at(c.hydra, "runtime.output_dir").as_string(), p.string());
}

TEST_F(RunDir, FilesAreWrittenOnceWithConfigAndOverrides) {
  auto run = dir.path() / "run1";
  Composed c = compose("job", {"m=b", "x=5", "hydra.run.dir=" + run.string()});
  ResolveContext ctx;
  auto p = decide_run_dir(c, ctx, false);
  EXPECT_EQ(p, run);
  EXPECT_TRUE(write_run_dir(c, p, true));
  Node config = load_yaml_file(run / ".hydra/config.yaml");
  EXPECT_EQ(at(config, "m.v").as_int(), 2);
  EXPECT_EQ(at(config, "x").as_int(), 5);
  EXPECT_EQ(at(config, "out").as_string(), "${hydra:runtime.output_dir}");  // unresolved, as Hydra
  Node overrides = load_yaml_file(run / ".hydra/overrides.yaml");
  ASSERT_TRUE(overrides.is_list());
  ASSERT_EQ(overrides.elements().size(), 2u);  // hydra.* overrides are not task overrides
  EXPECT_EQ(overrides.elements()[0].as_string(), "m=b");
  EXPECT_EQ(overrides.elements()[1].as_string(), "x=5");
  Node hydra = load_yaml_file(run / ".hydra/hydra.yaml");
  EXPECT_EQ(at(hydra, "hydra.runtime.choices.m").as_string(), "b");
  EXPECT_EQ(at(hydra, "hydra.run.dir").as_string(), run.string());

  // A second job in the same directory (a restart) leaves the record untouched.
  std::string before = read_file(run / ".hydra/config.yaml");
  Composed again = compose("job", {"m=a", "hydra.run.dir=" + run.string()});
  decide_run_dir(again, ctx, false);
  EXPECT_FALSE(write_run_dir(again, run, true));
  EXPECT_EQ(read_file(run / ".hydra/config.yaml"), before);
  // No temporary files are left behind.
  for (const auto& e : std::filesystem::directory_iterator(run / ".hydra"))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(RunDir, NonZeroRanksCreateTheDirectoryButWriteNothing) {
  auto run = dir.path() / "run2";
  Composed c = compose("job", {"hydra.run.dir=" + run.string()});
  ResolveContext ctx;
  decide_run_dir(c, ctx, false);
  EXPECT_FALSE(write_run_dir(c, run, /*write_files=*/false));
  EXPECT_TRUE(std::filesystem::is_directory(run));
  EXPECT_FALSE(std::filesystem::exists(run / ".hydra"));
}

TEST_F(RunDir, OutputSubdirNullDropsTheHydraFolder) {
  auto run = dir.path() / "run3";
  Composed c = compose("job", {"hydra.run.dir=" + run.string(), "hydra.output_subdir=null"});
  ResolveContext ctx;
  decide_run_dir(c, ctx, false);
  EXPECT_FALSE(write_run_dir(c, run, true));
  EXPECT_FALSE(std::filesystem::exists(run / ".hydra"));
}

TEST_F(RunDir, RunDirMayInterpolateJobKeysAndHydraKeys) {
  Composed c = compose("job", {"hydra.run.dir=" + (dir.path() / "r_${x}_${hydra.job.name}").string()});
  ResolveContext ctx;
  auto p = decide_run_dir(c, ctx, false);
  EXPECT_EQ(p.filename().string(), "r_1_job");
}

TEST_F(RunDir, ResolvedConfigSeesTheOutputDirectory) {
  auto run = dir.path() / "run4";
  Composed c = compose("job", {"hydra.run.dir=" + run.string()});
  ResolveContext ctx;
  decide_run_dir(c, ctx, false);
  ctx.hydra = &c.hydra;
  Node r = resolve(c.config, ctx);
  EXPECT_EQ(at(r, "out").as_string(), run.string());
}

}  // namespace
}  // namespace portrait::cfg
