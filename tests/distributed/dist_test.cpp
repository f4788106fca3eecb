// Real c10d: a TCPStore and Gloo process groups, with threads standing in for ranks.
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "distributed/context.h"
#include "distributed/env.h"
#include "distributed/reducer.h"

namespace portrait::dist {
namespace {

// Runs fn(ctx) on `world` threads, each a rank with its own store client and Gloo group.
template <typename Fn>
void run_ranks(int world, Fn fn) {
  c10d::TCPStoreOptions so;
  so.port = 0;
  so.isServer = true;
  so.numWorkers = world;
  so.waitWorkers = false;
  auto server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  uint16_t port = server->getPort();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(world);
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        c10d::TCPStoreOptions co;
        co.port = port;
        co.isServer = false;
        co.numWorkers = world;
        auto client = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", co);
        auto store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_0", client);
        DistParams p;
        p.backend = "gloo";
        p.timeout = std::chrono::milliseconds(60000);
        auto ctx = DistContext::create_with_store(store, r, world, p, false);
        fn(*ctx, ctx);
        ctx->barrier("end");
        ctx->shutdown();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

struct EnvGuard {
  std::vector<std::string> names;
  void set(const std::string& k, const std::string& v) {
    names.push_back(k);
    ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~EnvGuard() {
    for (auto& n : names) ::unsetenv(n.c_str());
  }
};

TEST(DistEnv, NoTorchrunVariablesMeansOneProcess) {
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "TORCHELASTIC_RESTART_COUNT"}) ::unsetenv(v);
  DistEnv e = read_dist_env();
  EXPECT_FALSE(e.launched);
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.world_size, 1);
}

TEST(DistEnv, ReadsTheTorchrunContract) {
  EnvGuard g;
  g.set("RANK", "3");
  g.set("LOCAL_RANK", "1");
  g.set("WORLD_SIZE", "4");
  g.set("LOCAL_WORLD_SIZE", "2");
  g.set("MASTER_ADDR", "10.1.2.3");
  g.set("MASTER_PORT", "29511");
  g.set("TORCHELASTIC_RESTART_COUNT", "2");
  g.set("TORCHELASTIC_RUN_ID", "abc");
  g.set("TORCHELASTIC_USE_AGENT_STORE", "True");
  DistEnv e = read_dist_env();
  EXPECT_TRUE(e.launched);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.master_addr, "10.1.2.3");
  EXPECT_EQ(e.master_port, 29511);
  EXPECT_TRUE(e.use_agent_store);
  EXPECT_EQ(e.attempt_prefix(), "/worker/attempt_2");
  EXPECT_EQ(e.run_id, "abc");
}

TEST(DistEnv, MalformedValuesNameTheVariable) {
  EnvGuard g;
  g.set("WORLD_SIZE", "2");
  g.set("RANK", "2");
  g.set("MASTER_ADDR", "127.0.0.1");
  try {
    read_dist_env();
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=2 must be smaller than WORLD_SIZE=2"), std::string::npos);
  }
  g.set("RANK", "x");
  EXPECT_THROW(read_dist_env(), UsageError);
}

TEST(DistEnv, StoreTimeoutComesFromPortraitDistTimeoutAndRejectsJunk) {
  EnvGuard g;
  EXPECT_EQ(read_dist_env().store_timeout_s, 1800);
  g.set("PORTRAIT_DIST_TIMEOUT_S", "7200");
  EXPECT_EQ(read_dist_env().store_timeout_s, 7200);
  for (const char* bad : {"0", "-5", "2h", "1e9"}) {
    g.set("PORTRAIT_DIST_TIMEOUT_S", bad);
    try {
      read_dist_env();
      ADD_FAILURE() << bad << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("PORTRAIT_DIST_TIMEOUT_S"), std::string::npos) << e.what();
    }
  }
}

TEST(DistEnv, ErrorFileHasTorchrunsJsonShape) {
  auto path = std::filesystem::temp_directory_path() / ("err_" + std::to_string(::getpid()) + ".json");
  DistEnv e;
  e.error_file = path.string();
  write_error_file(e, "boom at step 7");
  auto j = nlohmann::json::parse(read_file(path));
  EXPECT_EQ(j["message"]["message"], "RuntimeError: boom at step 7");
  EXPECT_TRUE(j["message"]["extraInfo"].contains("timestamp"));
  std::filesystem::remove(path);
}

TEST(DistContext, WorldSizeOneIsANoOp) {
  DistEnv e;
  auto ctx = DistContext::create(e, {}, false);
  EXPECT_FALSE(ctx->distributed());
  ctx->barrier("x");
  std::vector<at::Tensor> t{torch::ones({2})};
  ctx->all_reduce_sum(t);
  EXPECT_EQ(t[0][0].item<float>(), 1.0f);
  EXPECT_EQ(ctx->broadcast_string("dir", "a"), "a");
  auto x = torch::ones({2, 3}, torch::requires_grad());
  EXPECT_TRUE(all_gather_with_grad(ctx, x).is_same(x));
}

TEST(DistContext, StoreBarrierHoldsEveryRankUntilAllArrive) {
  std::atomic<int> arrived{0};
  std::vector<int> seen(3, -1);
  run_ranks(3, [&](DistContext& c, std::shared_ptr<DistContext>&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * c.rank()));
    arrived++;
    c.barrier("io");
    seen[c.rank()] = arrived.load();
    c.barrier("io");  // the same name again works
  });
  for (int r = 0; r < 3; ++r) EXPECT_EQ(seen[r], 3) << r;
}

TEST(DistContext, BroadcastStringSharesRankZerosValue) {
  std::vector<std::string> got(3);
  run_ranks(3, [&](DistContext& c, std::shared_ptr<DistContext>&) {
    got[c.rank()] = c.broadcast_string("run_dir", "dir-of-rank-" + std::to_string(c.rank()));
  });
  for (auto& g : got) EXPECT_EQ(g, "dir-of-rank-0");
}

TEST(DistContext, GlooAllReduceGatherAndBroadcast) {
  std::vector<float> sums(2), gathered(2), bcast(2);
  run_ranks(2, [&](DistContext& c, std::shared_ptr<DistContext>&) {
    EXPECT_EQ(c.backend_name(), "gloo");
    std::vector<at::Tensor> t{torch::full({3}, float(c.rank() + 1))};
    c.all_reduce_sum(t);
    sums[c.rank()] = t[0][2].item<float>();
    auto g = c.all_gather(torch::full({2, 2}, float(c.rank())));
    EXPECT_EQ(g.sizes(), (std::vector<int64_t>{4, 2}));
    gathered[c.rank()] = g.sum().item<float>();
    std::vector<at::Tensor> b{torch::full({1}, float(10 + c.rank()))};
    c.broadcast(b, 1);
    bcast[c.rank()] = b[0].item<float>();
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(sums[r], 3.0f);
    EXPECT_EQ(gathered[r], 4.0f);  // rank 1 contributes four ones
    EXPECT_EQ(bcast[r], 11.0f);
  }
}

TEST(DistContext, GatherWithGradSumsEveryRanksGradientIntoTheLocalSlice) {
  // loss_r = sum(gathered * w_r) with w_r = r + 1 everywhere; the gradient of rank s's rows
  // is sum over r of w_r = 1 + 2 + 3 = 6, on every rank.
  std::vector<float> grads(3);
  run_ranks(3, [&](DistContext& c, std::shared_ptr<DistContext>& ctx) {
    auto x = torch::full({2, 4}, float(c.rank()), torch::requires_grad());
    auto g = all_gather_with_grad(ctx, x);
    EXPECT_EQ(g.size(0), 6);
    EXPECT_EQ(g.narrow(0, 2 * c.rank(), 2).sum().item<float>(), 8.0f * c.rank());
    auto loss = (g * float(c.rank() + 1)).sum();
    loss.backward();
    grads[c.rank()] = x.grad().mean().item<float>();
  });
  for (auto g : grads) EXPECT_FLOAT_EQ(g, 6.0f);
}

}  // namespace
}  // namespace portrait::dist

namespace portrait::dist {
namespace {

// A small model whose layer `unused` takes no part in the loss.
struct Net : torch::nn::Module {
  Net() {
    a = register_module("a", torch::nn::Linear(8, 16));
    b = register_module("b", torch::nn::Linear(16, 4));
    unused = register_module("unused", torch::nn::Linear(4, 4));
  }
  torch::Tensor forward(const torch::Tensor& x) { return b->forward(torch::tanh(a->forward(x))); }
  torch::nn::Linear a{nullptr}, b{nullptr}, unused{nullptr};
};

TEST(GradReducer, AveragesGradientsInBucketOrderAndHandlesUnusedParameters) {
  const int world = 2;
  // Reference: the average of the per-rank gradients, computed in one process.
  torch::manual_seed(3);
  Net ref;
  std::vector<torch::Tensor> inputs{torch::randn({5, 8}), torch::randn({7, 8})};
  std::vector<std::vector<torch::Tensor>> per_rank;
  for (int r = 0; r < world; ++r) {
    ref.zero_grad();
    ref.forward(inputs[r]).pow(2).mean().backward();
    std::vector<torch::Tensor> g;
    for (auto& p : ref.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    per_rank.push_back(g);
  }
  std::vector<std::vector<torch::Tensor>> got(world);
  std::vector<std::vector<int>> orders(world);
  run_ranks(world, [&](DistContext& c, std::shared_ptr<DistContext>& ctx) {
    torch::manual_seed(100 + c.rank());  // different init: broadcast must fix it
    Net net;
    ReducerParams rp;
    rp.first_bucket_bytes = 64;  // force several buckets
    rp.bucket_cap_bytes = 256;
    GradReducer red(ctx, net.parameters(), rp);
    EXPECT_GT(red.num_buckets(), 2u);
    red.broadcast_parameters();
    {
      torch::NoGradGuard ng;
      auto ps = net.parameters(), rs = ref.parameters();
      for (size_t i = 0; i < ps.size(); ++i) ps[i].copy_(rs[i]);  // same values as the reference
    }
    net.forward(inputs[c.rank()]).pow(2).mean().backward();
    red.finalize();
    for (auto& p : net.parameters()) got[c.rank()].push_back(p.grad().clone());
    orders[c.rank()] = red.last_launch_order();
  });
  auto nparams = per_rank[0].size();
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(got[r].size(), nparams);
    for (size_t i = 0; i < nparams; ++i) {
      auto expected = (per_rank[0][i] + per_rank[1][i]) / 2;
      EXPECT_TRUE(torch::allclose(got[r][i], expected, 1e-6, 1e-7)) << "rank " << r << " param " << i;
    }
    for (size_t i = 0; i < orders[r].size(); ++i) EXPECT_EQ(orders[r][i], static_cast<int>(i));
  }
}

TEST(GradReducer, BroadcastMakesEveryRankStartFromRankZerosParameters) {
  std::vector<float> firsts(2);
  run_ranks(2, [&](DistContext& c, std::shared_ptr<DistContext>& ctx) {
    torch::manual_seed(7 + c.rank());
    Net net;
    GradReducer red(ctx, net.parameters());
    red.broadcast_parameters();
    firsts[c.rank()] = net.a->weight[0][0].item<float>();
  });
  EXPECT_EQ(firsts[0], firsts[1]);
}

TEST(GradReducer, NoSyncMicroStepsAccumulateLocallyThenReduceOnce) {
  std::vector<float> g0(2), g1(2);
  run_ranks(2, [&](DistContext& c, std::shared_ptr<DistContext>& ctx) {
    auto w = torch::zeros({1}, torch::requires_grad());
    GradReducer red(ctx, {w});
    red.set_sync(false);
    (w * float(c.rank() + 1)).sum().backward();  // micro-step: grad = r + 1, not reduced
    red.finalize();
    g0[c.rank()] = w.grad().item<float>();
    red.set_sync(true);
    (w * float(c.rank() + 1)).sum().backward();  // accumulated: 2 (r + 1), then averaged
    red.finalize();
    g1[c.rank()] = w.grad().item<float>();
  });
  EXPECT_EQ(g0[0], 1.0f);
  EXPECT_EQ(g0[1], 2.0f);
  EXPECT_EQ(g1[0], 3.0f);  // (2 + 4) / 2
  EXPECT_EQ(g1[1], 3.0f);
}

}  // namespace
}  // namespace portrait::dist
