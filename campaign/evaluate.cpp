#include "campaign/evaluate.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <set>
#include <unordered_set>

#include "campaign/plan.h"
#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/io.h"
#include "data/rows.h"
#include "data/text.h"

namespace portrait::campaign {

namespace fs = std::filesystem;
using namespace data::row;

EvaluateParams evaluate_params_from_config(const cfg::Node& root) {
  EvaluateParams p;
  data::read_data_params(root, p.data);
  cfg::Section c(root, "campaign");
  c.read("dir", p.campaign_dir);
  int64_t seed = int64_t(p.seed);
  c.read("seed", seed, int64_t{0});
  p.seed = uint64_t(seed);
  {
    cfg::Section s = c.sub("evaluate");
    s.read("input", p.input);
    s.read("catalogue", p.catalogue);
    s.read("output_dir", p.output_dir);
    s.read("attribution_days", p.attribution_days, 1e-6, 1e5);
    s.read("start", p.start);
    s.read("pseudonymize", p.pseudonymize);
    s.read("level", p.level, 0.5, 0.9999);
    s.read_enum("interval", p.interval, {"newcombe", "wald"});
    s.read("bootstrap", p.bootstrap, 0, 100000);
    s.read("uplift_at", p.uplift_at);
    s.read("uplift_bins", p.uplift_bins, 1, 1000);
    s.read("qini_points", p.qini_points, 1, 100000);
    s.read("progress", p.progress);
    s.finish();
  }
  for (const char* k : {"id", "start", "plan", "simulate", "uplift"}) c.ignore(k);
  c.finish();
  if (p.campaign_dir.empty()) throw ConfigError("config key 'campaign.dir' must be set");
  if (p.input.empty()) throw ConfigError("config key 'campaign.evaluate.input' must list the event logs");
  if (p.output_dir.empty()) throw ConfigError("config key 'campaign.evaluate.output_dir' must be set");
  for (double f : p.uplift_at)
    if (!(f > 0 && f <= 1)) throw ConfigError("config key 'campaign.evaluate.uplift_at' holds fractions in (0, 1]");
  return p;
}

const GroupResult* EvaluateSummary::find(const std::string& type, const std::string& name) const {
  for (auto& g : groups)
    if (g.type == type && g.name == name) return &g;
  return nullptr;
}

namespace {

struct UserOutcome {
  bool active = false, clicked = false, converted = false;
  int32_t purchases = 0;
  int32_t priced = 0;
  double revenue = 0;
};

std::string num(double x) {
  if (std::isnan(x)) return "";
  return fmt::format("{:.10g}", x);
}
nlohmann::json jnum(double x) { return std::isnan(x) || std::isinf(x) ? nlohmann::json() : nlohmann::json(x); }

nlohmann::json rate_json(const RateLift& r) {
  return {{"treatment", jnum(r.rate_t)},   {"control", jnum(r.rate_c)},       {"x_treatment", r.x_t},
          {"n_treatment", r.n_t},           {"x_control", r.x_c},              {"n_control", r.n_c},
          {"abs_lift", jnum(r.abs_lift)},   {"abs_ci", {jnum(r.abs_lo), jnum(r.abs_hi)}},
          {"rel_lift", jnum(r.rel_lift)},   {"rel_ci", {jnum(r.rel_lo), jnum(r.rel_hi)}},
          {"z", jnum(r.z)},                 {"p_value", jnum(r.p_value)},
          {"incremental", jnum(r.incremental)}, {"incremental_ci", {jnum(r.inc_lo), jnum(r.inc_hi)}}};
}
nlohmann::json mean_json(const MeanLift& r) {
  return {{"treatment", jnum(r.mean_t)},  {"control", jnum(r.mean_c)},     {"n_treatment", r.n_t},
          {"n_control", r.n_c},            {"abs_lift", jnum(r.diff)},      {"abs_ci", {jnum(r.lo), jnum(r.hi)}},
          {"rel_lift", jnum(r.rel)},       {"rel_ci", {jnum(r.rel_lo), jnum(r.rel_hi)}},
          {"z", jnum(r.z)},                {"p_value", jnum(r.p_value)},
          {"incremental", jnum(r.incremental)}, {"incremental_ci", {jnum(r.inc_lo), jnum(r.inc_hi)}}};
}
nlohmann::json arm_json(const ArmStats& a, bool prices) {
  auto rate = [&](int64_t x) { return a.users ? nlohmann::json(double(x) / double(a.users)) : nlohmann::json(); };
  nlohmann::json j = {{"users", a.users},
                      {"active", a.active},
                      {"participants", a.participants},
                      {"participation_rate", rate(a.participants)},
                      {"converters", a.converters},
                      {"conversion_rate", rate(a.converters)},
                      {"purchases", a.purchases}};
  if (prices) {
    j["revenue"] = a.revenue;
    j["revenue_per_user"] = a.users ? nlohmann::json(a.revenue / double(a.users)) : nlohmann::json();
    j["priced_purchases"] = a.priced_purchases;
  }
  return j;
}

}  // namespace

EvaluateSummary run_evaluate(const EvaluateParams& p) {
  const auto t0 = std::chrono::steady_clock::now();
  const data::DataParams& d = p.data;
  EvaluateSummary sum;
  sum.output_dir = p.output_dir;
  const LoadedCampaign camp = load_campaign(p.campaign_dir);
  sum.campaign_id = camp.campaign_id;
  sum.has_scores = camp.has_scores;
  sum.start_ms = camp.start_ms;
  if (p.start != "planned" && !p.start.empty()) {
    if (!data::parse_timestamp_ms(p.start, sum.start_ms))
      throw ConfigError("config key 'campaign.evaluate.start' = '" + p.start + "' is not 'planned' or a timestamp");
  }
  sum.end_ms = sum.start_ms + int64_t(std::llround(p.attribution_days * 86400000.0));
  const std::string key = p.pseudonymize ? data::resolve_hash_key(d, p.hash_key) : std::string();

  const fs::path out_dir(p.output_dir);
  fs::create_directories(out_dir);
  DirLock lock(out_dir, "campaign.evaluate.output_dir");
  const auto files = data::expand_inputs(p.input);
  if (files.empty()) throw DataError("campaign.evaluate.input matched no files");
  {
    std::vector<NamedInput> inputs;
    for (auto& f : files) inputs.push_back({"campaign.evaluate.input", f});
    if (!p.catalogue.empty()) inputs.push_back({"campaign.evaluate.catalogue", p.catalogue});
    for (const char* n : {"assignment.csv", "campaign.json"})
      inputs.push_back({"campaign.dir", fs::path(p.campaign_dir) / n});
    for (const char* n : {"evaluation.json", "arms.csv", "lift.csv", "uplift_deciles.csv", "qini.csv",
                          "uplift_at_k.csv", "outcomes.csv", "quarantine.jsonl"})
      check_output_not_input(out_dir / n, std::string("campaign.evaluate.output_dir's ") + n, inputs);
  }

  // Assigned users.
  const size_t N = camp.rows.size();
  std::unordered_map<std::string, int32_t> index;
  index.reserve(N * 2);
  for (size_t i = 0; i < N; ++i) index.emplace(camp.rows[i].user_id, int32_t(i));
  std::vector<UserOutcome> outcome(N);

  // Rows.
  const data::RowRules rules(d);
  const data::Catalogue catalogue = data::load_catalogue(p.catalogue, d);
  std::unordered_map<std::string, std::string> pseudo_cache;
  // Pseudonyms behind a bounded cache (a user's rows usually come together).
  std::string same;
  auto pseudo_of = [&](std::string_view raw) -> const std::string& {
    if (!p.pseudonymize) {
      same.assign(raw);
      return same;
    }
    if (pseudo_cache.size() > (1u << 22)) pseudo_cache.clear();
    auto it = pseudo_cache.find(std::string(raw));
    if (it == pseudo_cache.end()) it = pseudo_cache.emplace(std::string(raw), data::pseudonymize(key, raw)).first;
    return it->second;
  };
  auto user_out = [&](std::string_view raw) { return p.pseudonymize ? "u:" + pseudo_of(raw) : std::string(raw); };
  auto text_out = [&](std::string_view raw, std::string& buf) -> std::string_view {
    if (raw.empty() || !d.mask_pii) return raw;
    buf = data::mask_pii(raw, d.min_digit_run, nullptr);
    return buf;
  };
  // Row-level reasons of prep (the user-level ones, bot_user and too_few_events, judge a
  // user's whole history, which a campaign's logs are not), then the campaign's own.
  for (auto n : data::kRejectNames)
    if (n != data::reject_name(data::Reject::kBotUser) && n != data::reject_name(data::Reject::kTooFewEvents))
      sum.quarantine[std::string(n)] = 0;
  sum.quarantine["not_in_assignment"] = 0;
  data::TextWriter quar(out_dir / "quarantine.jsonl", false);
  auto quarantine = [&](const std::string& reason, const std::string& file, const data::Row& r,
                        std::string_view field, const std::string& detail) {
    nlohmann::json j;
    j["file"] = file;
    j["line"] = r.line;
    j["reason"] = reason;
    if (!field.empty()) j["field"] = field;
    if (!detail.empty()) j["detail"] = detail;
    if (r.have_fields) j["fields"] = data::row_fields_json(r, user_out, text_out);
    else if (d.quarantine_raw_lines) j["record"] = std::string(r.record);
    else
      j["record"] = "<withheld: the row could not be split into its fields, so its user id could not be "
                    "pseudonymized; set data.privacy.quarantine_raw_lines=true to keep raw rows>";
    quar.write(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    quar.put('\n');
    ++sum.quarantine[reason];
    ++sum.quarantined;
  };
  std::unordered_set<std::string> seen;  // exact duplicates among the counted events
  int64_t invalid = 0;
  std::set<int> warned;
  uint64_t total_bytes = 0;
  for (auto& f : files) total_bytes += uint64_t(fs::file_size(f));
  ProgressParams pp;
  pp.enabled = p.progress;
  Progress bar("campaign evaluate", total_bytes, "B", pp);
  uint64_t done_before = 0;
  data::Row r;
  std::string dkey;
  for (auto& f : files) {
    const std::string fname = f.string();
    data::RowReader rr(f, fname, rules, &warned);
    while (rr.next(r)) {
      ++sum.rows;
      if ((sum.rows & 0xffff) == 0) bar.set(done_before + uint64_t(rr.bytes_read()));
      if (!r.accepted) {
        ++invalid;
        quarantine(std::string(data::reject_name(r.reason)), fname, r, r.field, r.detail);
        continue;
      }
      ++sum.accepted;
      if (r.ts_ms < sum.start_ms) {
        ++sum.before_start;
        continue;
      }
      if (r.ts_ms >= sum.end_ms) {
        ++sum.after_window;
        continue;
      }
      const std::string& uid = pseudo_of(r.v[kUser]);
      auto it = index.find(uid);
      if (it == index.end()) {
        quarantine("not_in_assignment", fname, r, "user",
                   "the user is not in campaign '" + camp.campaign_id + "'s assignment");
        continue;
      }
      float price = r.price;
      if (std::isnan(price) && !catalogue.items.empty()) {
        auto ci = catalogue.items.find(std::string(r.v[kItem]));
        if (ci != catalogue.items.end()) price = ci->second.second;
      }
      // Exact duplicates (prep keeps the first): same user, time, type, item, price, rating, text.
      dkey.assign(uid);
      dkey.push_back('\x1f');
      dkey.append(reinterpret_cast<const char*>(&r.ts_ms), sizeof r.ts_ms);
      dkey.push_back(char(r.type));
      dkey.append(r.v[kItem]);
      dkey.push_back('\x1f');
      dkey.append(reinterpret_cast<const char*>(&price), sizeof price);
      dkey.append(reinterpret_cast<const char*>(&r.rating), sizeof r.rating);
      dkey.append(r.v[kReview]);
      if (!seen.insert(dkey).second) {
        quarantine("duplicate", fname, r, "", "exact duplicate of an earlier event (the first one is counted)");
        continue;
      }
      ++sum.in_window;
      UserOutcome& o = outcome[size_t(it->second)];
      o.active = true;
      if (r.type == data::EventType::kClick) o.clicked = true;
      if (r.type == data::EventType::kPurchase) {
        o.converted = true;
        ++o.purchases;
        if (!std::isnan(price)) {
          o.revenue += double(price);
          ++o.priced;
          sum.has_prices = true;
        }
      }
    }
    rr.finish();
    done_before += uint64_t(fs::file_size(f));
    bar.set(done_before);
  }
  bar.finish();
  quar.commit();
  if (sum.rows > 0 && double(invalid) > d.max_reject_fraction * double(sum.rows))
    throw DataError(fmt::format("campaign evaluate: {} of {} rows are invalid ({:.2f}% > "
                                "data.clean.max_reject_fraction = {:.2f}%); see {}",
                                invalid, sum.rows, 100.0 * double(invalid) / double(sum.rows),
                                100.0 * d.max_reject_fraction, (out_dir / "quarantine.jsonl").string()));

  // Groups.
  std::map<std::string, std::vector<size_t>> by_segment, by_stratum;
  std::vector<size_t> all(N);
  for (size_t i = 0; i < N; ++i) {
    all[i] = i;
    by_segment[camp.rows[i].segment.empty() ? "-" : camp.rows[i].segment].push_back(i);
    by_stratum[camp.rows[i].stratum].push_back(i);
  }
  auto evaluate_group = [&](const std::string& type, const std::string& name, const std::vector<size_t>& members) {
    GroupResult g;
    g.type = type;
    g.name = name;
    MeanAcc rt, rc;
    for (size_t i : members) {
      const UserOutcome& o = outcome[i];
      const bool t = camp.rows[i].treated;
      ArmStats& a = t ? g.t : g.c;
      ++a.users;
      a.active += o.active;
      a.participants += o.clicked;
      a.converters += o.converted;
      a.purchases += o.purchases;
      a.revenue += o.revenue;
      a.priced_purchases += o.priced;
      (t ? rt : rc).add(o.revenue);
    }
    g.participation = rate_lift(g.t.participants, g.t.users, g.c.participants, g.c.users, p.level, p.interval);
    g.conversion = rate_lift(g.t.converters, g.t.users, g.c.converters, g.c.users, p.level, p.interval);
    g.revenue = mean_lift(rt, rc, p.level);
    g.p_holm_conversion = g.conversion.p_value;
    g.p_holm_participation = g.participation.p_value;
    return g;
  };
  sum.groups.push_back(evaluate_group("overall", "all", all));
  for (auto* fam : {&by_segment, &by_stratum}) {
    const std::string type = fam == &by_segment ? "segment" : "stratum";
    const size_t first = sum.groups.size();
    for (auto& [name, m] : *fam) sum.groups.push_back(evaluate_group(type, name, m));
    std::vector<double> pc, pq;
    for (size_t i = first; i < sum.groups.size(); ++i) {
      pc.push_back(sum.groups[i].conversion.p_value);
      pq.push_back(sum.groups[i].participation.p_value);
    }
    const auto hc = holm_adjust(pc), hq = holm_adjust(pq);
    for (size_t i = first; i < sum.groups.size(); ++i) {
      sum.groups[i].p_holm_conversion = hc[i - first];
      sum.groups[i].p_holm_participation = hq[i - first];
    }
  }
  if (p.bootstrap > 0) {
    std::vector<double> ct, cc, vt, vc;
    for (size_t i = 0; i < N; ++i) {
      const bool t = camp.rows[i].treated;
      (t ? ct : cc).push_back(outcome[i].converted ? 1.0 : 0.0);
      (t ? vt : vc).push_back(outcome[i].revenue);
    }
    sum.bootstrap_conversion = bootstrap_diff(ct, cc, p.bootstrap, p.seed, p.level);
    if (sum.has_prices) sum.bootstrap_revenue = bootstrap_diff(vt, vc, p.bootstrap, mix64(p.seed, 1), p.level);
  }
  // Ranking metrics over the users with a score.
  std::vector<RankedOutcome> ranked;
  for (size_t i = 0; i < N; ++i)
    if (!std::isnan(camp.rows[i].score))
      ranked.push_back({camp.rows[i].score, camp.rows[i].treated, outcome[i].converted ? 1.0 : 0.0,
                        user_hash(0x5eed, camp.rows[i].user_id)});
  if (!ranked.empty()) {
    sum.has_scores = true;
    sort_by_score(ranked);
    for (double f : p.uplift_at) sum.uplift_at.push_back({f, uplift_at(ranked, f)});
    sum.uplift_bins = uplift_by_bin(ranked, p.uplift_bins, p.level, true);
    sum.qini = qini_curve(ranked, p.qini_points);
  } else {
    sum.has_scores = false;
  }
  sum.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // ---- Outputs ---------------------------------------------------------------------------
  const GroupResult& ov = sum.overall();
  {
    std::string csv = "arm,users,active,participants,participation_rate,converters,conversion_rate,purchases";
    if (sum.has_prices) csv += ",revenue,revenue_per_user";
    csv += "\n";
    for (int t = 1; t >= 0; --t) {
      const ArmStats& a = t ? ov.t : ov.c;
      const double n = double(std::max<int64_t>(a.users, 1));
      csv += fmt::format("{},{},{},{},{},{},{},{}", t ? "treatment" : "control", a.users, a.active, a.participants,
                         num(double(a.participants) / n), a.converters, num(double(a.converters) / n), a.purchases);
      if (sum.has_prices) csv += fmt::format(",{},{}", num(a.revenue), num(a.revenue / n));
      csv += "\n";
    }
    write_file_atomic(out_dir / "arms.csv", csv);
  }
  {
    std::string csv =
        "group_type,group,metric,n_treatment,n_control,treatment,control,abs_lift,abs_lo,abs_hi,rel_lift,rel_lo,"
        "rel_hi,p_value,p_holm,significant,incremental,incremental_lo,incremental_hi\n";
    const double alpha = 1 - p.level;
    auto rate_row = [&](const GroupResult& g, const char* metric, const RateLift& r, double holm) {
      std::string row;
      data::append_csv_field(row, g.type);
      row.push_back(',');
      data::append_csv_field(row, g.name);
      row += fmt::format(",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", metric, r.n_t, r.n_c, num(r.rate_t),
                         num(r.rate_c), num(r.abs_lift), num(r.abs_lo), num(r.abs_hi), num(r.rel_lift), num(r.rel_lo),
                         num(r.rel_hi), num(r.p_value), num(holm), r.defined && r.p_value < alpha ? 1 : 0,
                         num(r.incremental), num(r.inc_lo), num(r.inc_hi));
      return row;
    };
    for (auto& g : sum.groups) {
      csv += rate_row(g, "participation", g.participation, g.p_holm_participation);
      csv += rate_row(g, "conversion", g.conversion, g.p_holm_conversion);
      if (sum.has_prices) {
        const MeanLift& m = g.revenue;
        std::string row;
        data::append_csv_field(row, g.type);
        row.push_back(',');
        data::append_csv_field(row, g.name);
        row += fmt::format(",revenue_per_user,{},{},{},{},{},{},{},{},{},{},{},,{},{},{},{}\n", m.n_t, m.n_c,
                           num(m.mean_t), num(m.mean_c), num(m.diff), num(m.lo), num(m.hi), num(m.rel), num(m.rel_lo),
                           num(m.rel_hi), num(m.p_value), m.defined && m.p_value < alpha ? 1 : 0, num(m.incremental),
                           num(m.inc_lo), num(m.inc_hi));
        csv += row;
      }
    }
    write_file_atomic(out_dir / "lift.csv", csv);
  }
  {
    // Per-user outcomes (pseudonymous ids, as in the assignment): what `campaign uplift` learns from.
    std::string csv = "user_id,arm,segment,score,active,clicked,converted,purchases,revenue\n";
    csv.reserve(N * 64);
    for (size_t i = 0; i < N; ++i) {
      const Assignment& a = camp.rows[i];
      const UserOutcome& o = outcome[i];
      data::append_csv_field(csv, a.user_id);
      csv += a.treated ? ",treatment," : ",control,";
      data::append_csv_field(csv, a.segment);
      csv += fmt::format(",{},{},{},{},{},{}\n", num(a.score), o.active ? 1 : 0, o.clicked ? 1 : 0,
                         o.converted ? 1 : 0, o.purchases, num(o.revenue));
    }
    write_file_atomic(out_dir / "outcomes.csv", csv);
  }
  if (sum.has_scores) {
    std::string csv = "bin,n_treatment,n_control,conversion_treatment,conversion_control,uplift,uplift_lo,uplift_hi\n";
    for (auto& b : sum.uplift_bins)
      csv += fmt::format("{},{},{},{},{},{},{},{}\n", b.bin, b.n_t, b.n_c, num(b.rate_t), num(b.rate_c), num(b.uplift),
                         num(b.lo), num(b.hi));
    write_file_atomic(out_dir / "uplift_deciles.csv", csv);
    csv = "fraction,users,qini,random\n";
    for (auto& q : sum.qini.points) csv += fmt::format("{},{},{},{}\n", num(q.fraction), q.users, num(q.qini), num(q.random));
    write_file_atomic(out_dir / "qini.csv", csv);
    csv = "fraction,uplift\n";
    for (auto& [f, u] : sum.uplift_at) csv += fmt::format("{},{}\n", num(f), num(u));
    write_file_atomic(out_dir / "uplift_at_k.csv", csv);
  }
  nlohmann::json j;
  j["format"] = "portrait-campaign-evaluation";
  j["format_version"] = 1;
  j["campaign_id"] = sum.campaign_id;
  j["campaign_dir"] = p.campaign_dir;
  j["window"] = {{"start", data::format_iso8601(sum.start_ms / 1000)},
                 {"end", data::format_iso8601(sum.end_ms / 1000)},
                 {"attribution_days", p.attribution_days}};
  j["methods"] = {
      {"level", p.level},
      {"rates", p.interval == "wald"
                    ? "absolute lift p_t - p_c with the Wald interval; relative lift p_t/p_c - 1 with the Katz log "
                      "interval; two-sided pooled two-proportion z-test"
                    : "absolute lift p_t - p_c with the Newcombe hybrid score interval (method 10, from Wilson "
                      "intervals); relative lift p_t/p_c - 1 with the Katz log interval; two-sided pooled "
                      "two-proportion z-test"},
      {"revenue_per_user", "difference of means with the Welch normal interval; z-test"},
      {"multiple_testing", "p_holm: Holm step-down over the segments (and over the strata) of one metric"},
      {"bootstrap", p.bootstrap > 0 ? fmt::format("percentile, {} resamples per arm, seed {}", p.bootstrap, p.seed)
                                    : std::string("off")},
      {"participation", "a click in the window"},
      {"conversion", "a purchase in the window (the attribution window)"},
      {"qini", "Q(k) = Y_t(k) - Y_c(k) N_t(k)/N_c(k) over users sorted by the plan's score; area between the "
               "curve and random targeting over the fraction targeted"},
      {"uplift_at_k", "conversion of treated minus control among the top k fraction by score"}};
  j["inputs"] = nlohmann::json::array();
  for (auto& f : files) j["inputs"].push_back(f.string());
  j["rows"] = {{"read", sum.rows},
               {"accepted", sum.accepted},
               {"counted", sum.in_window},
               {"before_start", sum.before_start},
               {"after_window", sum.after_window},
               {"quarantined", sum.quarantined}};
  nlohmann::json qj = nlohmann::json::object();
  for (auto& [k, n] : sum.quarantine) qj[k] = n;
  j["quarantine"] = qj;
  j["arms"] = {{"treatment", arm_json(ov.t, sum.has_prices)}, {"control", arm_json(ov.c, sum.has_prices)}};
  auto group_json = [&](const GroupResult& g) {
    nlohmann::json o = {{"type", g.type},
                        {"name", g.name},
                        {"treatment", arm_json(g.t, sum.has_prices)},
                        {"control", arm_json(g.c, sum.has_prices)},
                        {"participation", rate_json(g.participation)},
                        {"conversion", rate_json(g.conversion)}};
    o["participation"]["p_holm"] = jnum(g.p_holm_participation);
    o["conversion"]["p_holm"] = jnum(g.p_holm_conversion);
    if (sum.has_prices) o["revenue_per_user"] = mean_json(g.revenue);
    return o;
  };
  j["overall"] = group_json(ov);
  if (p.bootstrap > 0) {
    j["overall"]["conversion"]["bootstrap_ci"] = {jnum(sum.bootstrap_conversion.lo), jnum(sum.bootstrap_conversion.hi)};
    if (sum.has_prices)
      j["overall"]["revenue_per_user"]["bootstrap_ci"] = {jnum(sum.bootstrap_revenue.lo),
                                                         jnum(sum.bootstrap_revenue.hi)};
  }
  j["segments"] = nlohmann::json::array();
  j["strata"] = nlohmann::json::array();
  for (size_t i = 1; i < sum.groups.size(); ++i)
    j[sum.groups[i].type == "segment" ? "segments" : "strata"].push_back(group_json(sum.groups[i]));
  if (sum.has_scores) {
    nlohmann::json u = nlohmann::json::array();
    for (auto& [f, v] : sum.uplift_at) u.push_back({{"fraction", f}, {"uplift", jnum(v)}});
    j["uplift_at_k"] = u;
    nlohmann::json b = nlohmann::json::array();
    for (auto& x : sum.uplift_bins)
      b.push_back({{"bin", x.bin}, {"n_treatment", x.n_t}, {"n_control", x.n_c}, {"treatment", jnum(x.rate_t)},
                   {"control", jnum(x.rate_c)}, {"uplift", jnum(x.uplift)}, {"ci", {jnum(x.lo), jnum(x.hi)}}});
    j["uplift_by_decile"] = b;
    j["qini"] = {{"area", sum.qini.area}, {"area_per_user", sum.qini.area_per_user},
                 {"incremental_at_all", sum.qini.points.empty() ? 0.0 : sum.qini.points.back().qini}};
  }
  j["wall_s"] = sum.wall_s;
  if (!p.config_yaml.empty()) j["config_yaml"] = p.config_yaml;
  write_file_atomic(out_dir / "evaluation.json", j.dump(2) + "\n");
  PLOG_INFO("campaign '{}': conversion {:.4f} (treatment) vs {:.4f} (control), lift {:+.4f} [{:+.4f}, {:+.4f}], "
            "p = {:.3g}; {} rows quarantined -> {}",
            sum.campaign_id, ov.conversion.rate_t, ov.conversion.rate_c, ov.conversion.abs_lift, ov.conversion.abs_lo,
            ov.conversion.abs_hi, ov.conversion.p_value, sum.quarantined, out_dir.string());
  return sum;
}

}  // namespace portrait::campaign
