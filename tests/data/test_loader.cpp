#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include <hdf5.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/loader.h"
#include "data/manifest.h"
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

// A small prep into `out` (partitions shards; stops after `max_shards` written when >= 0).
void prep_into(const fs::path& out, int partitions, int64_t max_shards = -1) {
  PrepParams p;
  p.input = {(shard_dir().parent_path() / "syn/events_00000.csv").string()};
  p.output_dir = out.string();
  p.hash_key = "loader-test-key-0123456789";
  p.partitions = partitions;
  p.progress = false;
  p.seq_len = 16;
  p.text_len = 8;
  p.tokenizer.vocab_size = 400;
  p.debug_max_shards = max_shards;
  run_prep(p);
}

std::string loader_error(const fs::path& dir) {
  LoaderParams p;
  p.shard_dir = dir.string();
  try {
    Loader l(p);
  } catch (const portrait::DataError& e) {
    return e.what();
  }
  return "";
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

TEST(Loader, LazyReadsGiveTheBatchesOfTheInMemoryLoaderForEverySplit) {
  for (const char* split : {"train", "val", "test"}) {
    SCOPED_TRACE(split);
    auto p = lp(7);
    p.split = split;
    p.lazy = false;
    Loader mem(p);
    p.lazy = true;
    Loader lazy(p);
    ASSERT_EQ(lazy.num_users(), mem.num_users());
    EXPECT_EQ(lazy.num_items(), mem.num_items());
    EXPECT_EQ(lazy.num_categories(), mem.num_categories());
    EXPECT_EQ(lazy.seq_len(), mem.seq_len());
    EXPECT_EQ(lazy.text_len(), mem.text_len());
    auto order = mem.epoch_order(5);
    // Batches spanning several shards, in shuffled order, plus repeats and a single user.
    for (size_t a = 0; a < order.size(); a += 7) {
      std::vector<int64_t> users(order.begin() + long(a), order.begin() + long(std::min(a + 7, order.size())));
      if (a == 0 && users.size() > 2) users.push_back(users[1]);
      Batch x = mem.make_batch(users), y = lazy.make_batch(users);
      ASSERT_EQ(x.length, y.length);
      ASSERT_EQ(x.item, y.item);
      ASSERT_EQ(x.category, y.category);
      ASSERT_EQ(x.event, y.event);
      ASSERT_EQ(x.gap, y.gap);
      ASSERT_EQ(x.price, y.price);
      ASSERT_EQ(x.input_mask, y.input_mask);
      ASSERT_EQ(x.text, y.text);
      ASSERT_EQ(x.text_mask, y.text_mask);
      ASSERT_EQ(x.target_item, y.target_item);
      ASSERT_EQ(x.target_category, y.target_category);
      ASSERT_EQ(x.target_event, y.target_event);
      ASSERT_EQ(x.target_mask, y.target_mask);
      ASSERT_EQ(x.purchase, y.purchase);
    }
    for (int64_t g = 0; g < mem.num_users(); ++g) ASSERT_EQ(lazy.user_id(g), mem.user_id(g));
    EXPECT_THROW(lazy.make_batch({lazy.num_users()}), std::out_of_range);
  }
}

TEST(Loader, ShardSplitReaderReturnsRequestedRowsInRequestOrder) {
  auto f = list_shards(shard_dir()).at(0);
  auto full = read_shard(f, {"train"});
  const SplitArrays& a = full.splits[0];
  ShardSplitReader r(f, "train");
  ASSERT_EQ(r.rows(), int64_t(a.size()));
  ASSERT_GE(r.rows(), 3);
  std::vector<int64_t> rows = {r.rows() - 1, 0, r.rows() - 1, 1};
  SplitArrays got = r.read_rows(rows);
  ASSERT_EQ(got.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t src = size_t(rows[i]);
    EXPECT_EQ(got.user[i], a.user[src]);
    std::vector<int32_t> want(a.input_item.begin() + a.input_offsets[src],
                              a.input_item.begin() + a.input_offsets[src + 1]);
    std::vector<int32_t> have(got.input_item.begin() + got.input_offsets[i],
                              got.input_item.begin() + got.input_offsets[i + 1]);
    EXPECT_EQ(have, want);
    std::vector<int64_t> wts(a.target_ts.begin() + a.target_offsets[src], a.target_ts.begin() + a.target_offsets[src + 1]);
    std::vector<int64_t> hts(got.target_ts.begin() + got.target_offsets[i], got.target_ts.begin() + got.target_offsets[i + 1]);
    EXPECT_EQ(hts, wts);
  }
  EXPECT_TRUE(r.read_rows({}).user.empty());
}

TEST(Loader, LazyReadsOfChunkedShardsGoThroughHdf5AndMatch) {
  // Shards rewritten by other tools (here h5repack with chunked storage) have no contiguous
  // byte extents: the reader falls back to HDF5 selections and must return the same rows.
  if (std::system("command -v h5repack > /dev/null 2>&1") != 0) GTEST_SKIP() << "no h5repack";
  auto d = fs::temp_directory_path() / ("portrait_chunked_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  for (auto& f : list_shards(shard_dir())) {
    std::string cmd = "h5repack -l CHUNK=7 '" + f.string() + "' '" + (d / f.filename()).string() + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  // Repacking changes the files' bytes: the repacked set is sealed again, as a tool that
  // rewrites shards must do, under the original run id (kept in every shard's attributes).
  {
    const PrepManifest m = verify_prep_dir(shard_dir());
    write_prep_manifest(d, m.prep_run_id, m.vocab_fingerprint, m.tokenizer_sha256, list_shard_files(d));
  }
  auto p = lp(5);
  p.lazy = false;
  Loader mem(p);
  p.shard_dir = d.string();
  p.lazy = true;
  Loader lazy(p);
  ASSERT_EQ(lazy.num_users(), mem.num_users());
  auto order = mem.epoch_order(2);
  for (size_t a = 0; a < order.size(); a += 5) {
    std::vector<int64_t> users(order.begin() + long(a), order.begin() + long(std::min(a + 5, order.size())));
    Batch x = mem.make_batch(users), y = lazy.make_batch(users);
    ASSERT_EQ(x.item, y.item);
    ASSERT_EQ(x.text, y.text);
    ASSERT_EQ(x.target_item, y.target_item);
    ASSERT_EQ(x.purchase, y.purchase);
  }
  fs::remove_all(d);
}

TEST(Loader, RefusesShardsOfAnUnfinishedPrep) {
  const fs::path d = shard_dir().parent_path() / "unfinished";
  prep_into(d, 3, /*max_shards=*/1);  // as a prep killed after its first shard leaves it
  ASSERT_EQ(list_shard_files(d).size(), 1u);
  const std::string e = loader_error(d);
  EXPECT_NE(e.find("no prep_manifest.json"), std::string::npos) << e;
  EXPECT_NE(e.find(d.string()), std::string::npos) << e;
  EXPECT_NE(e.find("empty prep.output_dir"), std::string::npos) << e;
  EXPECT_THROW(list_shards(d), portrait::DataError);  // every reader, not only the loader
  fs::remove_all(d);
}

TEST(Loader, RefusesOldAndNewShardsOfAKilledRerunWithAnotherPartitionCount) {
  const fs::path d = shard_dir().parent_path() / "rerun";
  prep_into(d, 3);
  { Loader ok(LoaderParams{.shard_dir = d.string()}); }
  prep_into(d, 2, /*max_shards=*/1);  // new shard_00000 beside the old shard_00001..2
  ASSERT_EQ(list_shard_files(d).size(), 3u);
  const std::string e = loader_error(d);
  EXPECT_NE(e.find("no prep_manifest.json"), std::string::npos) << e;
  // Finishing the rerun seals exactly its own shards.
  prep_into(d, 2);
  Loader l(LoaderParams{.shard_dir = d.string()});
  EXPECT_EQ(list_shards(d).size(), 2u);
  std::set<std::string> ids;
  for (int64_t g = 0; g < l.num_users(); ++g) EXPECT_TRUE(ids.insert(l.user_id(g)).second) << l.user_id(g);
  fs::remove_all(d);
}

TEST(Loader, RefusesMissingExtraAndForeignShardsNamingTheFile) {
  const fs::path a = shard_dir().parent_path() / "sealed_a", b = shard_dir().parent_path() / "sealed_b";
  const fs::path tmp = shard_dir().parent_path() / "sealed_tmp";
  prep_into(a, 3);
  prep_into(b, 2);
  fs::create_directories(tmp);
  // Missing.
  fs::rename(a / "shard_00002.h5", tmp / "shard_00002.h5");
  std::string e = loader_error(a);
  EXPECT_NE(e.find("shard_00002.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  fs::rename(tmp / "shard_00002.h5", a / "shard_00002.h5");
  // Extra: a shard the manifest does not list.
  fs::copy_file(b / "shard_00001.h5", a / "shard_00007.h5");
  e = loader_error(a);
  EXPECT_NE(e.find("shard_00007.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("not listed"), std::string::npos) << e;
  fs::remove(a / "shard_00007.h5");
  // Foreign: another run's shard under a listed name, even at the recorded size.
  fs::rename(a / "shard_00001.h5", tmp / "shard_00001.h5");
  fs::copy_file(b / "shard_00001.h5", a / "shard_00001.h5");
  {
    const PrepManifest m = verify_prep_dir(b);
    auto j = nlohmann::json::parse(portrait::read_file(a / kManifestFile));
    j["shards"][1]["bytes"] = m.shards[1].bytes;
    portrait::write_file_atomic(a / kManifestFile, j.dump());
  }
  e = loader_error(a);
  EXPECT_NE(e.find("shard_00001.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("belongs to prep run"), std::string::npos) << e;
  EXPECT_THROW(verify_prep_dir(a, /*checksums=*/true), portrait::DataError);
  fs::remove_all(a);
  fs::remove_all(b);
  fs::remove_all(tmp);
}

TEST(Loader, CorruptDatasetShapesAndOffsetsAreDataErrorsBeforeAnyAllocation) {
  // Found by fuzz_shard: dataset sizes came from the file's header unchecked (a 38 KB file made
  // read_shard allocate 12 TB; a 2-D dataset was read into a buffer sized for its first
  // dimension, so HDF5 wrote past its end), and offsets past the arrays they index sized
  // read_rows' buffers before being checked (text_offsets were not checked at all).
  auto d = fs::temp_directory_path() / ("portrait_corrupt_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  const fs::path src = list_shards(shard_dir()).front();
  auto fresh = [&](const char* name) {
    const fs::path p = d / name;
    fs::copy_file(src, p, fs::copy_options::overwrite_existing);
    return p;
  };
  {  // train/user as a 4 x 3 matrix
    const fs::path p = fresh("two_d.h5");
    hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "train/user", H5P_DEFAULT), 0);
    hsize_t dims[2] = {4, 3};
    hid_t sp = H5Screate_simple(2, dims, nullptr);
    hid_t ds = H5Dcreate2(f, "train/user", H5T_NATIVE_INT32, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<int32_t> v(12, 0);
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    EXPECT_THROW(read_shard(p), portrait::DataError);
    EXPECT_THROW(ShardSplitReader(p, "train"), portrait::DataError);
  }
  {  // the last text offset of `train` far past /train/text_tokens
    const fs::path p = fresh("offsets.h5");
    hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t ds = H5Dopen2(f, "train/text_offsets", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(sp, &n, nullptr);
    std::vector<int64_t> off(n);
    ASSERT_GE(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off.data()), 0);
    off.back() = int64_t(1) << 40;
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off.data()), 0);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    EXPECT_THROW(read_shard(p), portrait::DataError);
    ShardSplitReader r(p, "train");
    ASSERT_GT(r.rows(), 0);
    EXPECT_THROW(r.read_rows({r.rows() - 1}), portrait::DataError);
  }
  fs::remove_all(d);
}
