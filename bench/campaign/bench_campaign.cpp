// The acceptance measurement of `campaign evaluate` on synthetic campaigns with planted truth
// (campaign/simulate.h), end to end through the files: for each seed, simulate a campaign
// (users.csv -> the real planner -> events.csv), evaluate it, and compare every segment's
// conversion-lift interval with the planted mean effect of that segment's audience.
//
//   bench_campaign coverage [--users 100000] [--seeds 20] [--first-seed 1000] [--control 0.2] [--budget 0]
//                           [--targeting top_score] [--level 0.95] [--interval newcombe]
//                           [--dir /tmp/portrait_bench_campaign] [--keep]
//
// Prints per seed and in all: the share of segment intervals that cover the planted effect
// (target >= the level), the share of zero-effect segments reported significant (p < 1 -
// level; target 1 - level +- noise), the power on the other segments, and the overall
// interval's coverage; writes the same figures to <dir>/coverage.json.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "campaign/evaluate.h"
#include "campaign/simulate.h"
#include "campaign/stats.h"
#include "core/fs.h"
#include "core/log.h"

using namespace portrait;
using namespace portrait::campaign;
namespace fs = std::filesystem;

namespace {

int usage() {
  fmt::print(stderr,
             "usage: bench_campaign coverage [--users N] [--seeds K] [--first-seed S] [--control F] [--budget B] "
             "[--targeting top_score|random] [--level L] [--interval newcombe|wald] [--dir D] [--keep]\n");
  return 2;
}

std::string share(int64_t x, int64_t n, double level) {
  if (n == 0) return "n/a";
  const Interval w = wilson_interval(x, n, level);
  return fmt::format("{}/{} = {:.3f} [{:.3f}, {:.3f}]", x, n, double(x) / double(n), w.lo, w.hi);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "coverage") != 0) return usage();
  int64_t users = 100000, budget = 0;
  int seeds = 20;
  uint64_t first_seed = 1000;
  double control = 0.2, level = 0.95;
  std::string targeting = "top_score", interval = "newcombe", dir = "/tmp/portrait_bench_campaign";
  bool keep = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage());
      return argv[++i];
    };
    if (a == "--users") users = std::atoll(val().c_str());
    else if (a == "--seeds") seeds = std::atoi(val().c_str());
    else if (a == "--first-seed") first_seed = std::strtoull(val().c_str(), nullptr, 10);
    else if (a == "--control") control = std::atof(val().c_str());
    else if (a == "--budget") budget = std::atoll(val().c_str());
    else if (a == "--targeting") targeting = val();
    else if (a == "--level") level = std::atof(val().c_str());
    else if (a == "--interval") interval = val();
    else if (a == "--dir") dir = val();
    else if (a == "--keep") keep = true;
    else return usage();
  }
  log::set_level(log::Level::kWarn);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t seg_n = 0, seg_cover = 0, zero_n = 0, zero_sig = 0, zero_sig_holm = 0, eff_n = 0, eff_sig = 0;
  int64_t overall_cover = 0;
  double zt_sum = 0, zc_sum = 0, zt_sq = 0, zc_sq = 0;  // per-arm (observed - expected) / se
  nlohmann::json per_seed = nlohmann::json::array();
  fmt::print("campaign coverage: {} users, {} seeds, control {}, targeting {}, budget {}, level {}, {} interval\n",
             users, seeds, control, targeting, budget ? std::to_string(budget) : std::string("all"), level, interval);
  fmt::print("{:>5} {:>9} {:>11} {:>11} {:>8} {:>9} {:>8}\n", "seed", "audience", "true lift", "measured", "covered",
             "zero sig", "time s");
  for (int k = 0; k < seeds; ++k) {
    const auto ts = std::chrono::steady_clock::now();
    const uint64_t seed = first_seed + uint64_t(k);
    SimulateParams sp;
    sp.output_dir = (fs::path(dir) / fmt::format("seed{}", seed)).string();
    fs::remove_all(sp.output_dir);
    sp.users = users;
    sp.seed = seed;
    sp.hash_key = "bench-key-0123456789-abcdefghij";
    sp.plan.campaign_id = fmt::format("bench-{}", seed);
    sp.plan.start = "2024-06-01";
    sp.plan.seed = seed;
    sp.plan.control_fraction = control;
    sp.plan.targeting = targeting;
    sp.plan.budget_users = budget;
    const SimulateSummary s = run_simulate(sp);
    EvaluateParams ep;
    ep.campaign_dir = s.campaign_dir;
    ep.input = {s.events};
    ep.output_dir = (fs::path(sp.output_dir) / "eval").string();
    ep.hash_key = sp.hash_key;
    ep.progress = false;
    ep.level = level;
    ep.interval = interval;
    const EvaluateSummary e = run_evaluate(ep);
    const double alpha = 1 - level;
    int covered = 0, zs = 0;
    nlohmann::json segs = nlohmann::json::array();
    for (const SegmentTruth& st : s.segments) {
      const GroupResult* g = e.find("segment", st.segment);
      if (!g || !g->conversion.defined) continue;
      const bool cov = g->conversion.abs_lo <= st.mean_effect && st.mean_effect <= g->conversion.abs_hi;
      const bool sig = g->conversion.p_value < alpha;
      ++seg_n;
      seg_cover += cov;
      covered += cov;
      if (st.log_odds == 0) {
        ++zero_n;
        zero_sig += sig;
        zero_sig_holm += g->p_holm_conversion < alpha;
        zs += sig;
      } else {
        ++eff_n;
        eff_sig += sig;
      }
      segs.push_back({{"segment", st.segment},
                      {"log_odds", st.log_odds},
                      {"true", st.mean_effect},
                      {"lift", g->conversion.abs_lift},
                      {"ci", {g->conversion.abs_lo, g->conversion.abs_hi}},
                      {"p", g->conversion.p_value},
                      {"covered", cov}});
    }
    const RateLift& ov = e.overall().conversion;
    const bool ocov = ov.abs_lo <= s.overall_effect && s.overall_effect <= ov.abs_hi;
    overall_cover += ocov;
    const double zt = (ov.rate_t - s.expected_treatment) /
                      std::sqrt(s.expected_treatment * (1 - s.expected_treatment) / double(ov.n_t));
    const double zc = (ov.rate_c - s.expected_control) /
                      std::sqrt(s.expected_control * (1 - s.expected_control) / double(ov.n_c));
    zt_sum += zt, zc_sum += zc, zt_sq += zt * zt, zc_sq += zc * zc;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    fmt::print("{:>5} {:>9} {:>+11.5f} {:>+11.5f} {:>6}/{} {:>9} {:>8.1f}{}\n", seed, s.audience, s.overall_effect,
               ov.abs_lift, covered, segs.size(), zs, secs, ocov ? "" : "  (overall interval missed)");
    per_seed.push_back({{"seed", seed},
                        {"audience", s.audience},
                        {"overall_true", s.overall_effect},
                        {"overall_lift", ov.abs_lift},
                        {"overall_ci", {ov.abs_lo, ov.abs_hi}},
                        {"segments", segs},
                        {"seconds", secs}});
    if (!keep) fs::remove_all(sp.output_dir);
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("segment intervals covering the planted lift: {}\n", share(seg_cover, seg_n, 0.95));
  fmt::print("zero-effect segments reported significant:   {}  (Holm-adjusted: {})\n", share(zero_sig, zero_n, 0.95),
             share(zero_sig_holm, zero_n, 0.95));
  fmt::print("power on segments with an effect:            {}\n", share(eff_sig, eff_n, 0.95));
  fmt::print("overall intervals covering the planted lift: {}\n", share(overall_cover, seeds, 0.95));
  const double K = std::max(seeds, 1);
  fmt::print("arm conversion vs its expectation, z mean (sd): treatment {:+.3f} ({:.3f}), control {:+.3f} ({:.3f}); "
             "the mean's standard error is {:.3f}\n",
             zt_sum / K, std::sqrt(std::max(0.0, zt_sq / K - zt_sum * zt_sum / K / K)), zc_sum / K,
             std::sqrt(std::max(0.0, zc_sq / K - zc_sum * zc_sum / K / K)), 1 / std::sqrt(K));
  fmt::print("wall time {:.1f} s ({:.1f} s per seed)\n", total, total / std::max(seeds, 1));
  nlohmann::json j = {{"users", users},
                      {"seeds", seeds},
                      {"control_fraction", control},
                      {"targeting", targeting},
                      {"budget_users", budget},
                      {"level", level},
                      {"interval", interval},
                      {"segment_coverage", {{"covered", seg_cover}, {"intervals", seg_n}}},
                      {"zero_effect_significant", {{"significant", zero_sig}, {"holm", zero_sig_holm}, {"segments", zero_n}}},
                      {"power", {{"significant", eff_sig}, {"segments", eff_n}}},
                      {"overall_coverage", {{"covered", overall_cover}, {"seeds", seeds}}},
                      {"arm_z_mean", {{"treatment", zt_sum / K}, {"control", zc_sum / K}}},
                      {"wall_s", total},
                      {"per_seed", per_seed}};
  fs::create_directories(dir);
  write_file_atomic(fs::path(dir) / "coverage.json", j.dump(2) + "\n");
  return 0;
}
