#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "data/loader.h"
#include "data/prep.h"
#include "data/synth.h"

using namespace portrait::data;
namespace fs = std::filesystem;

namespace {

// One small prep run shared by all loader tests.
const fs::path& shard_dir() {
  static fs::path dir = [] {
    auto d = fs::temp_directory_path() / ("portrait_loader_" + std::to_string(::getpid()));
    fs::remove_all(d);
    SynthParams sp;
    sp.output_dir = (d / "syn").string();
    sp.users = 150;
    sp.items = 300;
    sp.days = 60;
    sp.fault_fraction = 0;
    sp.bot_users = 0;
    run_synth(sp);
    PrepParams p;
    p.input = {(d / "syn/events_00000.csv").string()};
    p.output_dir = (d / "out").string();
    p.hash_key = "loader-test-key-0123456789";
    p.partitions = 3;
    p.progress = false;
    p.seq_len = 16;
    p.text_len = 8;
    p.tokenizer.vocab_size = 400;
    run_prep(p);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("portrait_loader_" + std::to_string(::getpid())), ec);
    });
    return d / "out";
  }();
  return dir;
}

LoaderParams lp(int batch, int rank = 0, int world = 1) {
  LoaderParams p;
  p.shard_dir = shard_dir().string();
  p.batch_size = batch;
  p.rank = rank;
  p.world = world;
  p.seed = 7;
  return p;
}

}  // namespace

TEST(Loader, BatchesRoundTripShardArraysWithPaddingAndMasks) {
  Loader l(lp(8));
  ASSERT_GT(l.num_users(), 100);
  EXPECT_EQ(l.seq_len(), 16);
  // Reference: read the shards directly and compare user by user.
  int64_t g = 0;
  for (auto& f : list_shards(shard_dir())) {
    auto c = read_shard(f, {"train"});
    auto& a = c.splits[0];
    for (size_t r = 0; r < a.size(); ++r, ++g) {
      Batch b = l.make_batch({g});
      int64_t n = a.input_offsets[r + 1] - a.input_offsets[r];
      ASSERT_EQ(b.length[0], std::min<int64_t>(n, 16));
      ASSERT_EQ(b.item[size_t(b.length[0] - 1)], a.input_item[size_t(a.input_offsets[r + 1] - 1)]);
      for (int64_t k = 0; k < 16; ++k) {
        ASSERT_EQ(b.input_mask[size_t(k)], k < b.length[0] ? 1.f : 0.f);
        if (k >= b.length[0]) {
          ASSERT_EQ(b.item[size_t(k)], 0);
        }
      }
      int64_t nt = a.target_offsets[r + 1] - a.target_offsets[r];
      float tm = 0;
      for (float x : b.target_mask) tm += x;
      ASSERT_EQ(int64_t(tm), std::min<int64_t>(nt, 32));
      float pc = 0;
      for (float x : b.purchase) pc += x;
      ASSERT_EQ(int64_t(pc), a.purchase_offsets[r + 1] - a.purchase_offsets[r]);
      ASSERT_EQ(l.user_id(g), c.user_ids[size_t(a.user[r])]);
    }
  }
  EXPECT_EQ(g, l.num_users());
}

TEST(Loader, ShuffleIsDeterministicPerSeedAndEpoch) {
  Loader a(lp(8)), b(lp(8));
  EXPECT_EQ(a.epoch_order(3), b.epoch_order(3));
  EXPECT_NE(a.epoch_order(3), a.epoch_order(4));
  auto p = lp(8);
  p.seed = 8;
  Loader c(p);
  EXPECT_NE(a.epoch_order(3), c.epoch_order(3));
  auto o = a.epoch_order(3);
  std::sort(o.begin(), o.end());
  for (int64_t i = 0; i < int64_t(o.size()); ++i) ASSERT_EQ(o[size_t(i)], i);
}

TEST(Loader, RanksGetDisjointSetsCoveringAllUsersForWorldSizesOneToFour) {
  for (int W = 1; W <= 4; ++W) {
    std::vector<int64_t> seen;
    for (int r = 0; r < W; ++r) {
      Loader l(lp(5, r, W));
      for (int64_t b = 0; b < l.batches_per_epoch(); ++b)
        for (int64_t u : l.rank_indices(2, b)) seen.push_back(u);
    }
    std::set<int64_t> uniq(seen.begin(), seen.end());
    Loader l(lp(5));
    EXPECT_EQ(seen.size(), uniq.size()) << "world " << W << ": a user went to two ranks";
    EXPECT_EQ(int64_t(uniq.size()), l.num_users()) << "world " << W;
  }
}

TEST(Loader, ResumingWithADifferentWorldSizeContinuesTheSameGlobalOrder) {
  Loader one(lp(8));
  const auto order = one.epoch_order(1);
  // 2 ranks x batch 4 (global batch 8) consume 3 global batches ...
  std::vector<int64_t> consumed;
  for (int r = 0; r < 2; ++r) {
    Loader l(lp(4, r, 2));
    l.start_epoch(1);
    Batch b;
    for (int k = 0; k < 3 && l.next(b); ++k) consumed.insert(consumed.end(), b.user_index.begin(), b.user_index.end());
  }
  // ... then 4 ranks x batch 2 (global batch 8) resume at sample 24.
  std::vector<int64_t> rest;
  for (int r = 0; r < 4; ++r) {
    Loader l(lp(2, r, 4));
    l.start_epoch(1, 24);
    Batch b;
    while (l.next(b)) rest.insert(rest.end(), b.user_index.begin(), b.user_index.end());
  }
  std::multiset<int64_t> first(consumed.begin(), consumed.end()), want_first(order.begin(), order.begin() + 24);
  EXPECT_EQ(first, want_first);
  std::multiset<int64_t> second(rest.begin(), rest.end()), want_rest(order.begin() + 24, order.end());
  EXPECT_EQ(second, want_rest);
  Loader bad(lp(4, 0, 2));
  EXPECT_THROW(bad.start_epoch(1, 5), portrait::ConfigError);
}

TEST(Loader, PrefetchedBatchesArriveInOrderAndMatchSynchronousOnes) {
  auto p = lp(6, 1, 2);
  p.threads = 3;
  p.prefetch = 2;
  Loader l(p);
  l.start_epoch(0);
  Batch b;
  int64_t k = 0;
  while (l.next(b)) {
    ASSERT_EQ(b.global_batch, k);
    auto want = l.rank_indices(0, k);
    ASSERT_EQ(b.user_index, want);
    Batch ref = l.make_batch(want);
    ASSERT_EQ(b.item, ref.item);
    ASSERT_EQ(b.text, ref.text);
    ++k;
  }
  EXPECT_EQ(k, l.batches_per_epoch());
}

TEST(Loader, RejectsFilesThatAreNotPortraitShards) {
  auto d = fs::temp_directory_path() / ("portrait_notshard_" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "shard_00000.h5") << "not hdf5";
  LoaderParams p;
  p.shard_dir = d.string();
  EXPECT_THROW(Loader l(p), portrait::DataError);
  p.shard_dir = (d / "missing").string();
  EXPECT_THROW(Loader l(p), portrait::DataError);
  fs::remove_all(d);
}
