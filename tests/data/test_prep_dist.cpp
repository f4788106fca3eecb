// `portrait prep` over a real c10d TCPStore: two ranks (threads, each with its own store
// client and a store-only DistContext, wired as apps/cmd_data.cpp wires them under torchrun)
// produce byte-for-byte the outputs of a one-process run.
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/fs.h"
#include "data/prep.h"
#include "data/shard.h"
#include "data/synth.h"
#include "distributed/context.h"

namespace fs = std::filesystem;
using namespace portrait::data;

TEST(PrepDist, TwoRanksOnATcpStoreWriteTheBytesOfAOneProcessRun) {
  auto d = fs::temp_directory_path() / ("portrait_prep_dist_" + std::to_string(::getpid()));
  fs::remove_all(d);
  SynthParams sp;
  sp.output_dir = (d / "syn").string();
  sp.users = 250;
  sp.items = 300;
  sp.days = 60;
  sp.files = 2;
  sp.fault_fraction = 0.02;
  sp.bot_users = 0;
  run_synth(sp);
  PrepParams base;
  base.input = {(d / "syn/events_*").string()};
  base.catalogue = (d / "syn/catalogue.csv").string();
  base.hash_key = "test-key-0123456789-abcdefghij";
  base.partitions = 3;
  base.progress = false;
  base.tokenizer.vocab_size = 600;
  base.data.max_reject_fraction = 0.5;

  auto one = base;
  one.output_dir = (d / "one").string();
  const PrepSummary s1 = run_prep(one);

  const int world = 2;
  c10d::TCPStoreOptions so;
  so.port = 0;
  so.isServer = true;
  so.numWorkers = world;
  so.waitWorkers = false;
  auto server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  const uint16_t port = server->getPort();
  std::vector<std::string> errors(world);
  std::vector<PrepSummary> sums(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        c10d::TCPStoreOptions co;
        co.port = port;
        co.isServer = false;
        co.numWorkers = world;
        auto client = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", co);
        auto store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_0", client);
        portrait::dist::DistParams dp;
        dp.backend = "none";
        dp.timeout = std::chrono::milliseconds(120000);
        auto ctx = portrait::dist::DistContext::create_with_store(store, r, world, dp, false);
        auto p = base;
        p.output_dir = (d / "two").string();
        p.rank = r;
        p.world = world;
        p.barrier = [ctx](const std::string& n) { ctx->barrier("prep/" + n); };
        p.broadcast = [ctx](const std::string& n, const std::string& v) {
          return ctx->broadcast_string("prep/" + n, v);
        };
        sums[size_t(r)] = run_prep(p);
        ctx->shutdown();
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) ASSERT_EQ(errors[size_t(r)], "") << "rank " << r;
  EXPECT_EQ(sums[1].users, s1.users);
  EXPECT_EQ(sums[0].rejects, s1.rejects);
  ASSERT_EQ(list_shards(d / "two").size(), 3u);
  for (auto& e : fs::directory_iterator(d / "one")) {
    const auto n = e.path().filename();
    if (n == "prep_summary.json") continue;
    ASSERT_TRUE(fs::exists(d / "two" / n)) << n;
    EXPECT_TRUE(portrait::read_file(e.path()) == portrait::read_file(d / "two" / n)) << n;
  }
  auto j = nlohmann::json::parse(portrait::read_file(d / "two" / "prep_summary.json"));
  EXPECT_EQ(j["world_size"], 2);
  fs::remove_all(d);
}
