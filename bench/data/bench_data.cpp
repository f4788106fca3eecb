// Data pipeline benchmark. Throughput is reported as a ratio against baselines measured in
// the same run on the same input, never as an absolute target: on a shared 2-core machine the
// absolute figures move with the load, the ratios much less.
//
//   bench_data synth <dir> <users> [gz]  writes synthetic logs (about 110 rows per user) to
//                                        <dir>/syn (gzip-compressed with "gz")
//   bench_data prep  <dir> [partitions]  prep <dir>/syn -> <dir>/out; prints one JSON line
//   bench_data smoke <dir>               synth 300 users + prep (ctest, label slow)
//   bench_data loader <dir> lazy|memory  one shuffled epoch of <dir>/out's train split
//                                        (batch 256, 2 threads): users/s and peak RSS
//
// Baselines (single thread, same files, page cache warmed by an untimed pass first):
//   floor  = read + record split (gzip inflate when compressed, quote-aware line joining):
//            the I/O floor any parser pays. Measured before and after prep; the mean is used.
//   split  = floor + CSV field split of every record: a naive parse without validation.
// Reported: rows; *_rows_per_s of the baselines; read_events_per_s (prep phase 1: parse +
// validate + PII mask + pseudonymize + spill) and e2e_events_per_s (whole prep: cleaning,
// tokenizer, shards) with their ratios to the floor and to the split baseline; peak_rss_mb
// (getrusage) and partitions. Run /usr/bin/time -v around it for an outside RSS figure.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data/io.h"
#include "data/loader.h"
#include "data/prep.h"
#include "data/synth.h"

namespace {

namespace fs = std::filesystem;
using portrait::data::RecordReader;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// One pass over the inputs: records (and CSV fields when `split`) counted, header excluded.
struct Pass {
  int64_t rows = 0, fields = 0;
  double seconds = 0;
};
Pass read_pass(const std::vector<fs::path>& files, bool split) {
  Pass r;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string_view> fields;
  std::vector<std::string> scratch;
  for (auto& f : files) {
    RecordReader rr(f, /*quote_aware=*/true);
    std::string_view rec;
    int64_t line;
    bool header = true;
    while (rr.next(rec, line)) {
      if (header) {
        header = false;
        continue;
      }
      if (rec.empty()) continue;
      ++r.rows;
      if (split && portrait::data::split_csv(rec, ',', fields, scratch)) r.fields += int64_t(fields.size());
    }
  }
  r.seconds = seconds_since(t0);
  return r;
}

int run_prep_bench(const fs::path& dir, int partitions, bool smoke) {
  const std::string pattern = (dir / "syn" / "events_*.csv*").string();
  const auto files = portrait::data::expand_inputs({pattern});
  read_pass(files, false);  // warm the page cache (untimed)
  const Pass floor1 = read_pass(files, false);
  const Pass split = read_pass(files, true);

  portrait::data::PrepParams p;
  p.input = {pattern};
  p.catalogue = (dir / "syn" / "catalogue.csv").string();
  p.output_dir = (dir / "out").string();
  p.hash_key = "bench-key-0123456789abcdef";
  p.partitions = partitions;  // 0 = auto (by input size)
  p.progress = false;
  if (smoke) {
    p.tokenizer.vocab_size = 600;
    p.data.max_reject_fraction = 0.5;  // 3 bots x 6000 rows among 300 users
  }
  auto s = portrait::data::run_prep(p);

  const Pass floor2 = read_pass(files, false);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double floor_rps = 2.0 * double(floor1.rows) / (floor1.seconds + floor2.seconds);
  const double split_rps = double(split.rows) / split.seconds;
  const double read_eps = double(s.rows) / s.read_seconds;
  const double e2e_eps = double(s.rows) / s.seconds;
  std::printf(
      "{\"rows\": %lld, \"input_files\": %zu, \"floor_rows_per_s\": %.0f, \"floor_seconds\": [%.2f, %.2f], "
      "\"split_rows_per_s\": %.0f, \"read_events_per_s\": %.0f, \"read_vs_floor\": %.3f, "
      "\"read_vs_split\": %.3f, \"e2e_events_per_s\": %.0f, \"e2e_vs_floor\": %.3f, "
      "\"read_seconds\": %.2f, \"seconds\": %.2f, \"peak_rss_mb\": %.1f, \"partitions\": %d}\n",
      (long long)s.rows, files.size(), floor_rps, floor1.seconds, floor2.seconds, split_rps, read_eps,
      read_eps / floor_rps, read_eps / split_rps, e2e_eps, e2e_eps / floor_rps, s.read_seconds,
      s.seconds, double(ru.ru_maxrss) / 1024.0, int(s.shards.size()));
  if (floor1.rows != s.rows) {
    std::fprintf(stderr, "bench_data: baseline saw %lld rows, prep %lld\n", (long long)floor1.rows,
                 (long long)s.rows);
    return 1;
  }
  return 0;
}

int run_loader_bench(const fs::path& dir, bool lazy) {
  auto t0 = std::chrono::steady_clock::now();
  portrait::data::LoaderParams p;
  p.shard_dir = (dir / "out").string();
  p.batch_size = 256;
  p.lazy = lazy;
  portrait::data::Loader l(p);
  const double open_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  l.start_epoch(0);
  portrait::data::Batch b;
  int64_t users = 0, events = 0;
  while (l.next(b)) {
    users += b.rows;
    for (int32_t n : b.length) events += n;
  }
  const double s = seconds_since(t0);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"lazy\": %s, \"users\": %lld, \"events\": %lld, \"open_seconds\": %.2f, "
              "\"epoch_seconds\": %.2f, \"users_per_s\": %.0f, \"peak_rss_mb\": %.1f}\n",
              lazy ? "true" : "false", (long long)users, (long long)events, open_s, s, double(users) / s,
              double(ru.ru_maxrss) / 1024.0);
  return 0;
}

void synth(const fs::path& dir, int64_t users, bool gz) {
  portrait::data::SynthParams p;
  p.output_dir = (dir / "syn").string();
  p.users = users;
  p.gzip = gz;
  auto s = portrait::data::run_synth(p);
  std::printf("{\"rows\": %lld, \"users\": %lld}\n", (long long)s.rows, (long long)s.users);
}

int bench_main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench_data synth <dir> <users> [gz] | bench_data prep <dir> [partitions, 0 = auto]"
                 " | bench_data smoke <dir>\n");
    return 2;
  }
  const std::string mode = argv[1];
  const fs::path dir = argv[2];
  if (mode == "synth") {
    synth(dir, argc > 3 ? std::atoll(argv[3]) : 15000, argc > 4 && std::string(argv[4]) == "gz");
    return 0;
  }
  if (mode == "smoke") {
    fs::remove_all(dir);
    synth(dir, 300, false);
    int rc = run_prep_bench(dir, 2, /*smoke=*/true);
    fs::remove_all(dir);
    return rc;
  }
  if (mode == "loader") return run_loader_bench(dir, !(argc > 3 && std::string(argv[3]) == "memory"));
  if (mode == "prep") return run_prep_bench(dir, argc > 3 ? std::atoi(argv[3]) : 0, false);
  std::fprintf(stderr, "bench_data: unknown mode '%s'\n", mode.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return bench_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_data: %s\n", e.what());
    return 1;
  }
}
