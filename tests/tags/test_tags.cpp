// Tags of a hand-built activity table: RFM scores and names, users without purchases,
// lifecycle, price sensitivity, preferred times, segment names; the HDF5 and CSV files read
// back with h5py and pandas as the same rows; outputs are atomic; the config is strict.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/file_size_limit.h"
#include "core/config/compose.h"
#include "core/config/interpolate.h"
#include "core/error.h"
#include "core/fs.h"
#include "infer/h5.h"
#include "tags/rfm.h"
#include "tags/tags.h"

namespace portrait::tags {
namespace {

namespace stdfs = std::filesystem;
namespace h5 = portrait::infer::h5;

constexpr int64_t kDay = 86400000;
constexpr int64_t kEnd = 1704067200000 + 100 * kDay;  // 2024-01-01 (a Monday) + 100 days

stdfs::path temp_dir(const std::string& tag) {
  auto d = stdfs::temp_directory_path() / ("portrait_tags_" + tag + "_" + std::to_string(::getpid()));
  stdfs::remove_all(d);
  stdfs::create_directories(d);
  return d;
}

UserActivity buyer(const std::string& id, double days_since_purchase, int64_t purchases, double spend) {
  UserActivity u;
  u.user_id = id;
  u.events = purchases * 2;
  u.purchases = purchases;
  u.priced_purchases = purchases;
  u.spend = spend;
  u.last_purchase_ts = kEnd - int64_t(days_since_purchase * double(kDay));
  u.last_ts = u.last_purchase_ts;
  u.first_ts = kEnd - 99 * kDay;
  u.category_events = {{2, u.events}};
  u.weekday[0] = u.events;
  u.hour[9] = u.events;
  u.price_points = {{2, 10, 1}};
  return u;
}

// Five buyers whose R, F, M ranks are chosen to land in five different grid cells, and one
// user who never bought.
ActivityTable hand_table() {
  ActivityTable a;
  a.categories = {"<pad>", "<oov>", "Books", "Games", "Music"};
  a.end_ms = kEnd;
  a.priced = true;
  a.users.push_back(buyer("u:a", 1, 1, 1.0));    // R5 F1 M1 -> New Customers
  a.users.push_back(buyer("u:b", 40, 5, 5.0));   // R1 F5 M5 -> Can't Lose Them
  a.users.push_back(buyer("u:c", 5, 4, 4.0));    // R4 F4 M4 -> Loyal Customers
  a.users.push_back(buyer("u:d", 10, 3, 2.0));   // R3 F3 M2 (FM 3) -> Need Attention
  a.users.push_back(buyer("u:e", 20, 2, 3.0));   // R2 F2 M3 (FM 3) -> At Risk
  UserActivity v;                                 // views only, in two categories
  v.user_id = "u:f";
  v.events = 4;
  v.first_ts = kEnd - 3 * kDay;
  v.last_ts = kEnd - 1 * kDay;
  v.category_events = {{3, 3}, {4, 1}};
  v.weekday[5] = 3;
  v.weekday[6] = 1;
  v.hour[22] = 4;
  v.price_points = {{2, 3, 2}};
  a.users.push_back(v);
  return a;
}

TEST(Tags, RfmScoresAndNamesOnAHandBuiltTable) {
  const Table t = compute_tags(hand_table(), TagParams{});
  ASSERT_EQ(t.rows(), 6u);
  EXPECT_EQ(t.at("r_score").i, (std::vector<int64_t>{5, 1, 4, 3, 2, 1}));
  EXPECT_EQ(t.at("f_score").i, (std::vector<int64_t>{1, 5, 4, 3, 2, 1}));
  EXPECT_EQ(t.at("m_score").i, (std::vector<int64_t>{1, 5, 4, 2, 3, 1}));
  EXPECT_EQ(t.at("rfm_segment").s,
            (std::vector<std::string>{"New Customers", "Can't Lose Them", "Loyal Customers", "Need Attention",
                                      "At Risk", "Lost"}));
  EXPECT_DOUBLE_EQ(t.at("days_since_last_purchase").f[3], 10.0);
  EXPECT_EQ(t.attrs.at("monetary_source"), "estimated_price");
}

TEST(Tags, MonetaryIsThePurchaseCountWhenTheDataHasNoPrices) {
  auto a = hand_table();
  a.priced = false;
  const Table t = compute_tags(a, TagParams{});
  EXPECT_EQ(t.attrs.at("monetary_source"), "purchase_count");
  EXPECT_EQ(t.at("monetary").f, (std::vector<double>{1, 5, 4, 3, 2, 0}));
  EXPECT_EQ(t.at("m_score").i, t.at("f_score").i);
}

TEST(Tags, UserWithoutPurchasesHasDefinedTags) {
  const Table t = compute_tags(hand_table(), TagParams{});
  const size_t f = 5;
  EXPECT_EQ(t.at("purchases").i[f], 0);
  EXPECT_EQ(t.at("monetary").f[f], 0.0);
  EXPECT_EQ(t.at("days_since_last_purchase").f[f], -1.0);
  EXPECT_EQ(t.at("rfm_segment").s[f], "Lost");
  EXPECT_EQ(t.at("lifecycle").s[f], "new");  // first event 3 days before the end
  EXPECT_EQ(t.at("top_category_1").s[f], "Games");
  EXPECT_DOUBLE_EQ(t.at("top_category_1_share").f[f], 0.75);
  EXPECT_EQ(t.at("top_category_2").s[f], "Music");
  EXPECT_EQ(t.at("top_category_3").s[f], "");
  EXPECT_EQ(t.at("top_category_3_share").f[f], 0.0);
  EXPECT_EQ(t.at("preferred_weekday").s[f], "Sat");
  EXPECT_EQ(t.at("preferred_hour").i[f], 22);
  // Every float is finite, every score in 1..5.
  for (const auto& c : t.columns)
    for (double v : c.f) EXPECT_TRUE(std::isfinite(v)) << c.name;
  for (const char* c : {"r_score", "f_score", "m_score"})
    for (auto v : t.at(c).i) EXPECT_TRUE(v >= 1 && v <= 5) << c;
  // A user with no events at all (not in real shards, but defined too).
  ActivityTable a = hand_table();
  UserActivity empty;
  empty.user_id = "u:g";
  a.users.push_back(empty);
  const Table t2 = compute_tags(a, TagParams{});
  EXPECT_EQ(t2.at("lifecycle").s[6], "churned");
  EXPECT_EQ(t2.at("price_sensitivity").s[6], "unknown");
  EXPECT_EQ(t2.at("preferred_weekday_share").f[6], 0.0);
}

TEST(Tags, LifecycleStagesFollowTheConfiguredThresholds) {
  TagParams p;  // new 30, active 30, churn 90 days
  UserActivity u;
  u.events = 1;
  auto stage = [&](int first_days, int last_days) {
    u.first_ts = kEnd - first_days * kDay;
    u.last_ts = kEnd - last_days * kDay;
    return lifecycle_stage(u, kEnd, p);
  };
  EXPECT_EQ(stage(10, 2), "new");
  EXPECT_EQ(stage(200, 5), "active");
  EXPECT_EQ(stage(200, 60), "lapsing");
  EXPECT_EQ(stage(200, 120), "churned");
  p.churn_days = 150;
  EXPECT_EQ(stage(200, 120), "lapsing");
}

TEST(Tags, PriceSensitivityComparesBucketsWithinTheirCategory) {
  ActivityTable a = hand_table();
  // Category 2 prices: the five buyers saw bucket 10, user f bucket 3 (twice): f is the
  // cheapest of the category, the others above the middle.
  const Table t = compute_tags(a, TagParams{});
  EXPECT_EQ(t.at("price_sensitivity").s[5], "high");
  EXPECT_LT(t.at("price_index").f[5], 0.4);
  EXPECT_GT(t.at("price_index").f[0], t.at("price_index").f[5]);
  EXPECT_EQ(t.at("price_sensitivity").s[0], "low");
}

TEST(Tags, WeekdayAndHourUseTheUtcOffset) {
  const int64_t monday_2330 = 1704067200000 + 23 * 3600000 + 30 * 60000;  // 2024-01-01 23:30 UTC
  EXPECT_EQ(weekday_of(monday_2330, 0), 0);
  EXPECT_EQ(hour_of(monday_2330, 0), 23);
  EXPECT_EQ(weekday_of(monday_2330, 8 * 60), 1);  // Tuesday 07:30 in UTC+8
  EXPECT_EQ(hour_of(monday_2330, 8 * 60), 7);
  EXPECT_EQ(weekday_of(0, 0), 3);  // 1970-01-01 was a Thursday
  EXPECT_EQ(weekday_of(-1, 0), 2);
}

TEST(Tags, SegmentNamesComeFromTopLiftCategoriesAndTheModalRfmName) {
  ActivityTable a = hand_table();
  const Table t = compute_tags(a, TagParams{});
  // Segment 0: the five buyers (Books only); segment 1: user f (Games, Music).
  const auto names = segment_names(a, {0, 0, 0, 0, 0, 1}, 3, t.at("rfm_segment").s);
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0].rfind("Books \xC2\xB7 ", 0), 0u) << names[0];
  EXPECT_EQ(names[1], "Games & Music \xC2\xB7 Lost");
  EXPECT_EQ(names[2], "segment 2");
}

// Writes a portrait-segments file for the hand table's users.
void write_segments(const stdfs::path& path, const std::vector<std::string>& ids, const std::vector<int32_t>& seg,
                    int k) {
  h5::H f = h5::create_file(path);
  h5::set_attr(f, "format", "portrait-segments");
  h5::set_attr(f, "format_version", int64_t{1});
  h5::set_attr(f, "k", int64_t(k));
  h5::write_fixed_strings(f, "user_id", ids);
  h5::write_i32(f, "segment", seg.data(), {hsize_t(seg.size())});
  h5::close_file(f, path);
}

std::pair<int, std::string> run_python(const stdfs::path& dir, const std::string& code) {
  const auto script = dir / "check.py", log = dir / "check.log";
  std::ofstream(script) << code;
  const std::string cmd = "'" PORTRAIT_PYTHON "' '" + script.string() + "' > '" + log.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  return {rc, ss.str()};
}

TEST(Tags, Hdf5AndCsvReadBackWithH5pyAndPandasAsTheSameRows) {
  const auto dir = temp_dir("roundtrip");
  ActivityTable a = hand_table();
  a.categories[3] = "Games, \"retro\"";  // a category name that needs CSV quoting
  Table t = compute_tags(a, TagParams{});
  write_segments(dir / "segments.h5", {"u:a", "u:b", "u:c", "u:f"}, {0, 0, 1, 1}, 2);
  attach_segments(t, a, (dir / "segments.h5").string());
  EXPECT_EQ(t.at("segment").i, (std::vector<int64_t>{0, 0, 1, -1, -1, 1}));
  EXPECT_EQ(t.at("segment_name").s[3], "");
  write_table_files(t, dir / "tags.h5", dir / "tags.csv", kTagsFormat, kTagsFormatVersion);
  // pandas as the teams that open these files read them (pinned in scripts/requirements.txt).
  const auto [rc, out] = run_python(dir, R"PY(
import sys, h5py, numpy as np
d = sys.argv[0].rsplit('/', 1)[0]
with h5py.File(d + '/tags.h5', 'r') as f:
    assert f.attrs['format'] == 'portrait-tags', f.attrs['format']
    assert int(f.attrs['format_version']) == 1
    cols = f.attrs['columns'].split(',')
    assert all('doc' in f[c].attrs for c in cols)
    h = {c: (list(f[c].asstr()[:]) if f[c].dtype.kind in 'SO' else f[c][:]) for c in cols}
    n = int(f.attrs['rows'])
import pandas as pd
c = pd.read_csv(d + '/tags.csv', keep_default_na=False, float_precision='round_trip')
reader = 'pandas'
assert list(c.columns) == cols, (list(c.columns), cols)
get = lambda col: c[col]
assert len(c) == n
for col in cols:
    a, b = h[col], get(col)
    assert len(a) == n, col
    if isinstance(a, np.ndarray) and a.dtype.kind == 'f':
        assert a.dtype == np.float64, col
        if reader == 'pandas': assert b.dtype == np.float64, (col, b.dtype)
        assert np.array_equal(a, np.array([float(x) for x in b])), col
    elif isinstance(a, np.ndarray):
        assert a.dtype == np.int64, col
        if reader == 'pandas': assert b.dtype == np.int64, (col, b.dtype)
        assert np.array_equal(a, np.array([int(x) for x in b])), col
    else:
        assert list(a) == [str(x) for x in b], (col, list(a), list(b))
assert h['user_id'][:2] == ['u:a', 'u:b']
assert h['top_category_1'][5] == 'Games, "retro"', h['top_category_1'][5]
print('reader', reader, 'rows', n, 'columns', len(cols))
)PY");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("reader pandas rows 6 columns"), std::string::npos) << out;
  std::printf("%s", out.c_str());
  stdfs::remove_all(dir);
}

TEST(Tags, AFailedWriteLeavesNeitherFileNorTemporaryAndKeepsTheOldFiles) {
  const auto dir = temp_dir("atomic");
  ActivityTable a = hand_table();
  write_table_files(compute_tags(a, TagParams{}), dir / "tags.h5", dir / "tags.csv", kTagsFormat, kTagsFormatVersion);
  const std::string old_csv = read_file(dir / "tags.csv"), old_h5 = read_file(dir / "tags.h5");
  // A larger table that cannot be written under a 64 KiB file size limit.
  for (int i = 0; i < 3000; ++i) {
    auto u = a.users[size_t(i % 5)];
    u.user_id = "u:" + std::string(60, char('a' + i % 26)) + std::to_string(i);
    a.users.push_back(u);
  }
  const Table big = compute_tags(a, TagParams{});
  {
    testing::FileSizeLimit limit(64 * 1024);
    EXPECT_ANY_THROW(write_table_files(big, dir / "tags.h5", dir / "tags.csv", kTagsFormat, kTagsFormatVersion));
  }
  EXPECT_TRUE(testing::temp_leftovers(dir).empty());
  EXPECT_EQ(read_file(dir / "tags.csv"), old_csv);
  EXPECT_EQ(read_file(dir / "tags.h5"), old_h5);
  // A first write that fails leaves no file under the final names.
  const auto fresh = dir / "fresh";
  {
    testing::FileSizeLimit limit(64 * 1024);
    EXPECT_ANY_THROW(write_table_files(big, fresh / "tags.h5", fresh / "tags.csv", kTagsFormat, kTagsFormatVersion));
  }
  EXPECT_FALSE(stdfs::exists(fresh / "tags.h5"));
  EXPECT_FALSE(stdfs::exists(fresh / "tags.csv"));
  EXPECT_TRUE(testing::temp_leftovers(fresh).empty());
  stdfs::remove_all(dir);
}

cfg::Node load(std::vector<std::string> overrides) {
  cfg::ComposeOptions o;
  o.search_path = {PORTRAIT_CONFIG_DIR};
  o.config_name = "tags";
  o.overrides = std::move(overrides);
  return cfg::resolve(cfg::compose(o).config);
}

TEST(TagsConfig, ShippedConfigParsesAndUnknownKeysAreRejected) {
  const auto p = tag_params_from_config(load({"tags.shards=/s", "tags.output_dir=/o"}));
  EXPECT_EQ(p.shards, "/s");
  EXPECT_EQ(p.top_categories, 3);
  EXPECT_EQ(p.new_days, 30);
  EXPECT_EQ(p.churn_days, 90);
  EXPECT_EQ(p.rules.max_depth, 4);
  EXPECT_THROW(tag_params_from_config(load({"tags.shards=/s", "tags.output_dir=/o", "+tags.lifecycle.churn=5"})),
               ConfigError);
  EXPECT_THROW(tag_params_from_config(load({"tags.shards=/s", "tags.output_dir=/o", "tags.rules.max_depth=5"})),
               ConfigError);
  EXPECT_THROW(tag_params_from_config(
                   load({"tags.shards=/s", "tags.output_dir=/o", "tags.lifecycle.active_days=100"})),
               ConfigError);
  EXPECT_THROW(tag_params_from_config(load({"tags.output_dir=/o"})), ConfigError);  // shards: ???
}

}  // namespace
}  // namespace portrait::tags
