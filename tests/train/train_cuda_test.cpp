// The trainer and encoder on CUDA (label gpu): bf16 autocast training, fp32 parity with the
// CPU path, and artefacts that move between devices. Every test skips cleanly without a GPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/fs.h"
#include "models/checkpoint.h"
#include "models/encoder.h"
#include "train/fixture.h"
#include "train/internal.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace portrait;
using namespace portrait::train;

namespace {

#define SKIP_WITHOUT_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

fs::path tmp_root() { return portrait::testing::process_root("portrait_train_cuda_"); }

// One small synth + prep run shared by the tests of this binary (removed at exit).
const fs::path& shard_dir() {
  return portrait::testing::process_tiny_shards("portrait_train_cuda_", "train-cuda-test-key-0123456789");
}

TrainParams cuda_params() {
  TrainParams p;
  p.shards = shard_dir().string();
  p.seed = 5;
  p.device = "cuda";
  p.precision = "auto";  // bf16 autocast on CUDA
  p.model.d_model = 32;
  p.model.n_layers = 2;
  p.model.n_heads = 4;
  p.model.d_ff = 64;
  p.model.embed_dim = 24;
  p.model.repeat_dim = 8;
  p.model.head_hidden = 8;
  p.model.max_events = 16;
  p.model.max_text_tokens = 8;
  p.model.dropout = 0.0;
  p.batch_size = 32;
  p.steps = 60;
  p.warmup_steps = 5;
  p.lr = 3e-3;
  p.loss.uniform_negatives = 64;
  p.loss.masked_item.enabled = true;
  p.eval_every = 0;
  p.ckpt_every = 0;
  p.final_eval_splits = {"val"};
  p.progress = false;
  p.loader_threads = 1;
  p.log_every = 5;
  p.config_yaml = "test: true\n";
  return p;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST(TrainCuda, Bf16TrainingLowersTheLossAndReportsMfu) {
  SKIP_WITHOUT_CUDA();
  auto run = tmp_root() / "bf16";
  fs::remove_all(run);
  auto s = run_train(cuda_params(), run);
  EXPECT_EQ(s.steps, 60);
  EXPECT_EQ(s.nonfinite_skipped, 0);
  auto recs = read_jsonl(run / "metrics.jsonl");
  ASSERT_GE(recs.size(), 10u);
  for (const auto& r : recs) {
    ASSERT_TRUE(std::isfinite(r.at("loss").get<double>())) << r.dump();
    ASSERT_TRUE(r.contains("mfu")) << "CUDA runs report model-FLOPs utilisation: " << r.dump();
    const double mfu = r.at("mfu").get<double>();
    EXPECT_GT(mfu, 0.0);
    EXPECT_LT(mfu, 1.0);
  }
  EXPECT_LT(recs.back().at("loss").get<double>(), recs.front().at("loss").get<double>() - 0.5)
      << "first " << recs.front().dump() << "\nlast " << recs.back().dump();
  ASSERT_TRUE(s.final_eval.contains("val"));
  const auto& ev = s.final_eval["val"];
  EXPECT_GT(ev["model"]["recall@10"].get<double>(), 0.0);
}

// A model trained on the GPU is an ordinary artefact: it loads on the CPU and gives the same
// fp32 embeddings as on the GPU (up to reduction order), including the repeat channel.
TEST(TrainCuda, Fp32EncoderOnCudaMatchesCpuAndArtefactsMoveBetweenDevices) {
  SKIP_WITHOUT_CUDA();
  auto p = cuda_params();
  p.steps = 10;
  p.final_eval_splits = {};
  auto run = tmp_root() / "parity";
  fs::remove_all(run);
  run_train(p, run);
  ModelBundle cpu = load_model(run / "model", torch::kCPU);
  ModelBundle gpu = load_model(run / "model", torch::Device(torch::kCUDA, 0));
  cpu.encoder->eval();
  gpu.encoder->eval();

  data::LoaderParams lp;
  lp.shard_dir = shard_dir().string();
  lp.split = "val";
  lp.batch_size = 64;
  lp.shuffle = false;
  lp.threads = 1;
  data::Loader loader(lp);
  std::vector<int64_t> users;
  for (int64_t i = 0; i < std::min<int64_t>(loader.num_users(), 61); ++i) users.push_back(i);  // odd size
  data::Batch b = loader.make_batch(users);
  torch::NoGradGuard ng;
  auto oc = cpu.encoder->forward(to_user_batch(b, torch::kCPU));
  auto og = gpu.encoder->forward(to_user_batch(b, torch::Device(torch::kCUDA, 0)));
  EXPECT_TRUE(torch::allclose(oc.user, og.user.cpu(), 1e-4, 1e-4))
      << (oc.user - og.user.cpu()).abs().max().item<float>();
  auto m = to_user_batch(b, torch::kCPU).event_mask.unsqueeze(-1);
  EXPECT_TRUE(torch::allclose(oc.states * m, og.states.cpu() * m, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(cpu.encoder->all_item_vectors(), gpu.encoder->all_item_vectors().cpu(), 1e-5, 1e-5));
}
