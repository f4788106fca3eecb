// `portrait demo` stops at the first interrupted stage: SIGINT during train finishes the
// step, checkpoints, exits 130 with the stage and a resume command, and no later stage runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "../core/config_fixture.h"
#include "common/shell.h"

namespace portrait {
namespace {

namespace fs = std::filesystem;

size_t lines_in(const fs::path& p) {
  std::ifstream in(p);
  return static_cast<size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
}

TEST(DemoStop, SigintDuringTrainExits130WithAResumeCommandAndRunsNoLaterStage) {
  testing::TempDir d;
  const fs::path run = d.path() / "run";
  // A tiny shop (its planted bots exceed the default reject limit) and an endless training
  // run, so the signal lands inside the train stage.
  const std::string cmd = std::string("OMP_NUM_THREADS=1 ") + PORTRAIT_BINARY_DIR +
                          "/bin/portrait demo demo.users=200 demo.items=50 data.clean.max_reject_fraction=0.9 "
                          "train.steps=100000 "
                          "train.ckpt_every=0 train.log_every=1 train.threads=1 train.progress=false "
                          "hydra.run.dir=" + run.string() + " > " + (d.path() / "out.txt").string() + " 2>&1";
  // The wrapper records the demo's pid and, once it exits, its exit status.
  std::ofstream(d.path() / "run.sh") << cmd << " &\np=$!\necho $p > " << (d.path() / "pid").string()
                                     << "\nwait $p\necho $? > " << (d.path() / "rc.tmp").string() << " && mv "
                                     << (d.path() / "rc.tmp").string() << " " << (d.path() / "rc").string() << "\n";
  testing::run_shell("bash " + (d.path() / "run.sh").string() + " > /dev/null 2>&1 &");
  const fs::path metrics = run / "train" / "metrics.jsonl";
  for (int i = 0; i < 3000 && !fs::exists(d.path() / "rc") && lines_in(metrics) < 2; ++i) ::usleep(100 * 1000);
  ASSERT_GE(lines_in(metrics), 2u) << "the train stage did not start";
  int pid = 0;
  std::ifstream(d.path() / "pid") >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  for (int i = 0; i < 1200 && !fs::exists(d.path() / "rc"); ++i) ::usleep(100 * 1000);
  int rc = -1;
  std::ifstream(d.path() / "rc") >> rc;
  std::ifstream in(d.path() / "out.txt");
  std::string out((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(rc, 130) << out;
  EXPECT_NE(out.find("demo: interrupted by SIGINT during stage 'train'"), std::string::npos) << out;
  EXPECT_NE(out.find("not run: embed, segment, score, tags, profile"), std::string::npos) << out;
  EXPECT_NE(out.find("resume with:\n  portrait demo "), std::string::npos) << out;
  EXPECT_NE(out.find("'demo.stages=[train,embed,segment,score,tags,profile]' train.resume=auto hydra.run.dir=" +
                     run.string()),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("cannot read"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(run / "embed")) << "a stage after the interrupted one ran";
  EXPECT_TRUE(fs::exists(run / "train" / "checkpoints")) << out;
}

TEST(DemoStop, TrainStopAfterEndsTheDemoCleanlyWithAContinueCommand) {
  testing::TempDir d;
  const fs::path run = d.path() / "run";
  auto r = testing::run_shell(std::string("OMP_NUM_THREADS=1 ") + PORTRAIT_BINARY_DIR +
                              "/bin/portrait demo demo.users=200 demo.items=50 data.clean.max_reject_fraction=0.9 "
                              "train.steps=100 train.stop_after=2 train.threads=1 train.progress=false "
                              "hydra.run.dir=" + run.string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("demo: stopped during stage 'train' (train.stop_after: step 2 of 100); not run: embed"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("continue with:\n  portrait demo "), std::string::npos) << r.out;
  // The continue command resumes the checkpoint and runs to train.steps.
  EXPECT_NE(r.out.find("train.progress=false 'demo.stages=[train,embed,segment,score,tags,profile]' train.resume=auto"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("cannot read"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(run / "embed")) << r.out;
}

}  // namespace
}  // namespace portrait
