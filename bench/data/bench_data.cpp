// Data pipeline benchmark. Two steps so peak RSS is measured for prep alone:
//   bench_data synth <dir> <users>     writes synthetic logs (about 70 events per user)
//   bench_data prep  <dir>             prep <dir>/syn -> <dir>/out, prints one JSON line:
//     rows, read_events_per_s (phase 1: parse + validate + PII mask + pseudonymize + spill),
//     e2e_events_per_s (whole prep incl. cleaning, tokenizer training and shards),
//     peak_rss_mb (getrusage), seconds.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "data/prep.h"
#include "data/synth.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_data synth <dir> <users> | bench_data prep <dir> [partitions, 0 = auto]\n");
    return 2;
  }
  std::string mode = argv[1];
  std::filesystem::path dir = argv[2];
  if (mode == "synth") {
    portrait::data::SynthParams p;
    p.output_dir = (dir / "syn").string();
    p.users = argc > 3 ? std::atoll(argv[3]) : 15000;
    auto s = portrait::data::run_synth(p);
    std::printf("{\"rows\": %lld, \"users\": %lld}\n", (long long)s.rows, (long long)s.users);
    return 0;
  }
  portrait::data::PrepParams p;
  p.input = {(dir / "syn" / "events_*.csv").string()};
  p.catalogue = (dir / "syn" / "catalogue.csv").string();
  p.output_dir = (dir / "out").string();
  p.hash_key = "bench-key-0123456789abcdef";
  p.partitions = argc > 3 ? std::atoi(argv[3]) : 0;  // 0 = auto (by input size)
  p.progress = false;
  auto s = portrait::data::run_prep(p);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"rows\": %lld, \"read_seconds\": %.2f, \"read_events_per_s\": %.0f, \"seconds\": %.2f, "
      "\"e2e_events_per_s\": %.0f, \"peak_rss_mb\": %.1f, \"partitions\": %d}\n",
      (long long)s.rows, s.read_seconds, double(s.rows) / s.read_seconds, s.seconds,
      double(s.rows) / s.seconds, double(ru.ru_maxrss) / 1024.0, int(s.shards.size()));
  return 0;
}
