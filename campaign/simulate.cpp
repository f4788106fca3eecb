#include "campaign/simulate.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/io.h"
#include "data/prep.h"
#include "data/text.h"

namespace portrait::campaign {

namespace fs = std::filesystem;

namespace {
double logit(double p) { return std::log(p / (1 - p)); }
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
}  // namespace

SimulateParams simulate_params_from_config(const cfg::Node& root) {
  SimulateParams p;
  p.plan = plan_params_from_config(root);
  cfg::Section c(root, "campaign");
  {
    cfg::Section s = c.sub("simulate");
    s.read("output_dir", p.output_dir);
    int64_t seed = int64_t(p.seed);
    s.read("seed", seed, int64_t{0});
    p.seed = uint64_t(seed);
    s.read("users", p.users, int64_t{1});
    s.read("segments", p.segments, 1, 10000);
    s.read("segment_log_odds", p.segment_log_odds);
    s.read("base_conversion", p.base_conversion, 1e-6, 1 - 1e-6);
    s.read("segment_spread", p.segment_spread, 0.0, 10.0);
    s.read("heterogeneity", p.heterogeneity, 0.0, 10.0);
    s.read("score_noise", p.score_noise, 0.0, 100.0);
    s.read("base_click", p.base_click, 1e-6, 1 - 1e-6);
    s.read("click_log_odds", p.click_log_odds, -20.0, 20.0);
    s.read("mean_price", p.mean_price, 0.01, 1e6);
    s.read("outside_fraction", p.outside_fraction, 0.0, 1.0);
    s.read("strangers", p.strangers, int64_t{0});
    s.read("invalid_fraction", p.invalid_fraction, 0.0, 1.0);
    s.read("duplicate_fraction", p.duplicate_fraction, 0.0, 1.0);
    s.read("attribution_days", p.attribution_days, 0.01, 1e4);
    s.read("pseudonymize", p.pseudonymize);
    s.read("feature_dim", p.feature_dim, 0, 4096);
    s.read("feature_noise", p.feature_noise, 0.0, 100.0);
    s.finish();
  }
  for (const char* k : {"id", "dir", "start", "seed", "plan", "evaluate", "uplift"}) c.ignore(k);
  c.finish();
  if (p.output_dir.empty()) throw ConfigError("config key 'campaign.simulate.output_dir' must be set");
  if (p.segment_log_odds.empty()) throw ConfigError("config key 'campaign.simulate.segment_log_odds' is empty");
  return p;
}

SimulateSummary run_simulate(const SimulateParams& p) {
  if (p.output_dir.empty()) throw ConfigError("campaign simulate: output_dir must be set");
  if (p.segment_log_odds.empty()) throw ConfigError("campaign simulate: segment_log_odds is empty");
  const fs::path out(p.output_dir);
  fs::create_directories(out);
  SimulateSummary sum;
  sum.output_dir = out.string();
  sum.users = p.users;
  int64_t start_ms;
  if (!data::parse_timestamp_ms(p.plan.start, start_ms))
    throw ConfigError("campaign simulate: campaign.start = '" + p.plan.start + "' is not a timestamp");
  const int64_t start_s = start_ms / 1000;
  const int64_t window_s = int64_t(std::llround(p.attribution_days * 86400));
  auto id_of = [&](const std::string& raw) { return p.hash_key.empty() ? raw : data::pseudonymize(p.hash_key, raw); };

  // 1. Population: segment, baseline log-odds, score.
  const int S = p.segments;
  std::vector<double> seg_level(static_cast<size_t>(S)), seg_beta(static_cast<size_t>(S));
  {
    Rng r(mix64(p.seed, 0x5e6));
    for (int s = 0; s < S; ++s) {
      seg_level[size_t(s)] = logit(p.base_conversion) + r.uniform(-p.segment_spread, p.segment_spread);
      seg_beta[size_t(s)] = p.segment_log_odds[size_t(s) % p.segment_log_odds.size()];
    }
  }
  struct Pop {
    std::string raw, id;
    int seg;
    double l0, score;
  };
  std::vector<Pop> pop(static_cast<size_t>(p.users));
  std::vector<ScoredUser> scored;
  scored.reserve(pop.size());
  std::string users_csv = "user_id,score,segment\n";
  for (int64_t u = 0; u < p.users; ++u) {
    Rng r(mix64(p.seed, uint64_t(u) * 4 + 1));
    Pop& x = pop[size_t(u)];
    x.raw = fmt::format("C{:08d}", u);
    x.id = id_of(x.raw);
    x.seg = int(r.below(uint64_t(S)));
    x.l0 = seg_level[size_t(x.seg)] + p.heterogeneity * r.normal();
    x.score = sigmoid(x.l0 + p.score_noise * r.normal());
    scored.push_back({x.id, x.score, std::to_string(x.seg)});
    users_csv += fmt::format("{},{:.8g},{}\n", x.id, x.score, x.seg);
  }
  write_file_atomic(out / "users.csv", users_csv);
  if (p.feature_dim > 0) {
    // Stand-in user embeddings (own random streams: the draws above and below are unchanged).
    const size_t F = size_t(p.feature_dim);
    std::vector<double> centroid(size_t(S) * F);
    Rng rc(mix64(p.seed, 0xfea7c));
    for (auto& c : centroid) c = rc.normal();
    std::string csv = "user_id";
    for (size_t j = 0; j < F; ++j) csv += fmt::format(",f{}", j);
    csv += '\n';
    csv.reserve(pop.size() * F * 8);
    for (int64_t u = 0; u < p.users; ++u) {
      const Pop& x = pop[size_t(u)];
      Rng r(mix64(p.seed ^ 0xfea7ULL, uint64_t(u)));
      csv += x.id;
      for (size_t j = 0; j < F; ++j) {
        double v = centroid[size_t(x.seg) * F + j] + p.feature_noise * r.normal();
        if (j + 1 == F) v += x.l0;  // the last feature also carries the baseline log-odds
        csv += fmt::format(",{:.5g}", v);
      }
      csv += '\n';
    }
    write_file_atomic(out / "features.csv", csv);
  }

  // 2. The plan, by the real planner.
  PlanParams pp = p.plan;
  pp.dir = (out / "campaign").string();
  pp.input = (out / "users.csv").string();
  const PlanResult plan = run_plan(pp, scored, sha256_hex(users_csv));
  sum.campaign_dir = pp.dir;
  sum.audience = int64_t(plan.plan.rows.size());
  std::unordered_map<std::string, int> arm;  // pseudonym -> 1 treated, 0 control
  arm.reserve(plan.plan.rows.size() * 2);
  for (auto& a : plan.plan.rows) arm[a.user_id] = a.treated ? 1 : 0;

  // 3. Events.
  data::TextWriter ev(out / "events.csv", false);
  ev.write("user_id,timestamp,event_type,item_id,category,price,rating,review_text\n");
  data::TextWriter truth(out / "truth.csv", false);
  truth.write("user_id,segment,arm,p_control,p_treatment,effect\n");
  auto& q = sum.expected_quarantine;
  for (const char* k : {"not_in_assignment", "duplicate", "bad_timestamp", "unknown_event_type"}) q[k] = 0;
  std::vector<SegmentTruth> seg(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    seg[size_t(s)].segment = std::to_string(s);
    seg[size_t(s)].log_odds = seg_beta[size_t(s)];
  }
  const double c0 = p.base_click, c1 = sigmoid(logit(p.base_click) + p.click_log_odds);
  const double price_mu = std::log(p.mean_price) - 0.5 * 0.36;  // lognormal, sigma 0.6
  double effect_sum = 0, arm_p[2] = {0, 0};
  int64_t arm_n[2] = {0, 0};
  std::string line;
  auto row = [&](const std::string& raw, int64_t ts, const char* type, int64_t item, double price) {
    line = fmt::format("{},{},{},I{:05d},c{},{:.2f},,\n", raw, ts, type, item, item % 20, price);
    ev.write(line);
    ++sum.rows;
  };
  for (int64_t u = 0; u < p.users; ++u) {
    const Pop& x = pop[size_t(u)];
    Rng r(mix64(p.seed, uint64_t(u) * 4 + 2));
    auto it = arm.find(x.id);
    const bool in_audience = it != arm.end();
    const bool treated = in_audience && it->second == 1;
    const double p0 = sigmoid(x.l0), p1 = sigmoid(x.l0 + seg_beta[size_t(x.seg)]);
    if (in_audience) {
      SegmentTruth& st = seg[size_t(x.seg)];
      ++st.users;
      (treated ? st.treatment : st.control)++;
      st.mean_effect += p1 - p0;
      st.mean_p0 += p0;
      st.mean_p1 += p1;
      effect_sum += p1 - p0;
      (treated ? arm_p[1] : arm_p[0]) += treated ? p1 : p0;
      (treated ? arm_n[1] : arm_n[0]) += 1;
      truth.write(fmt::format("{},{},{},{:.8g},{:.8g},{:.8g}\n", x.id, x.seg, treated ? "treatment" : "control", p0,
                              p1, p1 - p0));
    }
    const int64_t t0 = start_s + int64_t(r.below(uint64_t(std::max<int64_t>(window_s - 600, 1))));
    const int64_t item = int64_t(r.below(50000));
    const double price = std::exp(price_mu + 0.6 * r.normal());
    const bool buys = r.bernoulli(treated ? p1 : p0);
    const bool clicks = buys || r.bernoulli(treated ? c1 : c0);
    const int64_t in_window_before = sum.rows;
    row(x.raw, t0, "view", item, price);
    if (clicks) row(x.raw, t0 + 60, "click", item, price);
    if (buys) {
      row(x.raw, t0 + 120, "purchase", item, price);
      if (r.bernoulli(p.duplicate_fraction)) {
        row(x.raw, t0 + 120, "purchase", item, price);
        if (in_audience) ++q["duplicate"];
      }
    }
    if (!in_audience) q["not_in_assignment"] += sum.rows - in_window_before;
    if (r.bernoulli(p.outside_fraction)) {
      row(x.raw, start_s - 3600 - int64_t(r.below(7 * 86400)), "purchase", item + 1, price);
      ++sum.before_start;
    }
    if (r.bernoulli(p.outside_fraction)) {
      row(x.raw, start_s + window_s + int64_t(r.below(7 * 86400)), "purchase", item + 2, price);
      ++sum.after_window;
    }
    if (r.bernoulli(p.invalid_fraction)) {
      if (r.bernoulli(0.5)) {
        ev.write(fmt::format("{},yesterday,view,I{:05d},c1,1.00,,\n", x.raw, item));
        ++q["bad_timestamp"];
      } else {
        ev.write(fmt::format("{},{},wishlist_add,I{:05d},c1,1.00,,\n", x.raw, t0 + 5, item));
        ++q["unknown_event_type"];
      }
      ++sum.rows;
    }
  }
  for (int64_t k = 0; k < p.strangers; ++k) {  // never scored: not in any assignment
    Rng r(mix64(p.seed ^ 0x57a4ULL, uint64_t(k)));
    const std::string raw = fmt::format("X{:06d}", k);
    const int n = 1 + int(r.below(3));
    for (int e = 0; e < n; ++e)
      row(raw, start_s + int64_t(r.below(uint64_t(std::max<int64_t>(window_s - 600, 1)))), e ? "purchase" : "view",
          int64_t(r.below(50000)), 10.0);
    q["not_in_assignment"] += n;
  }
  ev.commit();
  truth.commit();
  sum.events = (out / "events.csv").string();
  for (auto& st : seg) {
    if (st.users) {
      st.mean_effect /= double(st.users);
      st.mean_p0 /= double(st.users);
      st.mean_p1 /= double(st.users);
    }
  }
  sum.segments = seg;
  sum.overall_effect = sum.audience ? effect_sum / double(sum.audience) : 0.0;
  sum.expected_treatment = arm_n[1] ? arm_p[1] / double(arm_n[1]) : 0.0;
  sum.expected_control = arm_n[0] ? arm_p[0] / double(arm_n[0]) : 0.0;

  nlohmann::json j;
  j["format"] = "portrait-campaign-truth";
  j["format_version"] = 1;
  j["seed"] = p.seed;
  j["campaign_id"] = pp.campaign_id;
  j["start"] = data::format_iso8601(start_s);
  j["attribution_days"] = p.attribution_days;
  j["users"] = p.users;
  j["audience"] = sum.audience;
  j["base_conversion"] = p.base_conversion;
  j["heterogeneity"] = p.heterogeneity;
  j["score_noise"] = p.score_noise;
  j["click"] = {{"control", c0}, {"treatment", c1}, {"log_odds", p.click_log_odds}};
  j["overall_effect"] = sum.overall_effect;
  j["expected_conversion"] = {{"treatment", sum.expected_treatment}, {"control", sum.expected_control}};
  j["estimand"] =
      "mean over the segment's audience users (both arms) of p_treatment - p_control: what the absolute "
      "conversion lift estimates";
  nlohmann::json sj = nlohmann::json::array();
  for (auto& st : seg)
    sj.push_back({{"segment", st.segment},
                  {"log_odds", st.log_odds},
                  {"users", st.users},
                  {"treatment", st.treatment},
                  {"control", st.control},
                  {"mean_effect", st.mean_effect},
                  {"mean_p_control", st.mean_p0},
                  {"mean_p_treatment", st.mean_p1}});
  j["segments"] = sj;
  j["expected_quarantine"] = q;
  j["before_start"] = sum.before_start;
  j["after_window"] = sum.after_window;
  j["rows"] = sum.rows;
  write_file_atomic(out / "truth.json", j.dump(2) + "\n");
  PLOG_INFO("campaign simulate: {} users, audience {}, {} rows, true overall effect {:+.4f} -> {}", p.users,
            sum.audience, sum.rows, sum.overall_effect, out.string());
  return sum;
}

}  // namespace portrait::campaign
