// Distributed training under the REAL torchrun from the project venv (CPU processes over
// Gloo): 2 ranks == 1 rank with the same global batch, a killed worker restarted by
// --max-restarts resumes from the last checkpoint, and a 2-rank checkpoint continues on 1 rank
// in the same global sample order.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "train/fixture.h"
#include "common/shell.h"
#include "models/checkpoint.h"

using namespace portrait;
namespace fs = std::filesystem;

namespace {

fs::path tmp_root() { return portrait::testing::process_root("portrait_torchrun_"); }

// One small synth + prep run shared by the tests of this binary (removed at exit).
const fs::path& shard_dir() {
  return portrait::testing::process_tiny_shards("portrait_torchrun_", "torchrun-test-key-0123456789");
}

using Result = portrait::testing::ShellResult;
Result sh(const std::string& cmd) { return portrait::testing::run_shell(cmd); }

std::string portrait_bin() { return std::string(PORTRAIT_BINARY_DIR) + "/bin/portrait"; }
std::string torchrun_bin() { return (fs::path(PORTRAIT_PYTHON).parent_path() / "torchrun").string(); }

/// A tiny model (dropout off: dropout masks are rank-local random draws) and 8 steps.
/// train.eps=1e-3: some gradients are exactly zero in exact arithmetic (the attention key
/// bias: softmax ignores a constant added to every key), so their computed values are pure
/// rounding noise (~1e-10) and Adam with eps=1e-8 turns noise into lr-sized steps of random
/// sign, differently for any two summation orders. A larger eps keeps the comparison about
/// the synchronisation, not about the noise (measured: 1.9e-4 with eps=1e-8 on the key bias
/// only, every other parameter within 1e-6; 1.2e-7 everywhere with eps=1e-3).
std::string common_overrides(int64_t batch) {
  return "shards=" + shard_dir().string() +
         " seed=11 model=tiny model.d_model=16 model.n_layers=1 model.n_heads=2 model.d_ff=32"
         " model.embed_dim=16 model.repeat_dim=8 model.max_events=16 model.max_text_tokens=8 model.dropout=0.0"
         " train.batch_size=" +
         std::to_string(batch) +
         " train.steps=8 train.warmup_steps=2 train.lr=3e-3 train.loss.uniform_negatives=32"
         " train.loss.masked_item.enabled=true train.eval_every=0 train.final_eval_splits=[]"
         " train.progress=false train.loader_threads=1 train.threads=1 train.log_every=1"
         " train.log_samples=true train.ckpt_every=4 train.eps=1e-3 " +
         (std::getenv("PORTRAIT_TORCHRUN_TEST_EXTRA") ? std::getenv("PORTRAIT_TORCHRUN_TEST_EXTRA") : "");
}

/// Single process (no torchrun variables in the environment).
Result train_1proc(const fs::path& run_dir, const std::string& extra) {
  return sh("env -u WORLD_SIZE -u RANK -u LOCAL_RANK " + portrait_bin() + " train " + common_overrides(16) +
            " hydra.run.dir=" + run_dir.string() + " " + extra);
}

/// `torchrun --standalone --nproc-per-node=2 --no-python portrait train ...`, 8 users per rank.
Result train_2proc(const std::string& cwd, const std::string& run_dir_override, const std::string& extra,
                   const std::string& env = "", int max_restarts = 0) {
  return sh("cd " + cwd + " && env " + env + " OMP_NUM_THREADS=1 " + torchrun_bin() +
            " --standalone --nproc-per-node=2 --max-restarts=" + std::to_string(max_restarts) +
            " --monitor-interval=0.2 --no-python " + portrait_bin() + " train " + common_overrides(8) + " " +
            run_dir_override + " " + extra);
}

fs::path fresh(const std::string& name) {
  shard_dir();  // creates (and first clears) tmp_root()
  auto d = tmp_root() / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::map<std::string, torch::Tensor> weights(const fs::path& model_dir) {
  ModelBundle m = load_model(model_dir);
  std::map<std::string, torch::Tensor> out;
  for (auto& kv : m.encoder->named_parameters()) out["encoder." + kv.key()] = kv.value().detach().clone();
  for (auto& kv : m.head->named_parameters()) out["head." + kv.key()] = kv.value().detach().clone();
  for (auto& kv : m.temperature->named_parameters()) out["temperature." + kv.key()] = kv.value().detach().clone();
  return out;
}

/// max |a - b| over every parameter (inf when the parameter sets differ).
double max_diff(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (const auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second.sizes() != t.sizes()) return INFINITY;
    const double d = (t - it->second).abs().max().item<double>();
    if (std::getenv("PORTRAIT_TORCHRUN_TEST_EXTRA")) std::printf("  %-40s %.3g\n", k.c_str(), d);
    m = std::max(m, d);
  }
  return m;
}

/// step -> sorted global user indices, merged over every samples.rank*.jsonl in run_dir.
std::map<int64_t, std::vector<int64_t>> samples(const fs::path& run_dir) {
  std::map<int64_t, std::vector<int64_t>> out;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("samples.rank", 0) != 0) continue;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      auto& v = out[j.at("step").get<int64_t>()];
      for (int64_t u : j.at("users")) v.push_back(u);
    }
  }
  for (auto& [s, v] : out) std::sort(v.begin(), v.end());
  return out;
}

std::vector<nlohmann::json> jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// fp32 tolerance for 2 ranks vs 1 rank: the same sums are formed in another order (the
// in-batch candidates are concatenated per rank, gradients are summed by Gloo's ring), so
// parameters agree to rounding, amplified a little by Adam over 8 steps.
constexpr double kRankTolerance = 1e-5;

}  // namespace

TEST(Torchrun, TwoProcessesMatchOneProcessWithTheSameGlobalBatchAndGradientsAgreeEveryStep) {
  ASSERT_TRUE(fs::exists(torchrun_bin())) << torchrun_bin();
  auto d1 = fresh("one"), d2 = fresh("two");
  Result one = train_1proc(d1, "");
  ASSERT_EQ(one.code, 0) << one.out;
  Result two = train_2proc(d2.string(), "hydra.run.dir=" + d2.string(), "train.dist.verify_sync=true");
  ASSERT_EQ(two.code, 0) << two.out;

  // Same global batches, step by step.
  auto s1 = samples(d1), s2 = samples(d2);
  ASSERT_EQ(s1.size(), 8u);
  EXPECT_EQ(s1, s2);
  // Gradients were checked on every step and agreed bitwise across ranks.
  int checked = 0;
  for (const auto& j : jsonl(d2 / "metrics.jsonl")) {
    if (j.value("event", "") != "grad_sync") continue;
    ++checked;
    EXPECT_EQ(j.at("grad_sync_max_diff").get<double>(), 0.0) << j.dump();
  }
  EXPECT_EQ(checked, 8);
  // Same parameters within the fp32 tolerance.
  const double diff = max_diff(weights(d1 / "model"), weights(d2 / "model"));
  std::printf("[torchrun] 2 ranks vs 1 rank after 8 steps: max |param diff| = %.3g (tolerance %.0e)\n", diff,
              kRankTolerance);
  EXPECT_LT(diff, kRankTolerance);
  // And training did move them (the comparison is not vacuous).
  auto w = weights(d1 / "model");
  EXPECT_GT(w.size(), 10u);
}

TEST(Torchrun, KilledWorkerIsRestartedAndResumesFromTheLastCheckpoint) {
  auto ref = fresh("ref"), cwd = fresh("killed");
  Result r = train_2proc(ref.string(), "hydra.run.dir=" + ref.string(), "");
  ASSERT_EQ(r.code, 0) << r.out;
  // Default (timestamped) run directory: the restarted attempt must find the first attempt's.
  Result k = train_2proc(cwd.string(), "", "", "PORTRAIT_FAULT_KILL_STEP=6 PORTRAIT_FAULT_KILL_RANK=1",
                         /*max_restarts=*/1);
  ASSERT_EQ(k.code, 0) << k.out;
  EXPECT_NE(k.out.find("fault injection: rank 1 kills itself at step 6"), std::string::npos) << k.out;
  EXPECT_NE(k.out.find("resumed from"), std::string::npos) << k.out;
  std::vector<fs::path> runs;
  for (const auto& e : fs::recursive_directory_iterator(cwd / "outputs"))
    if (e.is_directory() && fs::exists(e.path() / ".hydra")) runs.push_back(e.path());
  ASSERT_EQ(runs.size(), 1u) << "the restarted attempt must reuse the first attempt's run directory\n" << k.out;
  const fs::path run = runs[0];
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "step_000000004")) << k.out;
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "step_000000008")) << k.out;
  const double diff = max_diff(weights(ref / "model"), weights(run / "model"));
  std::printf("[torchrun] killed at step 6, restarted from step 4: max |param diff| vs uninterrupted = %.3g\n",
              diff);
  EXPECT_EQ(diff, 0.0) << "resume after a restart must be bitwise identical on CPU";
}

TEST(Torchrun, TwoRankCheckpointContinuesOnOneRankInTheSameGlobalOrder) {
  auto ref = fresh("ref1"), d = fresh("switch");
  Result a = train_1proc(ref, "");
  ASSERT_EQ(a.code, 0) << a.out;
  Result first = train_2proc(d.string(), "hydra.run.dir=" + d.string(), "train.stop_after=4");
  ASSERT_EQ(first.code, 0) << first.out;
  ASSERT_TRUE(fs::exists(d / "checkpoints" / "step_000000004")) << first.out;
  EXPECT_FALSE(fs::exists(d / "model")) << "stop_after must not write the final model";
  Result second = train_1proc(d, "train.resume=auto");
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_NE(second.out.find("resuming a checkpoint of world size 2"), std::string::npos) << second.out;
  // Steps 1-4 from two ranks, steps 5-8 from one: the same global batches as one rank throughout.
  auto s_ref = samples(ref), s = samples(d);
  ASSERT_EQ(s_ref.size(), 8u);
  EXPECT_EQ(s, s_ref);
  const double diff = max_diff(weights(ref / "model"), weights(d / "model"));
  std::printf("[torchrun] 2-rank checkpoint resumed on 1 rank: max |param diff| vs 1 rank = %.3g\n", diff);
  EXPECT_LT(diff, kRankTolerance);
}

TEST(Torchrun, SigtermFinishesTheStepWritesACheckpointAndExits143) {
  auto d = fresh("sigterm");
  // A long run in the background; SIGTERM once a few steps are logged.
  // The wrapper records the trainer's pid and, once it exits, its exit status.
  const std::string cmd = "env -u WORLD_SIZE -u RANK -u LOCAL_RANK " + portrait_bin() + " train " +
                          common_overrides(16) + " train.steps=100000 train.ckpt_every=0 hydra.run.dir=" +
                          d.string() + " > " + (d / "out.txt").string() + " 2>&1";
  std::ofstream(d / "run.sh") << cmd << " &\np=$!\necho $p > " << (d / "pid").string() << "\nwait $p\necho $? > "
                              << (d / "rc.tmp").string() << " && mv " << (d / "rc.tmp").string() << " "
                              << (d / "rc").string() << "\n";
  sh("bash " + (d / "run.sh").string() + " > /dev/null 2>&1 &");
  for (int i = 0; i < 600 && (!fs::exists(d / "pid") || jsonl(d / "metrics.jsonl").size() < 3); ++i)
    ::usleep(100 * 1000);
  ASSERT_GE(jsonl(d / "metrics.jsonl").size(), 3u) << "training did not start";
  int pid = 0;
  std::ifstream(d / "pid") >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  for (int i = 0; i < 600 && !fs::exists(d / "rc"); ++i) ::usleep(100 * 1000);
  int rc = -1;
  std::ifstream(d / "rc") >> rc;
  std::ifstream in(d / "out.txt");
  std::string out((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(rc, 143) << out;
  EXPECT_NE(out.find("interrupted by a stop signal"), std::string::npos) << out;
  auto ckpts = std::vector<fs::path>();
  for (const auto& e : fs::directory_iterator(d / "checkpoints")) ckpts.push_back(e.path());
  ASSERT_EQ(ckpts.size(), 1u) << out;
  auto st = nlohmann::json::parse(std::ifstream(ckpts[0] / "state.json"));
  const int64_t step = st.at("step");
  EXPECT_GE(step, 3);
  EXPECT_EQ(jsonl(d / "metrics.jsonl").back().at("step").get<int64_t>(), step) << "the last logged step is saved";
  // The checkpoint continues.
  Result r = sh("env -u WORLD_SIZE -u RANK -u LOCAL_RANK " + portrait_bin() + " train " + common_overrides(16) +
                " train.steps=100000 train.stop_after=" + std::to_string(step + 2) +
                " train.resume=auto hydra.run.dir=" + d.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(d / "checkpoints" / ("step_" + std::string(9 - std::to_string(step + 2).size(), '0') +
                                             std::to_string(step + 2))))
      << r.out;
}

TEST(Torchrun, FailingWorkersWriteTheErrorFileShownAsRootCause) {
  auto d = fresh("failing");
  Result r = sh("cd " + d.string() + " && OMP_NUM_THREADS=1 " + torchrun_bin() +
                " --standalone --nproc-per-node=2 --no-python " + portrait_bin() + " train " + common_overrides(8) +
                " shards=" + (d / "no_such_shards").string() + " hydra.run.dir=" + d.string());
  EXPECT_NE(r.code, 0) << r.out;
  // torchrun prints the worker's error-file JSON message (not "<N/A>") under Root Cause.
  EXPECT_NE(r.out.find("Root Cause"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no_such_shards"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("error_file: <N/A>"), std::string::npos) << r.out;
}
