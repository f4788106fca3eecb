#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <condition_variable>
#include <mutex>

#include "common/file_size_limit.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/io.h"
#include "data/prep.h"
#include "data/shard.h"
#include "data/synth.h"

using namespace portrait::data;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

const char* kKey = "test-key-0123456789-abcdefghij";
const char* kHeader = "user_id,timestamp,event_type,item_id,category,price,rating,review_text\n";

fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("portrait_prep_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

PrepParams params(const fs::path& dir, const std::string& input) {
  PrepParams p;
  p.input = {input};
  p.output_dir = (dir / "out").string();
  p.hash_key = kKey;
  p.partitions = 2;
  p.progress = false;
  p.train_tokenizer = false;
  p.min_item_count = 1;
  p.data.max_reject_fraction = 1.0;
  return p;
}

std::vector<nlohmann::json> quarantine(const PrepParams& p) {
  std::ifstream in(fs::path(p.output_dir) / "quarantine.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// All events of all users of a split, concatenated: (pseudonym, item name, event type, ts).
struct Row {
  std::string user, item;
  int type;
  int64_t ts;
};
std::vector<Row> inputs(const PrepParams& p, int split) {
  std::vector<Row> out;
  for (auto& f : list_shards(p.output_dir)) {
    auto c = read_shard(f);
    auto& a = c.splits[split];
    for (size_t i = 0; i < a.size(); ++i)
      for (int64_t k = a.input_offsets[i]; k < a.input_offsets[i + 1]; ++k)
        out.push_back({c.user_ids[size_t(a.user[i])], c.items[size_t(a.input_item[size_t(k)])],
                       a.input_event[size_t(k)], a.input_ts[size_t(k)]});
  }
  return out;
}

}  // namespace

TEST(Prep, EveryRejectionReasonIsQuarantinedWithFileLineAndReason) {
  auto d = tmpdir("reasons");
  std::string csv = kHeader;
  csv += "u1,1700000000,view,i1,c1,1.5,,\n";                    // 2 ok
  csv += "u1,1700000100,click,i1,c1,1.5,,\n";                   // 3 ok
  csv += "u1,1700000200,buy,i2,c2,3,,\n";                       // 4 ok (mapped name)
  csv += "u1,1700000300,view,i1,c1,1.5,,bad \xff\n";            // 5 invalid_utf8
  csv += "u1,1700000300,view,i1,c1,1.5,\n";                     // 6 malformed_row
  csv += "u1,1700000300,view,i1,c1,1.5,," + std::string(80, 'x') + "\n";  // 7 field_too_long
  csv += "u1,1700000300,view,,c1,1.5,,\n";                      // 8 missing_field (item)
  csv += "u1,yesterday,view,i1,c1,1.5,,\n";                     // 9 bad_timestamp
  csv += "u1,86400,view,i1,c1,1.5,,\n";                         // 10 timestamp_out_of_range
  csv += "u1,1700000300,wishlist,i1,c1,1.5,,\n";                // 11 unknown_event_type
  csv += "u1,1700000300,view,i1,c1,-2,,\n";                     // 12 bad_price
  csv += "u1,1700000300,review,i1,c1,1.5,9,meh\n";              // 13 bad_rating
  csv += "u1,1700000100,click,i1,c1,1.5,,\n";                   // 14 duplicate of line 3
  for (int k = 0; k < 4; ++k)                                   // 15-18 bot_user (cap 3)
    csv += "bot7,17000000" + std::to_string(10 + k) + ",view,i1,c1,1,,\n";
  csv += "lonely,1700000000,view,i1,c1,1,,\n";                  // 19 too_few_events (min 2)
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.data.max_field_length = 50;
  p.data.max_events_per_user = 3;
  p.data.min_events_per_user = 2;
  auto s = run_prep(p);
  std::map<std::string, int64_t> want = {
      {"invalid_utf8", 1}, {"malformed_row", 1}, {"bad_value", 0}, {"field_too_long", 1}, {"missing_field", 1},
      {"bad_timestamp", 1}, {"timestamp_out_of_range", 1}, {"unknown_event_type", 1},
      {"bad_price", 1}, {"bad_rating", 1}, {"duplicate", 1}, {"bot_user", 4},
      {"too_few_events", 1}};
  EXPECT_EQ(s.rejects, want);
  EXPECT_EQ(s.rows, 18);
  EXPECT_EQ(s.accepted_events, 3);
  EXPECT_EQ(s.users, 1);
  std::map<int64_t, std::string> by_line;
  for (auto& q : quarantine(p)) {
    EXPECT_EQ(q["file"], (d / "ev.csv").string());
    by_line[q["line"].get<int64_t>()] = q["reason"];
  }
  EXPECT_EQ(by_line[5], "invalid_utf8");
  EXPECT_EQ(by_line[6], "malformed_row");
  EXPECT_EQ(by_line[7], "field_too_long");
  EXPECT_EQ(by_line[8], "missing_field");
  EXPECT_EQ(by_line[9], "bad_timestamp");
  EXPECT_EQ(by_line[10], "timestamp_out_of_range");
  EXPECT_EQ(by_line[11], "unknown_event_type");
  EXPECT_EQ(by_line[12], "bad_price");
  EXPECT_EQ(by_line[13], "bad_rating");
  EXPECT_EQ(by_line[14], "duplicate");
  EXPECT_EQ(by_line[15], "bot_user");
  EXPECT_EQ(by_line[18], "bot_user");
  EXPECT_EQ(by_line[19], "too_few_events");
  auto js = nlohmann::json::parse(portrait::read_file(fs::path(p.output_dir) / "prep_summary.json"));
  EXPECT_EQ(js["rejects"]["duplicate"], 1);
  fs::remove_all(d);
}

TEST(Prep, RejectFractionAboveLimitAbortsNamingTheQuarantineFile) {
  auto d = tmpdir("fraction");
  write(d / "ev.csv", std::string(kHeader) + "u1,1700000000,view,i1,c1,1,,\nu1,bad,view,i1,c1,1,,\n");
  auto p = params(d, (d / "ev.csv").string());
  p.data.max_reject_fraction = 0.1;
  try {
    run_prep(p);
    FAIL() << "expected DataError";
  } catch (const portrait::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("quarantine.jsonl"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad_timestamp=1"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(fs::path(p.output_dir) / "quarantine.jsonl"));
  EXPECT_TRUE(list_shard_files(p.output_dir).empty());
  fs::remove_all(d);
}

TEST(Prep, MissingColumnErrorNamesFileColumnAndSuggestion) {
  auto d = tmpdir("column");
  write(d / "ev.csv", "userid,timestamp,event_type,item_id\nu1,1700000000,view,i1\n");
  auto p = params(d, (d / "ev.csv").string());
  try {
    run_prep(p);
    FAIL() << "expected DataError";
  } catch (const portrait::DataError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("ev.csv' line 1"), std::string::npos) << m;
    EXPECT_NE(m.find("'user_id'"), std::string::npos) << m;
    EXPECT_NE(m.find("did you mean 'userid'"), std::string::npos) << m;
  }
  fs::remove_all(d);
}

TEST(Prep, EventsAreOrderedByTimeWithTiesInInputOrderAndDuplicatesRemoved) {
  auto d = tmpdir("order");
  std::string csv = kHeader;
  csv += "u1,1700000500,view,late,c,,,\n";
  csv += "u1,1700000100,view,tieA,c,,,\n";
  csv += "u1,1700000100,click,tieB,c,,,\n";
  csv += "u1,1700000100,view,tieA,c,,,\n";   // exact duplicate: dropped, first kept
  csv += "u1,1700000100,cart,tieC,c,,,\n";
  csv += "u1,1700000000,view,early,c,,,\n";
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.test_cutoff = "1800000000";
  p.val_cutoff = "1800000000";
  p.train_cutoff = "1800000000";
  auto s = run_prep(p);
  EXPECT_EQ(s.rejects["duplicate"], 1);
  auto rows = inputs(p, 0);
  std::vector<std::string> items;
  for (auto& r : rows) items.push_back(r.item);
  EXPECT_EQ(items, (std::vector<std::string>{"early", "tieA", "tieB", "tieC", "late"}));
  fs::remove_all(d);
}

TEST(Prep, TemporalSplitKeepsEveryInputBeforeTheCutoffAndTargetsInTheWindow) {
  auto d = tmpdir("split");
  SynthParams sp;
  sp.output_dir = (d / "syn").string();
  sp.users = 200;
  sp.items = 300;
  sp.days = 60;
  sp.fault_fraction = 0;
  sp.bot_users = 0;
  run_synth(sp);
  auto p = params(d, (d / "syn/events_*.csv").string());
  p.label_window_days = 7;
  auto s = run_prep(p);
  ASSERT_GT(s.users_per_split[0], 0);
  const int64_t win = 7 * 86400000LL;
  EXPECT_EQ(s.cutoff_ms[1] - s.cutoff_ms[0], win);
  int64_t checked = 0, targets = 0;
  for (auto& f : list_shards(p.output_dir)) {
    auto c = read_shard(f);
    for (int sp_i = 0; sp_i < 3; ++sp_i) {
      const int64_t cut = c.int_attrs[std::string(kSplitNames[sp_i]) + "_cutoff_ms"];
      EXPECT_EQ(cut, s.cutoff_ms[sp_i]);
      auto& a = c.splits[sp_i];
      for (int64_t ts : a.input_ts) {
        ASSERT_LT(ts, cut) << "future event leaked into the inputs of " << kSplitNames[sp_i];
        ++checked;
      }
      for (int64_t ts : a.target_ts) {
        ASSERT_GE(ts, cut);
        ASSERT_LT(ts, cut + win);
        ++targets;
      }
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_LE(a.input_offsets[i + 1] - a.input_offsets[i], p.seq_len);
    }
  }
  EXPECT_GT(checked, 1000);
  EXPECT_GT(targets, 10);
  fs::remove_all(d);
}

TEST(Prep, PseudonymsAreStablePerKeyAndDifferAcrossKeys) {
  EXPECT_EQ(pseudonymize("key-one-0123456789", "U1"), pseudonymize("key-one-0123456789", "U1"));
  EXPECT_NE(pseudonymize("key-one-0123456789", "U1"), pseudonymize("key-two-0123456789", "U1"));
  EXPECT_NE(pseudonymize("key-one-0123456789", "U1"), pseudonymize("key-one-0123456789", "U2"));
  EXPECT_EQ(pseudonymize("k", "U1").size(), 32u);
}

TEST(Prep, RawUserIdsAndTheKeyNeverReachAnyOutputFile) {
  auto d = tmpdir("privacy");
  std::string csv = kHeader;
  csv += "alice.smith.77,1700000000,view,i1,c1,1,,\n";
  csv += "alice.smith.77,1700000100,review,i1,c1,1,5,\"great, mail me alice@example.com\"\n";
  csv += "alice.smith.77,1700000200,view,i1,c1,-1,,\n";   // rejected: bad_price
  csv += "alice.smith.77,1700000300,view,i1,c1\n";        // rejected: malformed_row
  csv += "bob.jones.88,1700000000,view,i2,c2,2,,\n";
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.train_tokenizer = true;
  p.tokenizer.vocab_size = 300;
  auto s = run_prep(p);
  EXPECT_EQ(s.users, 2);
  const std::string ps = pseudonymize(kKey, "alice.smith.77");
  bool found_pseudo = false;
  for (auto& e : fs::recursive_directory_iterator(d / "out")) {
    if (!e.is_regular_file()) continue;
    std::string bytes = portrait::read_file(e.path());
    EXPECT_EQ(bytes.find("alice.smith"), std::string::npos) << e.path();
    EXPECT_EQ(bytes.find("bob.jones"), std::string::npos) << e.path();
    EXPECT_EQ(bytes.find(kKey), std::string::npos) << e.path();
    EXPECT_EQ(bytes.find("alice@example.com"), std::string::npos) << e.path();
    found_pseudo |= bytes.find(ps) != std::string::npos;
  }
  EXPECT_TRUE(found_pseudo);
  EXPECT_FALSE(fs::exists(d / "out" / "id_map.csv"));
  // The raw-id map is written only when configured, to its own file.
  p.data.id_map_path = (d / "ids.csv").string();
  run_prep(p);
  std::string m = portrait::read_file(d / "ids.csv");
  EXPECT_NE(m.find("alice.smith.77," + ps), std::string::npos);
  fs::remove_all(d);
}

TEST(Prep, PiiInReviewTextIsMaskedBeforeTokenization) {
  auto d = tmpdir("pii");
  std::string csv = kHeader;
  csv += "u1,1700000000,review,i1,c1,1,5,\"mail a.b@x.com or call 138-1234-5678, card 4111 1111 1111 1111 https://x.io/a\"\n";
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.train_cutoff = p.val_cutoff = p.test_cutoff = "1800000000";  // reviews.txt: inputs only
  auto s = run_prep(p);
  EXPECT_EQ(s.pii_masked, 4);
  std::string r = portrait::read_file(fs::path(p.output_dir) / "reviews.txt");
  EXPECT_EQ(r, "mail <email> or call <phone>, card <num> <url>\n");
  fs::remove_all(d);
}

class SynthThenPrep : public ::testing::TestWithParam<std::string> {};

TEST_P(SynthThenPrep, SummaryCountsMatchInjectedFaultsExactly) {
  auto d = tmpdir("e2e_" + GetParam());
  SynthParams sp;
  sp.output_dir = (d / "syn").string();
  sp.users = 400;
  sp.items = 500;
  sp.days = 60;
  sp.format = GetParam();
  sp.gzip = GetParam() == "jsonl";
  sp.files = 2;
  sp.fault_fraction = 0.03;
  sp.bot_users = 2;
  sp.bot_events = 5100;
  auto ss = run_synth(sp);
  auto p = params(d, (d / "syn/events_*").string());
  p.catalogue = (d / "syn/catalogue.csv").string();
  p.data.max_reject_fraction = 0.5;
  auto s = run_prep(p);
  auto injected = nlohmann::json::parse(portrait::read_file(d / "syn/faults.json"))["injected"];
  for (auto& [k, v] : s.rejects) EXPECT_EQ(v, injected[k].get<int64_t>()) << k;
  EXPECT_EQ(s.rows, ss.rows);
  EXPECT_EQ(s.accepted_events, ss.valid_events);
  EXPECT_EQ(s.users, ss.active_users);
  EXPECT_GT(ss.active_users, 350);
  fs::remove_all(d);
}
INSTANTIATE_TEST_SUITE_P(Formats, SynthThenPrep, ::testing::Values("csv", "tsv", "jsonl"));

TEST(Prep, ShardsOpenWithH5pyFromTheProjectVenv) {
  if (!fs::exists(PORTRAIT_PYTHON)) GTEST_SKIP() << "no python at " << PORTRAIT_PYTHON;
  auto d = tmpdir("h5py");
  std::string csv = kHeader;
  for (int u = 0; u < 5; ++u)
    for (int k = 0; k < 4; ++k)
      csv += "user" + std::to_string(u) + "," + std::to_string(1700000000 + k * 86400) + ",purchase,i" +
             std::to_string(k) + ",c" + std::to_string(k % 2) + ",3,,\n";
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.partitions = 1;
  p.label_window_days = 1;
  p.config_yaml = "prep:\n  seq_len: 256\n";
  run_prep(p);
  std::string script = R"(
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] == "portrait-shard", f.attrs["format"]
assert int(f.attrs["format_version"]) == 3
assert "seq_len" in f.attrs["prep_config"]
t = f["test"]
n = t["user"].shape[0]
assert t["input_offsets"].shape == (n + 1,)
assert t["input_offsets"][-1] == t["input_item"].shape[0]
assert f["vocab/items"].asstr()[0] == "<pad>"
print("OK", n)
)";
  write(d / "check.py", script);
  std::string cmd = std::string(PORTRAIT_PYTHON) + " " + (d / "check.py").string() + " " +
                    (d / "out" / "shard_00000.h5").string() + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe)) out += buf;
  int rc = pclose(pipe);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "OK 5\n");
  fs::remove_all(d);
}

TEST(Prep, VocabularyCountsComeOnlyFromEventsBeforeTheTrainCutoff) {
  // Item frequencies feed the popularity baseline and the logQ correction: counting label,
  // validation or test events would leak the future into training. Items first seen after the
  // train cut-off are out of vocabulary (id 1) everywhere and have no count of their own.
  auto d = tmpdir("leak");
  std::string csv = kHeader;
  csv += "u1,1700000000,view,i_old,c_old,1,,\n";
  csv += "u1,1700000100,purchase,i_old,c_old,1,,\n";
  csv += "u1,1700000200,review,i_old,c_old,1,5,early words\n";
  csv += "u1,1700150000,view,i_new,c_new,1,,\n";          // after the train cut-off
  csv += "u1,1700250000,purchase,i_new,c_new,1,,\n";      // after the val cut-off
  csv += "u2,1700000000,view,i_old,c_old,1,,\n";
  csv += "u2,1700000050,click,i_both,c_old,1,,\n";
  csv += "u2,1700160000,click,i_both,c_old,1,,\n";        // after: not counted
  csv += "u2,1700160001,click,i_both,c_old,1,,\n";        // after: not counted
  csv += "u2,1700160002,review,i_both,c_old,1,4,zebra future text\n";
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.train_cutoff = "1700100000";
  p.val_cutoff = "1700200000";
  p.test_cutoff = "1700300000";
  p.label_window_days = 3;
  auto s = run_prep(p);
  ASSERT_EQ(s.users, 2);
  auto c = read_shard(list_shards(p.output_dir).at(0));
  EXPECT_EQ(c.items, (std::vector<std::string>{"<pad>", "<oov>", "i_old", "i_both"}));
  EXPECT_EQ(c.item_counts, (std::vector<int64_t>{0, 0, 4, 1}));
  EXPECT_EQ(c.categories, (std::vector<std::string>{"<pad>", "<oov>", "c_old"}));
  EXPECT_EQ(c.category_counts, (std::vector<int64_t>{0, 0, 5}));
  EXPECT_EQ(s.items, 4);
  EXPECT_EQ(s.categories, 3);
  // i_new reaches the val inputs and the train targets as OOV.
  int64_t new_in_val = 0, new_in_targets = 0;
  for (auto& f : list_shards(p.output_dir)) {
    auto sc = read_shard(f);
    auto& val = sc.splits[1];
    for (size_t k = 0; k < val.input_ts.size(); ++k)
      if (val.input_ts[k] == 1700150000000LL) {
        EXPECT_EQ(val.input_item[k], kOovToken);
        EXPECT_EQ(val.input_category[k], kOovToken);
        ++new_in_val;
      }
    auto& tr = sc.splits[0];
    for (size_t k = 0; k < tr.target_ts.size(); ++k)
      if (tr.target_ts[k] == 1700250000000LL || tr.target_ts[k] == 1700150000000LL) {
        EXPECT_EQ(tr.target_item[k], kOovToken);
        ++new_in_targets;
      }
  }
  EXPECT_EQ(new_in_val, 1);
  EXPECT_EQ(new_in_targets, 1);  // the purchase inside the train label window, as OOV
  // The tokenizer corpus holds only review text from before the train cut-off.
  EXPECT_EQ(portrait::read_file(fs::path(p.output_dir) / "reviews.txt"), "early words\n");
  auto js = nlohmann::json::parse(portrait::read_file(fs::path(p.output_dir) / "prep_summary.json"));
  EXPECT_EQ(js["vocab"]["counted_before_ms"], 1700100000000LL);
  fs::remove_all(d);
}

namespace {

// In-process stand-in for the torchrun store: named barriers and rank-0 broadcasts.
struct Rendezvous {
  explicit Rendezvous(int w) : world(w) {}
  void barrier(const std::string& n) {
    std::unique_lock<std::mutex> l(m);
    if (++arrived[n] >= world) cv.notify_all();
    else cv.wait(l, [&] { return arrived[n] >= world; });
  }
  std::string broadcast(int rank, const std::string& n, const std::string& v) {
    std::unique_lock<std::mutex> l(m);
    if (rank == 0) {
      values[n] = v;
      cv.notify_all();
      return v;
    }
    cv.wait(l, [&] { return values.count(n) > 0; });
    return values[n];
  }
  int world;
  std::mutex m;
  std::condition_variable cv;
  std::map<std::string, int> arrived;
  std::map<std::string, std::string> values;
};

// Runs prep with `world` ranks as threads; `errors` gets each rank's exception message.
std::vector<PrepSummary> run_ranks_raw(const PrepParams& p, int world, std::vector<std::string>& errors) {
  Rendezvous rv(world);
  std::vector<PrepSummary> sums(static_cast<size_t>(world));
  errors.assign(static_cast<size_t>(world), "");
  std::vector<std::thread> ts;
  for (int r = 0; r < world; ++r)
    ts.emplace_back([&, r] {
      PrepParams q = p;
      q.rank = r;
      q.world = world;
      q.barrier = [&](const std::string& n) { rv.barrier(n); };
      q.broadcast = [&, r](const std::string& n, const std::string& v) { return rv.broadcast(r, n, v); };
      try {
        sums[size_t(r)] = run_prep(q);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  return sums;
}

// Runs prep with `world` ranks as threads; returns rank 0's summary.
PrepSummary run_ranks(PrepParams p, int world) {
  Rendezvous rv(world);
  std::vector<PrepSummary> sums(static_cast<size_t>(world));
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> ts;
  for (int r = 0; r < world; ++r)
    ts.emplace_back([&, r] {
      PrepParams q = p;
      q.rank = r;
      q.world = world;
      q.barrier = [&](const std::string& n) { rv.barrier(n); };
      q.broadcast = [&, r](const std::string& n, const std::string& v) { return rv.broadcast(r, n, v); };
      try {
        sums[size_t(r)] = run_prep(q);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[size_t(r)], "") << "rank " << r;
  for (int r = 1; r < world; ++r) {
    EXPECT_EQ(sums[size_t(r)].rows, sums[0].rows);
    EXPECT_EQ(sums[size_t(r)].users, sums[0].users);
    EXPECT_EQ(sums[size_t(r)].rejects, sums[0].rejects);
    EXPECT_EQ(sums[size_t(r)].shards.size(), sums[0].shards.size());
  }
  return sums[0];
}

}  // namespace

TEST(Prep, RanksSplitTheWorkAndProduceTheBytesOfAOneProcessRun) {
  auto d = tmpdir("ranks");
  SynthParams sp;
  sp.output_dir = (d / "syn").string();
  sp.users = 300;
  sp.items = 400;
  sp.days = 60;
  sp.files = 3;
  sp.fault_fraction = 0.03;
  sp.bot_users = 1;
  sp.bot_events = 5100;
  run_synth(sp);
  auto base = params(d, (d / "syn/events_*").string());
  base.catalogue = (d / "syn/catalogue.csv").string();
  base.partitions = 5;
  base.data.max_reject_fraction = 0.5;
  base.train_tokenizer = true;
  base.tokenizer.vocab_size = 600;
  base.config_yaml = "prep: {partitions: 5}\n";
  std::map<int, fs::path> outs;
  std::map<int, PrepSummary> sums;
  for (int world : {1, 2, 3}) {
    auto p = base;
    p.output_dir = (d / ("out" + std::to_string(world))).string();
    p.data.id_map_path = (d / ("ids" + std::to_string(world) + ".csv")).string();
    sums[world] = world == 1 ? run_prep(p) : run_ranks(p, world);
    outs[world] = p.output_dir;
  }
  ASSERT_EQ(sums[1].shards.size(), 5u);
  EXPECT_GT(sums[1].users, 250);
  EXPECT_FALSE(sums[1].tokenizer_sha256.empty());
  for (int world : {2, 3}) {
    SCOPED_TRACE("world " + std::to_string(world));
    EXPECT_EQ(sums[world].rows, sums[1].rows);
    EXPECT_EQ(sums[world].rejects, sums[1].rejects);
    EXPECT_EQ(sums[world].users_per_split[0], sums[1].users_per_split[0]);
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(outs[1])) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    std::vector<std::string> names_w;
    for (auto& e : fs::directory_iterator(outs[world])) names_w.push_back(e.path().filename().string());
    std::sort(names_w.begin(), names_w.end());
    EXPECT_EQ(names_w, names);  // no work files left behind
    for (auto& n : names) {
      if (n == "prep_summary.json") continue;
      EXPECT_TRUE(portrait::read_file(outs[1] / n) == portrait::read_file(outs[world] / n)) << n;
    }
    auto j1 = nlohmann::json::parse(portrait::read_file(outs[1] / "prep_summary.json"));
    auto jw = nlohmann::json::parse(portrait::read_file(outs[world] / "prep_summary.json"));
    for (auto* k : {"seconds", "read_seconds", "world_size", "shards"}) {
      j1.erase(k);
      jw.erase(k);
    }
    EXPECT_EQ(j1, jw);
    EXPECT_EQ(portrait::read_file(d / "ids1.csv"), portrait::read_file(d / ("ids" + std::to_string(world) + ".csv")));
  }
  // Reruns are byte-identical too (no timestamps inside the HDF5 files).
  auto p = base;
  p.output_dir = (d / "again").string();
  run_prep(p);
  for (auto& f : list_shards(outs[1]))
    EXPECT_TRUE(portrait::read_file(f) == portrait::read_file(fs::path(p.output_dir) / f.filename())) << f;
  fs::remove_all(d);
}

TEST(Prep, EveryRankAbortsWithTheSameErrorWhenTooManyRowsAreRejected) {
  auto d = tmpdir("ranks_abort");
  write(d / "a.csv", std::string(kHeader) + "u1,1700000000,view,i1,c1,1,,\nu1,bad,view,i1,c1,1,,\n");
  write(d / "b.csv", std::string(kHeader) + "u2,1700000000,view,i1,c1,1,,\nu2,1700000001,view,i1,c1,-1,,\n");
  auto p = params(d, (d / "*.csv").string());
  p.data.max_reject_fraction = 0.1;
  std::vector<std::string> errors;
  run_ranks_raw(p, 2, errors);
  ASSERT_NE(errors[0], "");
  EXPECT_EQ(errors[1], errors[0]);
  EXPECT_NE(errors[0].find("bad_price=1 bad_timestamp=1"), std::string::npos) << errors[0];
  auto q = quarantine(p);
  ASSERT_EQ(q.size(), 2u);  // both ranks' rows, in input-file order
  EXPECT_EQ(q[0]["file"], (d / "a.csv").string());
  EXPECT_EQ(q[1]["file"], (d / "b.csv").string());
  EXPECT_TRUE(list_shard_files(p.output_dir).empty());
  for (auto& e : fs::directory_iterator(p.output_dir))
    EXPECT_NE(e.path().filename().string().rfind(".prep.", 0), 0u) << "work dir left: " << e.path();
  fs::remove_all(d);
}

TEST(Prep, LeaveLastOutHoldsOutEachUsersLastTargetEventsAndLatestKeepsEverything) {
  auto d = tmpdir("llo");
  std::string csv = kHeader;
  // a: view, click, purchase, view, purchase at t = 0..4 (x100 s); targets: click/cart/purchase
  csv += "a,1700000000,view,i1,c1,1,,\n";
  csv += "a,1700000100,click,i2,c1,1,,\n";
  csv += "a,1700000200,purchase,i3,c1,1,,\n";
  csv += "a,1700000300,view,i4,c1,1,,\n";
  csv += "a,1700000400,purchase,i5,c1,1,,\n";
  // b: view, purchase: only the test split has a target.
  csv += "b,1700000000,view,i1,c1,1,,\n";
  csv += "b,1700000500,purchase,i2,c1,1,,\n";
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.protocol = "leave_last_out";
  auto s = run_prep(p);
  EXPECT_EQ(s.users_per_split[3], 2);
  const std::string a = pseudonymize(kKey, "a"), b = pseudonymize(kKey, "b");
  // split -> user -> (input event times, target event times), in units of 100 s from t0
  std::map<int, std::map<std::string, std::pair<std::vector<int64_t>, std::vector<int64_t>>>> got;
  const int64_t t0 = 1700000000000LL;
  for (auto& f : list_shards(p.output_dir)) {
    auto c = read_shard(f);
    EXPECT_EQ(c.str_attrs["protocol"], "leave_last_out");
    EXPECT_EQ(c.str_attrs["target_event_types"], "click,cart,purchase");
    for (int sp = 0; sp < kNumSplits; ++sp) {
      auto& A = c.splits[sp];
      for (size_t i = 0; i < A.size(); ++i) {
        auto& e = got[sp][c.user_ids[size_t(A.user[i])]];
        for (int64_t k = A.input_offsets[i]; k < A.input_offsets[i + 1]; ++k)
          e.first.push_back((A.input_ts[size_t(k)] - t0) / 100000);
        for (int64_t k = A.target_offsets[i]; k < A.target_offsets[i + 1]; ++k)
          e.second.push_back((A.target_ts[size_t(k)] - t0) / 100000);
      }
    }
  }
  using V = std::vector<int64_t>;
  EXPECT_EQ(got[2][a], std::make_pair(V{0, 1, 2, 3}, V{4}));  // test: the last purchase held out
  EXPECT_EQ(got[1][a], std::make_pair(V{0, 1}, V{2}));        // val: the purchase before it
  EXPECT_EQ(got[0][a], std::make_pair(V{0}, V{1}));           // train: the click before that
  EXPECT_EQ(got[3][a], std::make_pair(V{0, 1, 2, 3, 4}, V{}));  // latest: everything, no target
  EXPECT_EQ(got[2][b], std::make_pair(V{0}, V{5}));
  EXPECT_EQ(got[1][b], std::make_pair(V{0}, V{}));  // no earlier target event: no target
  EXPECT_EQ(got[3][b], std::make_pair(V{0, 5}, V{}));
  // The vocabulary counts the train inputs only: items first seen later are OOV.
  auto c = read_shard(list_shards(p.output_dir).at(0));
  EXPECT_EQ(c.items, (std::vector<std::string>{"<pad>", "<oov>", "i1"}));
}

TEST(Prep, TargetTypesDecideTheTargets) {
  auto d = tmpdir("targettypes");
  write(d / "ev.csv", std::string(kHeader) + "a,1700000000,review,i1,c1,1,4,nice\na,1700000100,review,i2,c1,1,5,ok\n");
  auto p = params(d, (d / "ev.csv").string());
  p.protocol = "leave_last_out";
  auto test_targets = [&] {
    size_t n = 0;
    for (auto& f : list_shards(p.output_dir)) {
      auto c = read_shard(f);
      EXPECT_EQ(c.str_attrs["target_event_types"], fmt::format("{}", fmt::join(p.target_event_types, ",")));
      n += c.splits[2].target_item.size();
    }
    return n;
  };
  run_prep(p);  // warns: no review is a target by default
  EXPECT_EQ(test_targets(), 0u);
  p.target_event_types = {"review"};
  run_prep(p);
  EXPECT_EQ(test_targets(), 1u);
}

// ---- Hostile input (issue 14): bad rows are quarantined, masked, and named; bad files stop
// the run with the file named.

namespace {

// The message of the DataError/ConfigError run_prep throws ("" when it does not throw).
template <typename E = portrait::DataError>
std::string prep_error(const PrepParams& p) {
  try {
    run_prep(p);
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

std::string gzip_bytes(const fs::path& dir, const std::string& text) {
  const fs::path tmp = dir / "whole.csv.gz";
  {
    portrait::data::TextWriter w(tmp, true, 6);
    w.write(text);
    w.commit();
  }
  std::string b = portrait::read_file(tmp);
  fs::remove(tmp);
  return b;
}

// Logs written while `f` runs (the warnings prep prints to stderr go to the log file too).
template <typename F> std::string logged(const fs::path& dir, F&& f) {
  const fs::path log = dir / "prep.log";
  portrait::log::set_file(log.string());
  f();
  portrait::log::set_file("");
  return portrait::read_file(log);
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

}  // namespace

TEST(Prep, TruncatedGzipIsAnErrorNamingTheFile) {
  auto d = tmpdir("truncgz");
  std::string csv = kHeader;
  for (int u = 0; u < 2000; ++u)
    csv += fmt::format("u{},{},view,i{},c1,1,,\n", u, 1700000000 + u, u % 97);
  const std::string gz = gzip_bytes(d, csv);
  write(d / "ev.csv.gz", gz.substr(0, gz.size() * 4 / 5));  // a copy cut short
  auto p = params(d, (d / "ev.csv.gz").string());
  const std::string m = prep_error(p);
  EXPECT_NE(m.find((d / "ev.csv.gz").string()), std::string::npos) << m;
  EXPECT_NE(m.find("truncated"), std::string::npos) << m;
  EXPECT_TRUE(list_shard_files(p.output_dir).empty());
  // The complete file still reads.
  write(d / "ev.csv.gz", gz);
  EXPECT_EQ(run_prep(p).rows, 2000);
  fs::remove_all(d);
}

TEST(Prep, QuarantinedRowsAreMaskedAndPseudonymizedLikeEveryOtherOutput) {
  auto d = tmpdir("quarmask");
  // The user id is the last column, review text with PII before it.
  std::string csv = "timestamp,event_type,item_id,review_text,user_id\n";
  csv += "1700000000,view,i1,fine,alice.smith.77\n";
  csv += "yesterday,review,i1,\"mail alice@example.com or call 138-1234-5678\",alice.smith.77\n";  // bad_timestamp
  csv += "1700000100,wishlist,i1,\"card 4111 1111 1111 1111\",alice.smith.77\n";  // unknown_event_type
  // One comma too many: the row's shape no longer says which field is the user id.
  csv += "1700000200,review,i1,mail bob@example.org, thanks,bob.jones.88\n";
  csv += "1700000300,view,i1,bad \xff bytes 139-8765-4321,bob.jones.88\n";  // invalid_utf8
  write(d / "ev.csv", csv);
  // The same rows as JSON Lines, user key last.
  std::string jl;
  jl += R"({"timestamp": 1700000000, "event_type": "view", "item_id": "i1", "user_id": "carol.white.99"})" "\n";
  jl += R"({"timestamp": "yesterday", "event_type": "review", "item_id": "i1", "review_text": "mail carol@example.net or 138-1234-5678", "user_id": "carol.white.99"})" "\n";
  write(d / "ev.jsonl", jl);
  auto p = params(d, (d / "ev.*").string());
  p.data.columns["rating"] = p.data.columns["category"] = p.data.columns["price"] = "";
  auto s = run_prep(p);
  EXPECT_EQ(s.quarantined, 5);
  const std::string q = portrait::read_file(fs::path(p.output_dir) / "quarantine.jsonl");
  for (const char* secret : {"alice.smith", "bob.jones", "carol.white", "alice@example.com",
                             "bob@example.org", "carol@example.net", "138-1234-5678",
                             "4111 1111", "139-8765-4321"})
    EXPECT_EQ(q.find(secret), std::string::npos) << secret << " leaked into\n" << q;
  EXPECT_NE(q.find(pseudonymize(kKey, "alice.smith.77")), std::string::npos) << q;
  EXPECT_NE(q.find(pseudonymize(kKey, "carol.white.99")), std::string::npos) << q;
  EXPECT_NE(q.find("<email>"), std::string::npos) << q;
  EXPECT_NE(q.find("<phone>"), std::string::npos) << q;
  // Nothing lost: every rejected row is there with its file, line and reason.
  std::map<std::string, std::string> by_place;
  for (auto& r : quarantine(p))
    by_place[fs::path(r["file"].get<std::string>()).filename().string() + ":" +
             std::to_string(r["line"].get<int64_t>())] = r["reason"];
  EXPECT_EQ(by_place, (std::map<std::string, std::string>{{"ev.csv:3", "bad_timestamp"},
                                                          {"ev.csv:4", "unknown_event_type"},
                                                          {"ev.csv:5", "malformed_row"},
                                                          {"ev.csv:6", "invalid_utf8"},
                                                          {"ev.jsonl:2", "bad_timestamp"}}));
  fs::remove_all(d);
}

TEST(Prep, ControlBytesInIdsAreQuarantinedNamingTheField) {
  auto d = tmpdir("nulids");
  std::string csv = kHeader;
  csv += "u1,1700000000,view,i1,c1,1,,\n";
  csv += "u1,1700000100,view,item"s + '\0' + "A,c1,1,,\n";  // NUL: HDF5 would cut it to "item"
  csv += "u1,1700000200,view,item"s + '\0' + "B,c1,1,,\n";
  csv += "u1,1700000300,view,item,c\x01,1,,\n";
  csv += "u\x1b,1700000400,view,i1,c1,1,,\n";
  csv += "u1,1700000500,view,item,c1,1,,\n";
  write(d / "ev.csv", csv);
  auto p = params(d, (d / "ev.csv").string());
  p.train_cutoff = p.val_cutoff = p.test_cutoff = "1800000000";  // the vocabulary sees every event
  auto s = run_prep(p);
  EXPECT_EQ(s.accepted_events, 2);
  std::map<int64_t, std::string> field;
  for (auto& r : quarantine(p)) {
    EXPECT_EQ(r["reason"], "bad_value") << r;
    field[r["line"].get<int64_t>()] = r.value("field", "");
  }
  EXPECT_EQ(field, (std::map<int64_t, std::string>{{3, "item"}, {4, "item"}, {5, "category"}, {6, "user"}}));
  std::set<std::string> items;
  for (auto& f : list_shards(p.output_dir))
    for (auto& n : read_shard(f).items) items.insert(n);
  EXPECT_EQ(items, (std::set<std::string>{"<pad>", "<oov>", "i1", "item"}));
  fs::remove_all(d);
}

TEST(Prep, JsonIdsMustBeStringsOrIntegers) {
  auto d = tmpdir("jsonids");
  std::string jl;
  jl += R"({"user_id": "u1", "timestamp": 1700000000, "event_type": "view", "item_id": 42})" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000100, "event_type": "view", "item_id": "i1"})" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000200, "event_type": "view", "item_id": {"id": 1}})" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000300, "event_type": "view", "item_id": [1, 2]})" "\n";
  jl += R"({"user_id": true, "timestamp": 1700000400, "event_type": "view", "item_id": "i1"})" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000500, "event_type": "view", "item_id": 1.5})" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000600, "event_type": "view", "item_id": "i2", "category": false})" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000700, "event_type": "view", "item_id": "i3", "review_text": {"t": "x"}})" "\n";
  write(d / "ev.jsonl", jl);
  auto p = params(d, (d / "ev.jsonl").string());
  p.train_cutoff = p.val_cutoff = p.test_cutoff = "1800000000";
  auto s = run_prep(p);
  EXPECT_EQ(s.accepted_events, 2);
  std::map<int64_t, std::string> field;
  for (auto& r : quarantine(p)) {
    EXPECT_EQ(r["reason"], "bad_value") << r;
    field[r["line"].get<int64_t>()] = r.value("field", "");
  }
  EXPECT_EQ(field, (std::map<int64_t, std::string>{
                       {3, "item"}, {4, "item"}, {5, "user"}, {6, "item"}, {7, "category"}, {8, "review"}}));
  std::set<std::string> items;
  for (auto& f : list_shards(p.output_dir))
    for (auto& n : read_shard(f).items) items.insert(n);
  EXPECT_EQ(items, (std::set<std::string>{"<pad>", "<oov>", "42", "i1"}));
  fs::remove_all(d);
}

TEST(Prep, DuplicateJsonKeysAreQuarantinedNamingTheKey) {
  auto d = tmpdir("jsondup");
  std::string jl;
  jl += R"({"user_id": "u1", "timestamp": 1700000000, "event_type": "view", "item_id": "i1"})" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000100, "event_type": "view", "item_id": "i1", "item_id": "i2"})" "\n";
  write(d / "ev.jsonl", jl);
  auto p = params(d, (d / "ev.jsonl").string());
  auto s = run_prep(p);
  EXPECT_EQ(s.accepted_events, 1);
  auto q = quarantine(p);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0]["line"], 2);
  EXPECT_EQ(q[0]["reason"], "malformed_row");
  EXPECT_NE(q[0]["detail"].get<std::string>().find("'item_id'"), std::string::npos) << q[0];
  fs::remove_all(d);
}

TEST(Prep, JsonSyntaxErrorsSayWhatIsWrongAndAtWhichByte) {
  auto d = tmpdir("jsonsyntax");
  std::string jl;
  jl += R"({"user_id": "u1", "timestamp": 1700000000, "event_type": "view", "item_id": "i1"})" "\n";
  jl += R"({"user_id": "u1", "timestamp": , "event_type": "view", "item_id": "i1"})" "\n";
  jl += R"(["u1", 1700000000, "view", "i1"])" "\n";
  jl += R"({"user_id": "u1", "timestamp": 1700000000, "event_type": "view")" "\n";
  write(d / "ev.jsonl", jl);
  auto p = params(d, (d / "ev.jsonl").string());
  run_prep(p);
  std::map<int64_t, std::string> detail;
  for (auto& r : quarantine(p)) {
    EXPECT_EQ(r["reason"], "malformed_row");
    detail[r["line"].get<int64_t>()] = r["detail"];
  }
  ASSERT_EQ(detail.size(), 3u);
  EXPECT_NE(detail[2].find("byte 32"), std::string::npos) << detail[2];
  EXPECT_NE(detail[3].find("array"), std::string::npos) << detail[3];
  EXPECT_NE(detail[4].find("byte"), std::string::npos) << detail[4];
  for (auto& [l, t] : detail) EXPECT_EQ(t.find("not a JSON object"), std::string::npos) << t;
  fs::remove_all(d);
}

TEST(Prep, AWrongDelimiterErrorSuggestsTheFormat) {
  auto d = tmpdir("delim");
  write(d / "semi.csv", "user_id;timestamp;event_type;item_id\nu1;1700000000;view;i1\n");
  auto p = params(d, (d / "semi.csv").string());
  std::string m = prep_error(p);
  EXPECT_NE(m.find("';'"), std::string::npos) << m;
  EXPECT_NE(m.find("data.format"), std::string::npos) << m;
  write(d / "commas.tsv", "user_id,timestamp,event_type,item_id\nu1,1700000000,view,i1\n");
  p = params(d, (d / "commas.tsv").string());
  m = prep_error(p);
  EXPECT_NE(m.find("data.format=csv"), std::string::npos) << m;
  fs::remove_all(d);
}

TEST(Prep, ADuplicatedMappedHeaderIsAnErrorNamingTheColumnAndFile) {
  auto d = tmpdir("duphdr");
  write(d / "ev.csv", "user_id,timestamp,event_type,item_id,item_id\nu1,1700000000,view,i1,i2\n");
  auto p = params(d, (d / "ev.csv").string());
  const std::string m = prep_error(p);
  EXPECT_NE(m.find("ev.csv"), std::string::npos) << m;
  EXPECT_NE(m.find("'item_id'"), std::string::npos) << m;
  fs::remove_all(d);
}

TEST(Prep, AnAbsentOptionalColumnIsWarnedOnceNamingTheKeyAndColumn) {
  auto d = tmpdir("optcol");
  write(d / "a.csv", "user_id,timestamp,event_type,item_id,category\nu1,1700000000,view,i1,c1\n");
  write(d / "b.csv", "user_id,timestamp,event_type,item_id,category\nu2,1700000000,view,i1,c1\n");
  auto p = params(d, (d / "*.csv").string());
  const std::string log = logged(d, [&] { run_prep(p); });
  EXPECT_EQ(count_of(log, "(data.columns.price)"), 1u) << log;
  EXPECT_NE(log.find("no column 'price'"), std::string::npos) << log;
  EXPECT_EQ(count_of(log, "(data.columns.category)"), 0u) << log;
  fs::remove_all(d);
}

TEST(Prep, LongLinesAreEchoedOnlyAsBoundedSnippets) {
  auto d = tmpdir("longline");
  // A file without line breaks: the "header" is one 1 MB line.
  write(d / "ev.csv", std::string(1 << 20, 'x'));
  auto p = params(d, (d / "ev.csv").string());
  std::string m = prep_error(p);
  EXPECT_NE(m.find("no column"), std::string::npos) << m.substr(0, 500);
  EXPECT_LT(m.size(), 2000u);
  EXPECT_NE(m.find("1048576 bytes"), std::string::npos) << m.substr(0, 500);
  // A rejected row's reason quotes a bounded piece of its value.
  std::string csv = kHeader;
  csv += "u1,1700000000,view,i1,c1,1,,\n";
  csv += "u1," + std::string(100000, '7') + "x,view,i1,c1,1,,\n";
  write(d / "ev.csv", csv);
  p.data.max_field_length = 1 << 20;
  run_prep(p);
  auto q = quarantine(p);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0]["reason"], "bad_timestamp");
  EXPECT_LT(q[0]["detail"].get<std::string>().size(), 400u);
  EXPECT_NE(q[0]["detail"].get<std::string>().find("100001 bytes"), std::string::npos) << q[0]["detail"];
  fs::remove_all(d);
}

TEST(Prep, DecimalUnixTimestampsAreAccepted) {
  auto d = tmpdir("floatts");
  std::string csv = kHeader;
  csv += "u1,1700000000000.0,view,i1,c1,1,,\n";
  csv += "u1,1700000000.5,view,i2,c1,1,,\n";
  write(d / "ev.csv", csv);
  std::string jl;
  jl += R"({"user_id": "u2", "timestamp": 1700000000000.0, "event_type": "view", "item_id": "i1"})" "\n";
  jl += R"({"user_id": "u2", "timestamp": 1.7000000001e12, "event_type": "view", "item_id": "i2"})" "\n";
  write(d / "ev.jsonl", jl);
  auto p = params(d, (d / "ev.*").string());
  p.train_cutoff = p.val_cutoff = p.test_cutoff = "1800000000";
  auto s = run_prep(p);
  EXPECT_EQ(s.quarantined, 0) << portrait::read_file(fs::path(p.output_dir) / "quarantine.jsonl");
  std::map<std::string, int64_t> ts;  // "user/item" -> time
  for (auto& r : inputs(p, 0)) ts[r.user + "/" + r.item] = r.ts;
  const std::string u1 = pseudonymize(kKey, "u1"), u2 = pseudonymize(kKey, "u2");
  EXPECT_EQ(ts, (std::map<std::string, int64_t>{{u1 + "/i1", 1700000000000},
                                                {u1 + "/i2", 1700000000500},
                                                {u2 + "/i1", 1700000000000},
                                                {u2 + "/i2", 1700000000100}}));
  fs::remove_all(d);
}

TEST(Prep, CutoffOrderIsCheckedBeforeAnyInputIsRead) {
  auto d = tmpdir("cutorder");
  // The input does not exist: reading it would fail, so the error must be the config's.
  auto p = params(d, (d / "missing.csv").string());
  p.train_cutoff = "2024-02-01";
  p.val_cutoff = "2024-01-01";
  const std::string m = prep_error<portrait::ConfigError>(p);
  EXPECT_NE(m.find("prep.train_cutoff"), std::string::npos) << m;
  EXPECT_NE(m.find("prep.val_cutoff"), std::string::npos) << m;
  // An explicit test cut-off fixes the automatic ones before it.
  p.train_cutoff = "2024-01-10";
  p.val_cutoff = "auto";
  p.test_cutoff = "2024-01-15";  // val = test - 14 days = 2024-01-01 < train
  EXPECT_NE(prep_error<portrait::ConfigError>(p).find("prep.train_cutoff"), std::string::npos);
  fs::remove_all(d);
}

TEST(Prep, RefusesAnOutputDirectoryAnotherCommandIsWritingInto) {
  auto d = tmpdir("locked");
  write(d / "a.csv", std::string(kHeader) + "u1,1700000000,view,i1,c1,1,,\n");
  auto p = params(d, (d / "a.csv").string());
  p.partitions = 1;
  {
    portrait::DirLock other(p.output_dir, "prep.output_dir");  // a concurrent prep holds it
    try {
      run_prep(p);
      FAIL() << "a second prep ran in a locked output directory";
    } catch (const portrait::DataError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("in use by another running command"), std::string::npos) << m;
      EXPECT_NE(m.find(p.output_dir), std::string::npos) << m;
    }
    EXPECT_TRUE(list_shard_files(p.output_dir).empty());
  }
  run_prep(p);  // released: the next prep runs
  EXPECT_EQ(list_shards(p.output_dir).size(), 1u);
  fs::remove_all(d);
}

TEST(Prep, RefusesAnOutputThatIsOneOfItsInputs) {
  auto d = tmpdir("over_input");
  write(d / "reviews.txt", std::string(kHeader) + "u1,1700000000,view,i1,c1,1,,\n");
  auto p = params(d, (d / "reviews.txt").string());
  p.data.format = "csv";
  p.output_dir = d.string();  // prep would write reviews.txt over its input
  EXPECT_THROW(run_prep(p), portrait::ConfigError);
  EXPECT_NE(portrait::read_file(d / "reviews.txt").find("u1,"), std::string::npos);
  fs::remove_all(d);
}

// Defect 8 (disk full): prep used to segfault at exit after an HDF5 flush error. Now the failed
// write is an exception naming the file, the output directory holds no shard, no manifest, no
// work directory and no temporary, and a rerun with room writes the whole set.
TEST(Prep, AFullDiskFailsCleanlyAndARerunWritesEveryShard) {
  auto d = tmpdir("disk_full");
  SynthParams sp;
  sp.output_dir = (d / "syn").string();
  sp.users = 200;
  sp.items = 200;
  sp.days = 30;
  sp.fault_fraction = 0;
  sp.bot_users = 0;
  run_synth(sp);
  auto p = params(d, (d / "syn/events_00000.csv").string());
  {
    portrait::testing::FileSizeLimit full(24 << 10);
    try {
      run_prep(p);
      FAIL() << "prep wrote its outputs past the file size limit";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("free space"), std::string::npos) << e.what();
    }
  }
  for (const auto& e : fs::directory_iterator(p.output_dir))
    if (e.path().filename() != portrait::kLockFileName) ADD_FAILURE() << "left after the failure: " << e.path();
  auto s = run_prep(p);
  EXPECT_EQ(list_shards(p.output_dir).size(), size_t(p.partitions));
  EXPECT_GT(s.users, 0);
  // The shard writer itself (the HDF5 path of the segfault): a shard that cannot be flushed and
  // closed is an error naming it, and nothing is left under its name or a temporary one.
  const auto shard = read_shard(list_shards(p.output_dir).at(0), {"train", "val", "test", "latest"}, true);
  const fs::path again = d / "again" / "shard_00000.h5";
  {
    portrait::testing::FileSizeLimit full(fs::file_size(list_shards(p.output_dir).at(0)) / 2);
    try {
      write_shard(again, shard);
      FAIL() << "a shard was written past the file size limit";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("free space"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(fs::is_empty(again.parent_path()));
  fs::remove_all(d);
}
