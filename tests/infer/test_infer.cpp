// embed / segment / search / score on a small synthetic shop and a random-init model.
#include <gtest/gtest.h>

#include <c10/util/Half.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "core/calibration.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/loader.h"
#include "fixture.h"
#include "infer/embed.h"
#include "infer/embeddings_file.h"
#include "common/file_size_limit.h"
#include "infer/h5.h"
#include "infer/score.h"
#include "infer/search.h"
#include "infer/segment.h"
#include "models/batch.h"

namespace portrait::infer {
namespace {

using testing::fixture;
using testing::run_python;
namespace fs = std::filesystem;

EmbedParams embed_params(const fs::path& out) {
  EmbedParams p;
  p.model_dir = fixture().model.string();
  p.shards = fixture().shards.string();
  p.output = out.string();
  p.batch_size = 48;
  p.part_users = 64;
  p.progress = false;
  p.config_yaml = "embed: {test: true}\n";
  return p;
}

/// The reference export: one rank, VDS stitch.
const EmbeddingsFile& base() {
  static EmbeddingsFile e = [] {
    auto s = run_embed(embed_params(fixture().root / "base/embeddings.h5"));
    EXPECT_TRUE(s.complete);
    return read_embeddings((fixture().root / "base/embeddings.h5").string(), true, true);
  }();
  return e;
}

TEST(Embed, ExportHasEveryLatestUserOnceInLoaderOrder) {
  const auto& e = base();
  data::LoaderParams lp;
  lp.shard_dir = fixture().shards.string();
  lp.split = "latest";
  lp.shuffle = false;
  data::Loader l(lp);
  ASSERT_EQ(e.n, l.num_users());
  ASSERT_GT(e.n, 128);  // several parts
  EXPECT_EQ(e.dim, 16);
  for (int64_t i = 0; i < e.n; ++i) ASSERT_EQ(e.user_id[size_t(i)], l.user_id(i));
  std::set<std::string> uniq(e.user_id.begin(), e.user_id.end());
  EXPECT_EQ(int64_t(uniq.size()), e.n);
  for (int64_t i = 0; i < e.n; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < e.dim; ++j) ss += double(e.x[size_t(i * e.dim + j)]) * e.x[size_t(i * e.dim + j)];
    ASSERT_NEAR(ss, 1.0, 1e-4) << "row " << i;
  }
  EXPECT_EQ(e.n_items, fixture().cfg.n_items);
  EXPECT_EQ(e.head_targets, fixture().cfg.n_targets);
}

TEST(Embed, RowsEqualTheTrainersForwardPassOfEachUserAlone) {
  // Export and training share one batch adapter (models/batch.h): an exported row is the
  // encoder's output for that user's loader batch as the trainer builds it (fit_batch ->
  // to_user_batch), here one user at a time, so batch neighbours and padding cannot matter.
  const auto& e = base();
  ModelBundle m = load_model(fixture().model);
  m.train(false);
  torch::NoGradGuard ng;
  data::LoaderParams lp;
  lp.shard_dir = fixture().shards.string();
  lp.split = "latest";
  lp.shuffle = false;
  data::Loader l(lp);
  ASSERT_EQ(l.num_users(), e.n);
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{47}, int64_t{48}, e.n / 2, e.n - 1}) {
    auto u = m.encoder->forward(model_input(l.make_batch({i}), m.cfg, torch::kCPU)).user;
    ASSERT_EQ(u.size(1), e.dim);
    for (int64_t j = 0; j < e.dim; ++j)
      ASSERT_NEAR(u[0][j].item<float>(), e.x[size_t(i * e.dim + j)], 2e-5) << "user " << i << " dim " << j;
  }
}

TEST(Embed, LatestExportIncludesAnEventAtTheVeryEndOfTheLog) {
  // Same logs plus one event one hour after the last one, same cut-offs: only that user's
  // latest embedding changes (evaluation splits and vocabularies stay as they were).
  const fs::path root = fixture().root / "latest";
  fs::create_directories(root);
  auto head = data::read_shard(data::list_shards(fixture().shards).at(0), {}, false);
  const int64_t end_ms = head.int_attrs.at("latest_cutoff_ms");  // last event + 1 ms
  std::ifstream in(fixture().root / "syn/events_00000.csv");
  std::string header, first, line, text;
  std::getline(in, header);
  std::getline(in, first);
  text = header + "\n" + first + "\n";
  while (std::getline(in, line)) text += line + "\n";
  // user, timestamp, event_type, item, category, ... : a purchase of the first row's item.
  std::vector<std::string> f;
  for (size_t a = 0, b; a <= first.size(); a = b + 1) {
    b = first.find(',', a);
    if (b == std::string::npos) b = first.size();
    f.push_back(first.substr(a, b - a));
  }
  ASSERT_GE(f.size(), 5u);
  text += f[0] + "," + std::to_string(end_ms / 1000 + 3600) + ",purchase," + f[3] + "," + f[4] + ",9.99,,\n";
  std::ofstream(root / "events.csv") << text;
  data::PrepParams p;
  p.input = {(root / "events.csv").string()};
  p.output_dir = (root / "shards").string();
  p.hash_key = "infer-test-key-0123456789";
  p.partitions = 3;
  p.progress = false;
  p.seq_len = 24;
  p.text_len = 12;
  p.tokenizer.vocab_size = 400;
  p.train_cutoff = std::to_string(head.int_attrs.at("train_cutoff_ms"));
  p.val_cutoff = std::to_string(head.int_attrs.at("val_cutoff_ms"));
  p.test_cutoff = std::to_string(head.int_attrs.at("test_cutoff_ms"));
  data::run_prep(p);
  auto q = embed_params(root / "embeddings.h5");
  q.shards = p.output_dir;
  ASSERT_TRUE(run_embed(q).complete);
  const auto& before = base();
  auto after = read_embeddings((root / "embeddings.h5").string());
  ASSERT_EQ(after.n, before.n);
  const std::string who = data::pseudonymize(p.hash_key, f[0]);
  int64_t changed = 0, found = 0;
  for (int64_t i = 0; i < after.n; ++i) {
    ASSERT_EQ(after.user_id[size_t(i)], before.user_id[size_t(i)]);
    double diff = 0;
    for (int64_t j = 0; j < after.dim; ++j)
      diff = std::max(diff, double(std::abs(after.x[size_t(i * after.dim + j)] - before.x[size_t(i * after.dim + j)])));
    if (after.user_id[size_t(i)] == who) {
      ++found;
      EXPECT_GT(diff, 1e-4) << "the appended last event did not reach the user's latest embedding";
    } else if (diff > 1e-5) {
      ++changed;
    }
  }
  EXPECT_EQ(found, 1);
  EXPECT_EQ(changed, 0);
}

TEST(Embed, H5pyReadsTheExportFromAnotherDirectory) {
  base();
  fs::path out = fixture().root / "base/embeddings.h5";
  fs::path cwd = fixture().root / "elsewhere";
  fs::create_directories(cwd);
  auto [rc, text] = run_python(R"PY(
import h5py, numpy as np, sys
f = h5py.File(')PY" + out.string() + R"PY(', 'r')
e = f['embedding'][:]
ids = f['user_id'].asstr()[:]
assert e.dtype == np.float32 and e.ndim == 2 and e.shape[1] == 16, (e.dtype, e.shape)
assert len(ids) == e.shape[0] and len(set(ids)) == len(ids)
assert len(set(map(len, ids))) == 1 and len(ids[0]) >= 16, ids[:3]
assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
a = f.attrs
assert a['format'] == 'portrait-embeddings' and int(a['format_version']) == 1
assert len(a['checkpoint_sha256']) == 64 and int(a['dim']) == 16 and int(a['normalized']) == 1
assert int(a['repeat_dim']) == 4
assert a['created_utc'].endswith('Z') and 'embed' in a['config_yaml'] and len(a['tokenizer_sha256']) == 64
assert len(a['vocab_fingerprint']) == 64 and len(a['prep_run_id']) == 32
assert f['embedding'].is_virtual
assert f['item_embedding'].shape[1] == 16 and len(f['item_id']) == f['item_embedding'].shape[0]
assert f['head/W1'].shape[1] == 16 and f['head/W2'].shape[1] == f['head/W1'].shape[0]
assert f['head'].attrs['activation'] in ('relu', 'gelu')
print('OK', e.shape)
)PY",
                               cwd);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("OK"), std::string::npos) << text;
}

TEST(Embed, TwoRanksStitchToTheSameRowsAsOneRank) {
  const auto& ref = base();
  for (std::string stitch : {"vds", "consolidate"}) {
    fs::path out = fixture().root / ("two_" + stitch) / "embeddings.h5";
    int barriers = 0;
    for (int rank : {1, 0}) {  // sequential stand-in for two processes
      auto p = embed_params(out);
      p.rank = rank;
      p.world = 2;
      p.stitch = stitch;
      p.barrier = [&] { ++barriers; };
      auto s = run_embed(p);
      EXPECT_EQ(s.stitched, rank == 0);
      EXPECT_GT(s.parts_written, 0);
    }
    EXPECT_EQ(barriers, 2);
    auto e = read_embeddings(out.string(), true, true);
    ASSERT_EQ(e.n, ref.n);
    EXPECT_EQ(e.user_id, ref.user_id);
    EXPECT_EQ(e.x, ref.x) << stitch;  // bit-identical rows
    EXPECT_EQ(e.items, ref.items);
    EXPECT_EQ(fs::exists(out.string() + ".parts"), stitch == "vds");
  }
}

TEST(Embed, KilledRunResumesWithoutDuplicatesOrGaps) {
  const auto& ref = base();
  fs::path out = fixture().root / "resume/embeddings.h5";
  auto p = embed_params(out);
  p.max_parts = 2;  // "killed" after two parts
  auto s1 = run_embed(p);
  EXPECT_FALSE(s1.complete);
  EXPECT_EQ(s1.parts_written, 2);
  EXPECT_FALSE(fs::exists(out));
  // A stray temporary from the kill must not matter either.
  std::ofstream(out.string() + ".parts/part-00002.h5.tmp.999") << "garbage";
  p.max_parts = -1;
  auto s2 = run_embed(p);
  EXPECT_TRUE(s2.complete);
  EXPECT_EQ(s2.parts_skipped, 2);
  EXPECT_EQ(s2.parts_written, s2.parts - 2);
  EXPECT_EQ(s2.users_embedded, ref.n - 2 * 64);
  auto e = read_embeddings(out.string());
  EXPECT_EQ(e.user_id, ref.user_id);
  EXPECT_EQ(e.x, ref.x);
  // A run with another part size does not reuse stale parts.
  p.part_users = 100;
  auto s3 = run_embed(p);
  EXPECT_EQ(s3.parts_skipped, 0);
  auto e3 = read_embeddings(out.string());
  EXPECT_EQ(e3.user_id, ref.user_id);
  ASSERT_EQ(e3.x.size(), ref.x.size());  // other batch boundaries: equal up to rounding
  for (size_t i = 0; i < e3.x.size(); ++i) ASSERT_NEAR(e3.x[i], ref.x[i], 1e-5);
}

TEST(Float16, ConversionMatchesC10HalfOnEveryKindOfValue) {
  // Round to nearest even everywhere: normals, the values just below a power of two (whose
  // rounding carries into the exponent), halfway ties, subnormals, overflow, inf and NaN.
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -2.5f, 0.062497064f, 0.0624999f, 0.99999f, 65504.0f,
                          65519.0f, 65520.0f, 1e6f, -1e6f, 6.1e-5f, 3.0e-6f, 5.96e-8f, 2.9e-8f, 1e-10f,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048};  // ties: to even (down, up)
  for (int e = -24; e <= 15; ++e) {
    const float p = std::ldexp(1.0f, e);
    v.push_back(std::nextafter(p, 0.0f));
    v.push_back(-std::nextafter(p, 0.0f));
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (int i = 0; i < 100000; ++i) v.push_back(u(rng) * std::ldexp(1.0f, int(rng() % 40) - 25));
  for (float f : v) {
    const uint16_t want = c10::Half(f).x;
    ASSERT_EQ(h5::float_to_half(f), want) << "f = " << f;
  }
  EXPECT_EQ(h5::float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x7c00u, 0x7c00u);
  EXPECT_NE(h5::float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x3ffu, 0u);
}

TEST(Float16, DatasetsKeepValuesThatRoundUpToAPowerOfTwo) {
  // libhdf5's own float -> half conversion wrote 0.0624971f as 0.03125; both writers must
  // store 0.0625 (read back through HDF5's exact half -> float widening).
  const fs::path path = fixture().root / "f16_carry.h5";
  const std::vector<float> x = {0.062497064f, 0.49999997f, 0.99999994f, -0.2499999f, 0.3f, 1.0f};
  const std::vector<float> want = {0.0625f, 0.5f, 1.0f, -0.25f, float(c10::Half(0.3f)), 1.0f};
  {
    h5::H f = h5::create_file(path);
    h5::FloatStorage st{true, 0, 0};
    h5::write_float(f, "whole", x.data(), {hsize_t(x.size())}, st);
    h5::H ds = h5::create_float(f, "rows", {2, 3}, st);
    h5::write_rows(ds, H5T_NATIVE_FLOAT, 0, 2, x.data());
  }
  h5::H f = h5::open_file(path);
  EXPECT_EQ(h5::read_float(f, "whole"), want);
  EXPECT_EQ(h5::read_float(f, "rows"), want);
}

TEST(Embed, Float16ExportIsHalfSizedAndClose) {
  const auto& ref = base();
  fs::path out = fixture().root / "f16/embeddings.h5";
  auto p = embed_params(out);
  p.dtype = "float16";
  p.stitch = "consolidate";
  p.gzip = 4;
  run_embed(p);
  auto e = read_embeddings(out.string());
  ASSERT_EQ(e.x.size(), ref.x.size());
  for (size_t i = 0; i < e.x.size(); ++i) ASSERT_NEAR(e.x[i], ref.x[i], 1e-3);
  auto [rc, text] = run_python("import h5py, numpy as np\nf = h5py.File('" + out.string() +
                                   "')\nassert f['embedding'].dtype == np.float16\nprint('OK')\n",
                               fixture().root);
  EXPECT_EQ(rc, 0) << text;
}

// ---- segment -------------------------------------------------------------------------------

/// A fake export with planted, well separated clusters (for id-stability tests).
fs::path planted_export(const std::string& name, int k, int64_t per, uint64_t seed, bool shuffle_rows) {
  const int d = 8;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.f, 0.05f);
  std::vector<float> x;
  std::vector<std::string> ids;
  std::vector<int64_t> order(size_t(k) * size_t(per));
  for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
  if (shuffle_rows) std::shuffle(order.begin(), order.end(), rng);
  for (int64_t r : order) {
    int c = int(r / per);
    for (int j = 0; j < d; ++j) x.push_back((j == c % d ? (c < d ? 1.f : -1.f) : 0.f) + noise(rng));
    ids.push_back(fmt::format("user{:06d}", r));
  }
  fs::path out = fixture().root / "planted" / (name + ".h5");
  fs::create_directories(out.parent_path());
  h5::H f = h5::create_file(out);
  h5::write_float(f, "embedding", x.data(), {hsize_t(ids.size()), hsize_t(d)});
  h5::write_fixed_strings(f, "user_id", ids);
  h5::set_attr(f, "format", kEmbeddingsFormat);
  h5::set_attr(f, "format_version", kEmbeddingsFormatVersion);
  h5::set_attr(f, "complete", int64_t{1});
  for (auto* a : {"checkpoint_sha256", "split", "shards", "dtype"}) h5::set_attr(f, a, "x");
  return out;
}

std::vector<int32_t> segments_of(const fs::path& f) {
  h5::H h = h5::open_file(f);
  return h5::read_i32(h, "segment");
}

TEST(Segment, HungarianFindsTheMinimumCostAssignment) {
  // 3x4: best = rows -> cols 2, 0, 1 with cost 1 + 2 + 1 = 4.
  std::vector<double> c = {9, 9, 1, 9, 2, 8, 9, 9, 9, 1, 3, 9};
  EXPECT_EQ(hungarian_min(c, 3, 4), (std::vector<int>{2, 0, 1}));
}

TEST(Segment, IdsAreStableAcrossSeedsAndRefreshes) {
  const int K = 6;
  auto emb = planted_export("a", K, 50, 1, true);
  SegmentParams p;
  p.embeddings = emb.string();
  p.k = K;
  p.output = (fixture().root / "planted/seg1.h5").string();
  p.seed = 1;
  auto s1 = run_segment(p);
  EXPECT_FALSE(s1.matched_previous);
  for (auto n : s1.sizes) EXPECT_EQ(n, 50);
  auto a = segments_of(p.output);
  // Different seed, no previous run: first-appearance numbering gives the same ids.
  p.seed = 99;
  p.output = (fixture().root / "planted/seg2.h5").string();
  run_segment(p);
  EXPECT_EQ(segments_of(p.output), a);
  // Different seed, matched to the previous run (Hungarian and greedy).
  for (std::string m : {"hungarian", "greedy"}) {
    p.seed = 12345;
    p.previous = (fixture().root / "planted/seg1.h5").string();
    p.matching = m;
    p.output = (fixture().root / ("planted/seg3_" + m + ".h5")).string();
    auto s3 = run_segment(p);
    EXPECT_TRUE(s3.matched_previous);
    EXPECT_GT(s3.match_similarity, 0.9);
    EXPECT_EQ(segments_of(p.output), a) << m;
  }
  // Refresh: new noise and a new row order (first appearance would renumber); matching
  // against the previous centroids keeps every user's id.
  auto emb2 = planted_export("b", K, 50, 2, true);
  p.embeddings = emb2.string();
  p.matching = "hungarian";
  p.output = (fixture().root / "planted/seg4.h5").string();
  run_segment(p);
  h5::H f1 = h5::open_file(fixture().root / "planted/seg1.h5"), f4 = h5::open_file(p.output);
  auto id1 = h5::read_strings(f1, "user_id"), id4 = h5::read_strings(f4, "user_id");
  auto s4 = h5::read_i32(f4, "segment");
  std::map<std::string, int32_t> before;
  for (size_t i = 0; i < id1.size(); ++i) before[id1[i]] = a[i];
  for (size_t i = 0; i < id4.size(); ++i) ASSERT_EQ(s4[i], before[id4[i]]) << id4[i];
}

TEST(Segment, RealExportWritesSegmentsFile) {
  base();
  SegmentParams p;
  p.embeddings = (fixture().root / "base/embeddings.h5").string();
  p.output = (fixture().root / "base/segments.h5").string();
  p.k = 4;
  auto s = run_segment(p);
  EXPECT_EQ(s.users, base().n);
  int64_t total = 0;
  for (auto n : s.sizes) total += n;
  EXPECT_EQ(total, base().n);
  auto [rc, text] = run_python("import h5py\nf = h5py.File('" + p.output +
                                   "')\nassert f['segment'].shape[0] == f['user_id'].shape[0]\n"
                                   "assert f['centroids'].shape == (4, 16)\nprint(f.attrs['format'])\n",
                               fixture().root);
  EXPECT_EQ(rc, 0) << text;
}

// ---- search --------------------------------------------------------------------------------

TEST(Search, LookalikesExcludeTheSeeds) {
  const auto& e = base();
  fs::path seeds = fixture().root / "seeds.txt";
  {
    std::ofstream o(seeds);
    o << "# seed audience\n";
    for (int i = 0; i < 10; ++i) o << e.user_id[size_t(i * 7)] << "\n";
    o << "not-a-user\n";
  }
  SearchParams p;
  p.embeddings = (fixture().root / "base/embeddings.h5").string();
  p.output_dir = (fixture().root / "search").string();
  p.mode = "lookalike";
  p.seeds = seeds.string();
  p.top_k = 50;
  auto s = run_search(p);
  EXPECT_EQ(s.seeds_found, 10);
  EXPECT_EQ(s.seeds_missing, 1);
  EXPECT_EQ(s.lookalikes, 50);
  auto seed_set = read_id_file(seeds.string());
  h5::H f = h5::open_file(fs::path(p.output_dir) / "search.h5");
  auto got = h5::read_strings(f, "lookalike/user_id");
  auto score = h5::read_float(f, "lookalike/score");
  ASSERT_EQ(got.size(), 50u);
  for (auto& id : got) EXPECT_EQ(std::count(seed_set.begin(), seed_set.end(), id), 0) << id;
  EXPECT_TRUE(std::is_sorted(score.rbegin(), score.rend()));
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size());
  EXPECT_TRUE(fs::exists(fs::path(p.output_dir) / "lookalikes.csv"));
  EXPECT_TRUE(fs::exists(fs::path(p.output_dir) / "lookalikes.jsonl"));
}

// Reads recommend/ of a search output: every item is a real one (never padding or OOV) and
// none is in its user's `excluded` list. Returns the (user, item) pairs checked against a list.
int64_t expect_recommendations_avoid(const fs::path& dir,
                                     const std::unordered_map<std::string, std::vector<int64_t>>& excluded,
                                     int64_t n_users) {
  h5::H f = h5::open_file(dir / "search.h5");
  std::vector<hsize_t> dims;
  auto items = h5::read_i64(f, "recommend/item", &dims);
  auto users = h5::read_strings(f, "recommend/user_id");
  EXPECT_EQ(dims[0], hsize_t(n_users));
  int64_t checked = 0;
  for (size_t u = 0; u < users.size(); ++u) {
    auto it = excluded.find(users[u]);
    for (hsize_t j = 0; j < dims[1]; ++j) {
      const int64_t item = items[u * dims[1] + j];
      if (item <= 1) {
        ADD_FAILURE() << users[u] << " got padding/OOV item " << item;
        return checked;
      }
      if (it == excluded.end()) continue;
      if (std::binary_search(it->second.begin(), it->second.end(), item)) {
        ADD_FAILURE() << users[u] << " got excluded item " << item;
        return checked;
      }
      ++checked;
    }
  }
  return checked;
}

TEST(Search, RecommendationsExcludePurchasedItems) {
  const auto& e = base();
  SearchParams p;
  p.embeddings = (fixture().root / "base/embeddings.h5").string();
  p.output_dir = (fixture().root / "search_rec").string();
  p.mode = "recommend";
  p.top_k = 40;
  auto s = run_search(p);
  EXPECT_EQ(s.recommend_users, e.n);
  EXPECT_GT(s.excluded_purchases, 0);
  auto bought = purchased_items(fixture().shards.string(), "latest");
  EXPECT_GT(expect_recommendations_avoid(p.output_dir, bought, e.n), 0);
  // Without the exclusion, some purchased item does come back (the test is not vacuous).
  auto users = h5::read_strings(h5::open_file(fs::path(p.output_dir) / "search.h5"), "recommend/user_id");
  p.exclude_purchased = false;
  p.top_k = 1024 < e.n_items ? 1024 : int(e.n_items);
  p.output_dir = (fixture().root / "search_rec_all").string();
  run_search(p);
  std::vector<hsize_t> dims;
  h5::H g = h5::open_file(fs::path(p.output_dir) / "search.h5");
  auto all = h5::read_i64(g, "recommend/item", &dims);
  bool hit = false;
  for (size_t u = 0; u < users.size() && !hit; ++u) {
    auto it = bought.find(users[u]);
    if (it == bought.end()) continue;
    for (hsize_t j = 0; j < dims[1] && !hit; ++j)
      hit = std::binary_search(it->second.begin(), it->second.end(), all[u * dims[1] + j]);
  }
  EXPECT_TRUE(hit);
}

// Discovery mode: nothing the user has interacted with comes back, and there are more such
// items than purchases (the stricter exclusion is not vacuous).
TEST(Search, ExcludeSeenSkipsEveryItemOfTheHistory) {
  const auto& e = base();
  SearchParams p;
  p.embeddings = (fixture().root / "base/embeddings.h5").string();
  p.output_dir = (fixture().root / "search_seen").string();
  p.mode = "recommend";
  p.top_k = 40;
  p.exclude_seen = true;
  auto s = run_search(p);
  auto seen = seen_items(fixture().shards.string(), "latest");
  auto bought = purchased_items(fixture().shards.string(), "latest");
  int64_t n_seen = 0, n_bought = 0;
  for (auto& [u, v] : seen) n_seen += int64_t(v.size());
  for (auto& [u, v] : bought) n_bought += int64_t(v.size());
  EXPECT_GT(n_seen, n_bought);
  EXPECT_GT(s.excluded_purchases, 0);
  EXPECT_GT(expect_recommendations_avoid(p.output_dir, seen, e.n), 0);
}

// ---- score ---------------------------------------------------------------------------------

TEST(Score, KernelMatchesThePurchaseHeadModule) {
  const auto& e = base();
  ScoreParams p;
  p.embeddings = (fixture().root / "base/embeddings.h5").string();
  p.output_dir = (fixture().root / "score").string();
  p.top_m = 10;
  auto s = run_score(p);
  EXPECT_EQ(s.users, e.n);
  EXPECT_EQ(s.targets, fixture().cfg.n_targets);
  h5::H f = h5::open_file(fs::path(p.output_dir) / "scores.h5");
  std::vector<hsize_t> dims;
  auto prob = h5::read_float(f, "probability", &dims);
  auto model = load_model(fixture().model);
  model.train(false);
  torch::NoGradGuard ng;
  auto x = torch::from_blob(const_cast<float*>(e.x.data()), {e.n, e.dim}, torch::kFloat).clone();
  auto ref = torch::sigmoid(model.head->forward(x)).contiguous();
  auto got = torch::from_blob(prob.data(), {e.n, int64_t(dims[1])}, torch::kFloat);
  EXPECT_TRUE(torch::allclose(got, ref, 1e-5, 1e-6)) << (got - ref).abs().max().item<float>();
  // Top audience of head 0 = the 10 highest probabilities.
  auto top = h5::read_i64(f, "top/row");
  auto col = ref.select(1, 0);
  auto best = std::get<1>(col.topk(10));
  for (int j = 0; j < 10; ++j)
    EXPECT_NEAR(col[top[size_t(j)]].item<float>(), col[best[j].item<int64_t>()].item<float>(), 1e-6);
  EXPECT_TRUE(fs::exists(fs::path(p.output_dir) / "top_audiences.csv"));
}

TEST(Score, TheModelsHeadCalibrationTravelsThroughEmbedAndIsAppliedUnlessSwitchedOff) {
  // The fixture model with a calibration as `portrait train` stores it: temperature T = 2 for
  // every head (pooled), so the calibrated probability is sigmoid(logit(raw) / 2).
  auto model = load_model(fixture().model);
  calib::HeadCalibration cal;
  cal.method = "temperature";
  cal.scope = "pooled";
  cal.fitted_on = "val";
  cal.pooled.method = "temperature";
  cal.pooled.temperature = 2.0;
  cal.heads.resize(size_t(model.cfg.n_targets));
  model.meta["calibration"] = cal.to_json();
  const fs::path root = fixture().root / "calibrated";
  save_model(model, root / "model");
  EmbedParams ep = embed_params(root / "embeddings.h5");
  ep.model_dir = (root / "model").string();
  ASSERT_TRUE(run_embed(ep).complete);
  const EmbeddingsFile e = read_embeddings((root / "embeddings.h5").string(), false, true);
  ASSERT_FALSE(e.head_calibration.empty());
  auto scored = [&](bool on, const std::string& out) {
    ScoreParams p;
    p.embeddings = (root / "embeddings.h5").string();
    p.output_dir = (root / out).string();
    p.top_m = 5;
    p.calibrate = on;
    const ScoreSummary s = run_score(p);
    h5::H f = h5::open_file(fs::path(p.output_dir) / "scores.h5");
    return std::tuple{s, h5::read_float(f, "probability"), h5::read_float(f, "top/probability"),
                      h5::read_i64(f, "top/row"), h5::attr_str(f, "calibration")};
  };
  auto [s_raw, raw, top_raw, row_raw, attr_raw] = scored(false, "raw");
  auto [s_cal, calp, top_cal, row_cal, attr_cal] = scored(true, "cal");
  EXPECT_EQ(attr_raw, "none");
  EXPECT_EQ(attr_cal, "temperature fitted on val");
  ASSERT_EQ(raw.size(), calp.size());
  double moved = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const double l = std::log(double(raw[i]) / (1 - double(raw[i])));
    EXPECT_NEAR(calp[i], 1 / (1 + std::exp(-l / 2)), 2e-6) << i;
    moved = std::max(moved, std::fabs(double(calp[i]) - double(raw[i])));
  }
  EXPECT_GT(moved, 1e-3);  // the map did something
  // The audiences are the same users in the same order, with calibrated probabilities.
  EXPECT_EQ(row_raw, row_cal);
  for (size_t o = 0; o < top_raw.size(); ++o)
    if (row_raw[o] >= 0) EXPECT_NEAR(top_cal[o], float(cal.apply(0, top_raw[o])), 2e-6);
  EXPECT_NEAR(s_cal.mean_probability.at(0), [&] {
    double m = 0;
    const size_t C = size_t(s_cal.targets);
    for (size_t i = 0; i < calp.size(); i += C) m += calp[i];
    return m / double(calp.size() / C);
  }(), 1e-6);
}

// ---- artefact integrity --------------------------------------------------------------------

template <typename F>
std::string data_error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(Score, AForeignOrNonFiniteHeadCalibrationIsRefusedAndNothingIsWritten) {
  auto model = load_model(fixture().model);
  const fs::path root = fixture().root / "bad_calibration";
  auto try_score = [&](const nlohmann::json& cal, const std::string& name) {
    model.meta["calibration"] = cal;
    save_model(model, root / name / "model");
    EmbedParams ep = embed_params(root / name / "embeddings.h5");
    ep.model_dir = (root / name / "model").string();
    EXPECT_TRUE(run_embed(ep).complete);
    ScoreParams p;
    p.embeddings = (root / name / "embeddings.h5").string();
    p.output_dir = (root / name / "score").string();
    p.top_m = 3;
    const std::string err = data_error_of([&] { run_score(p); });
    EXPECT_FALSE(fs::exists(fs::path(p.output_dir) / "scores.h5")) << name;
    return err;
  };
  calib::HeadCalibration cal;
  cal.method = "platt";
  cal.scope = "pooled";
  cal.pooled.method = "platt";
  cal.heads.resize(size_t(model.cfg.n_targets));
  nlohmann::json foreign = cal.to_json();
  foreign["format"] = "someone-elses-calibration";
  EXPECT_NE(try_score(foreign, "foreign").find("/head/calibration"), std::string::npos);
  nlohmann::json wrong_heads = cal.to_json();
  wrong_heads["heads"].push_back(nullptr);
  EXPECT_NE(try_score(wrong_heads, "heads").find("heads"), std::string::npos);
  cal.pooled.a = std::numeric_limits<double>::quiet_NaN();  // JSON writes NaN as null: a
  nlohmann::json nan_map = cal.to_json();                   // malformed record, refused too
  EXPECT_FALSE(try_score(nan_map, "nan").empty());
}

TEST(Embed, AnExportCopiedWithoutItsPartsFolderIsRefusedNamingTheMissingPart) {
  base();
  const fs::path moved = fixture().root / "moved";
  fs::create_directories(moved);
  fs::copy_file(fixture().root / "base/embeddings.h5", moved / "embeddings.h5", fs::copy_options::overwrite_existing);
  const std::string e = data_error_of([&] { read_embeddings((moved / "embeddings.h5").string()); });
  EXPECT_NE(e.find("embeddings.h5.parts/part-00000.h5"), std::string::npos) << e;
  EXPECT_NE(e.find(".parts folder"), std::string::npos) << e;
  SegmentParams sp;
  sp.embeddings = (moved / "embeddings.h5").string();
  sp.output = (moved / "segments.h5").string();
  sp.k = 2;
  EXPECT_THROW(run_segment(sp), DataError);
  EXPECT_FALSE(fs::exists(sp.output));
  // With its parts beside it, the copy reads the same rows.
  fs::copy(fixture().root / "base/embeddings.h5.parts", moved / "embeddings.h5.parts", fs::copy_options::recursive);
  EXPECT_EQ(read_embeddings((moved / "embeddings.h5").string()).x, base().x);
}

TEST(Embed, RefusesAnOutputThatIsOneOfItsInputs) {
  const fs::path shard = data::list_shards(fixture().shards).at(0);
  const std::string before = sha256_file(shard);
  auto p = embed_params(shard);
  EXPECT_THROW(run_embed(p), ConfigError);
  EXPECT_EQ(sha256_file(shard), before);
  p = embed_params(fixture().model / "model.pt");
  EXPECT_THROW(run_embed(p), ConfigError);
  EXPECT_NO_THROW(load_model(fixture().model));
}

TEST(Segment, RefusesAnOutputThatIsItsEmbeddingsFile) {
  base();
  const std::string emb = (fixture().root / "base/embeddings.h5").string();
  const std::string before = sha256_file(emb);
  SegmentParams p;
  p.embeddings = emb;
  p.output = emb;
  p.k = 2;
  EXPECT_THROW(run_segment(p), ConfigError);
  p.output = (fixture().root / "base/embeddings.h5.parts/part-00000.h5").string();  // a VDS source
  EXPECT_THROW(run_segment(p), ConfigError);
  EXPECT_EQ(sha256_file(emb), before);
  EXPECT_EQ(read_embeddings(emb).x, base().x);
}

TEST(Score, NonFiniteEmbeddingsAreRefusedNotScored) {
  // An export in which one user's row is NaN (as a corrupt model used to produce).
  fs::path f = planted_export("nan_row", 2, 8, 3, false);
  {
    h5::H h = h5::open_file(f, true);
    h5::H ds(H5Dopen2(h, "embedding", H5P_DEFAULT), H5Dclose);
    std::vector<float> row(8, std::numeric_limits<float>::quiet_NaN());
    h5::write_rows(ds, H5T_NATIVE_FLOAT, 3, 1, row.data());
  }
  const std::string e = data_error_of([&] { read_embeddings(f.string()); });
  EXPECT_NE(e.find("non-finite"), std::string::npos) << e;
  EXPECT_NE(e.find("user000003"), std::string::npos) << e;
  ScoreParams sp;
  sp.embeddings = f.string();
  sp.output_dir = (fixture().root / "nan_score").string();
  EXPECT_THROW(run_score(sp), DataError);
  EXPECT_FALSE(fs::exists(fs::path(sp.output_dir) / "scores.h5"));
  SearchParams q;
  q.embeddings = f.string();
  q.output_dir = (fixture().root / "nan_search").string();
  q.mode = "recommend";
  EXPECT_THROW(run_search(q), DataError);
}

TEST(Embed, AModelWithNonFiniteWeightsOrAFlippedBitIsRefusedOnLoad) {
  const fs::path dir = fixture().root / "bad_models";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A flipped bit in model.pt: refused by its checksum, naming the file.
  fs::copy(fixture().model, dir / "flipped", fs::copy_options::recursive);
  {
    std::string b = read_file(dir / "flipped/model.pt");
    b[b.size() / 2] ^= 0x10;
    std::ofstream(dir / "flipped/model.pt", std::ios::binary | std::ios::trunc) << b;
  }
  std::string e = data_error_of([&] { load_model(dir / "flipped"); });
  EXPECT_NE(e.find("model.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("sha256"), std::string::npos) << e;
  auto p = embed_params(dir / "flipped_emb.h5");
  p.model_dir = (dir / "flipped").string();
  EXPECT_THROW(run_embed(p), DataError);
  EXPECT_FALSE(fs::exists(p.output));
  // NaN weights (a diverged run saved them): refused too.
  auto m = load_model(fixture().model);
  {
    torch::NoGradGuard ng;
    m.encoder->parameters()[0].view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  }
  save_model(m, dir / "nan");
  e = data_error_of([&] { load_model(dir / "nan"); });
  EXPECT_NE(e.find("NaN"), std::string::npos) << e;
}

TEST(Embed, ShardsOfAnotherPrepAreRefusedByEmbedAndSearch) {
  base();
  data::PrepParams pp;
  pp.input = {(fixture().root / "syn/events_00000.csv").string()};
  pp.output_dir = (fixture().root / "other_shards").string();
  pp.hash_key = "infer-test-key-0123456789";
  pp.partitions = 2;
  pp.progress = false;
  pp.seq_len = 24;
  pp.text_len = 12;
  pp.min_item_count = 5;  // another vocabulary
  pp.tokenizer.vocab_size = 400;
  data::run_prep(pp);
  auto p = embed_params(fixture().root / "other_emb.h5");
  p.shards = pp.output_dir;
  std::string e = data_error_of([&] { run_embed(p); });
  EXPECT_NE(e.find("not the shards the model"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(p.output));
  SearchParams q;
  q.embeddings = (fixture().root / "base/embeddings.h5").string();
  q.output_dir = (fixture().root / "other_search").string();
  q.mode = "recommend";
  q.top_k = 5;
  q.shards = pp.output_dir;
  e = data_error_of([&] { run_search(q); });
  EXPECT_NE(e.find("search.shards"), std::string::npos) << e;
  EXPECT_NE(e.find("another prep"), std::string::npos) << e;
}

// Defect 8 (disk full): embed used to commit an unreadable part under its final name (its
// HDF5 close failed unchecked) and segfault; score wrote top_audiences.csv in place. Now every
// output is checked on close and renamed only when whole, so a rerun with room completes.
TEST(Embed, AFullDiskLeavesNoPartUnderItsFinalNameAndARerunCompletes) {
  const auto& ref = base();
  fs::path out = fixture().root / "disk_full/embeddings.h5";
  auto p = embed_params(out);
  {
    portrait::testing::FileSizeLimit full(3 << 10);  // below one part's size
    EXPECT_THROW(run_embed(p), std::runtime_error);
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(portrait::testing::temp_leftovers(out.parent_path()), std::vector<std::string>{});
  for (const auto& f : fs::directory_iterator(out.string() + ".parts"))
    ADD_FAILURE() << "left after the failure: " << f.path();
  auto s = run_embed(p);
  EXPECT_TRUE(s.complete);
  auto e = read_embeddings(out.string());
  EXPECT_EQ(e.user_id, ref.user_id);
  EXPECT_EQ(e.x, ref.x);
}

TEST(Score, AFullDiskWritesNeitherOutputAndARerunWritesBoth) {
  base();
  ScoreParams sp;
  sp.embeddings = (fixture().root / "base/embeddings.h5").string();
  sp.output_dir = (fixture().root / "disk_full_score").string();
  sp.top_m = 50;
  {
    portrait::testing::FileSizeLimit full(4 << 10);
    EXPECT_THROW(run_score(sp), std::runtime_error);
  }
  EXPECT_FALSE(fs::exists(fs::path(sp.output_dir) / "scores.h5"));
  EXPECT_FALSE(fs::exists(fs::path(sp.output_dir) / "top_audiences.csv"));
  EXPECT_EQ(portrait::testing::temp_leftovers(sp.output_dir), std::vector<std::string>{});
  run_score(sp);
  EXPECT_TRUE(fs::exists(fs::path(sp.output_dir) / "scores.h5"));
  EXPECT_GT(fs::file_size(fs::path(sp.output_dir) / "top_audiences.csv"), 100u);
}

}  // namespace
}  // namespace portrait::infer
