#include "campaign/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <unordered_set>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/io.h"
#include "data/rows.h"
#include "data/text.h"

namespace portrait::campaign {

namespace fs = std::filesystem;

namespace {

bool valid_campaign_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (unsigned char c : id)
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  return data::format_iso8601(int64_t(t));
}

std::string fmt_score(double s) { return std::isnan(s) ? std::string() : fmt::format("{}", s); }

void check_params(const PlanParams& p) {
  if (!valid_campaign_id(p.campaign_id))
    throw ConfigError("config key 'campaign.id' = '" + data::snippet(p.campaign_id, 64) +
                      "' must be 1-128 characters of letters, digits, '.', '_' or '-'");
  if (p.dir.empty()) throw ConfigError("config key 'campaign.dir' must be set");
  if (!(p.control_fraction > 0 && p.control_fraction < 1))
    throw ConfigError(fmt::format("config key 'campaign.plan.control_fraction' = {} must be in (0, 1)",
                                  p.control_fraction));
  if (p.targeting != "top_score" && p.targeting != "random" && p.targeting != "segment")
    throw ConfigError("config key 'campaign.plan.targeting' = '" + p.targeting +
                      "' must be top_score, random or segment");
  if (p.targeting == "segment" && p.segments.empty())
    throw ConfigError("campaign.plan.targeting=segment needs campaign.plan.segments (the segments to reach)");
  if (p.score_bins < 1 || p.score_bins > 1000)
    throw ConfigError("config key 'campaign.plan.score_bins' must be in [1, 1000]");
  if (p.budget_users < 0 || p.budget_cost < 0 || !(p.cost_per_user > 0))
    throw ConfigError("campaign.plan budget: budget_users and budget_cost must be >= 0, cost_per_user > 0");
  if (p.budget_users > 0 && p.budget_cost > 0)
    throw ConfigError("set one of campaign.plan.budget_users and campaign.plan.budget_cost, not both");
  int64_t ms;
  if (p.start.empty() || !data::parse_timestamp_ms(p.start, ms))
    throw ConfigError("config key 'campaign.start' = '" + data::snippet(p.start, 64) +
                      "' must be the campaign's planned start (ISO-8601 like 2024-06-01 or unix seconds)");
}

/// Splits one CSV record; DataError naming file and line on failure.
void split_or_throw(std::string_view rec, char sep, std::vector<std::string_view>& f, std::vector<std::string>& scratch,
                    const std::string& file, int64_t line, size_t want) {
  if (!data::split_csv(rec, sep, f, scratch) || (want && f.size() != want))
    throw DataError(fmt::format("{} line {}: malformed row ({} fields, header has {})", file, line, f.size(), want));
}

}  // namespace

uint64_t user_hash(uint64_t seed, std::string_view id) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then mixed with the seed
  for (unsigned char c : id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return mix64(seed, h);
}

PlanParams plan_params_from_config(const cfg::Node& root) {
  PlanParams p;
  cfg::Section c(root, "campaign");
  c.read("id", p.campaign_id);
  c.read("dir", p.dir);
  c.read("start", p.start);
  int64_t seed = int64_t(p.seed);
  c.read("seed", seed, int64_t{0});
  p.seed = uint64_t(seed);
  {
    cfg::Section s = c.sub("plan");
    s.read("input", p.input);
    s.read("score_name", p.score_name);
    s.read_enum("targeting", p.targeting, {"top_score", "random", "segment"});
    s.read("segments", p.segments);
    s.read("budget_users", p.budget_users, int64_t{0});
    s.read("budget_cost", p.budget_cost, 0.0);
    s.read("cost_per_user", p.cost_per_user, 1e-12);
    s.read("control_fraction", p.control_fraction, 0.0, 1.0);
    s.read("stratify_segment", p.stratify_segment);
    s.read("score_bins", p.score_bins, 1, 1000);
    // The CLI's own keys (input columns, scores file target) are read by it.
    for (const char* k : {"input_columns", "target", "segments_file"}) s.ignore(k);
    s.finish();
  }
  for (const char* k : {"evaluate", "simulate", "uplift"}) c.ignore(k);
  c.finish();
  check_params(p);
  return p;
}

Plan make_plan(const PlanParams& p, std::vector<ScoredUser> users) {
  check_params(p);
  Plan plan;
  plan.campaign_id = p.campaign_id;
  data::parse_timestamp_ms(p.start, plan.start_ms);
  plan.planned_start = data::format_iso8601(plan.start_ms / 1000);
  // 1. Eligible users, in id order (the plan must not depend on the input order).
  std::sort(users.begin(), users.end(), [](const ScoredUser& a, const ScoredUser& b) { return a.id < b.id; });
  for (size_t i = 0; i < users.size(); ++i) {
    if (users[i].id.empty()) throw DataError("scored users: an empty user id");
    for (const std::string* t : {&users[i].id, &users[i].segment})
      if (t->find_first_of("\r\n") != std::string::npos)
        throw DataError("scored users: user id or segment '" + data::snippet(*t, 64) + "' holds a line break");
    if (i && users[i].id == users[i - 1].id)
      throw DataError("scored users: user id '" + data::snippet(users[i].id, 64) +
                      "' appears twice; each user may be planned once");
  }
  if (!p.segments.empty()) {
    const std::set<std::string> keep(p.segments.begin(), p.segments.end());
    std::set<std::string> seen;
    users.erase(std::remove_if(users.begin(), users.end(),
                               [&](const ScoredUser& u) {
                                 if (!keep.count(u.segment)) return true;
                                 seen.insert(u.segment);
                                 return false;
                               }),
                users.end());
    for (auto& s : keep)
      if (!seen.count(s)) PLOG_WARN("campaign plan: segment '{}' of campaign.plan.segments has no user", s);
  }
  plan.eligible = int64_t(users.size());
  for (auto& u : users)
    if (!std::isnan(u.score)) plan.has_scores = true;
  if (p.targeting == "top_score" && !plan.has_scores)
    throw DataError("campaign.plan.targeting=top_score needs scores, but no eligible user has one");
  // 2. Targeting order and audience size.
  const uint64_t pick_seed = mix64(p.seed, 1), arm_seed = mix64(p.seed, 2);
  std::vector<uint64_t> pick_hash(users.size());
  for (size_t i = 0; i < users.size(); ++i) pick_hash[i] = user_hash(pick_seed, users[i].id);
  std::vector<size_t> order(users.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (p.targeting == "top_score") {
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const double sa = std::isnan(users[a].score) ? -INFINITY : users[a].score;
      const double sb = std::isnan(users[b].score) ? -INFINITY : users[b].score;
      if (sa != sb) return sa > sb;
      if (pick_hash[a] != pick_hash[b]) return pick_hash[a] < pick_hash[b];
      return a < b;
    });
  } else {
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (pick_hash[a] != pick_hash[b]) return pick_hash[a] < pick_hash[b];
      return a < b;
    });
  }
  int64_t treated_budget = p.budget_users;
  if (p.budget_cost > 0) treated_budget = int64_t(std::floor(p.budget_cost / p.cost_per_user + 1e-9));
  int64_t A = plan.eligible;
  if (treated_budget > 0)
    A = std::min<int64_t>(A, int64_t(std::ceil(double(treated_budget) / (1 - p.control_fraction) - 1e-9)));
  order.resize(size_t(A));
  if (A == 0) throw DataError("campaign plan: no eligible user (check campaign.plan.segments and the input)");
  // The control group's size is fixed first, so the treated arm never exceeds the budget: the
  // rest of the audience when the budget binds, else the rounded fraction.
  const int64_t control_total = treated_budget > 0 && A > treated_budget
                                    ? A - treated_budget
                                    : std::llround(double(A) * p.control_fraction);
  const double fraction = double(control_total) / double(A);
  // 3. Strata: segment x score bin (by score rank inside the audience).
  std::vector<Assignment> rows(static_cast<size_t>(A));
  {
    std::vector<size_t> by_score;  // audience positions with a score, best first
    for (size_t k = 0; k < order.size(); ++k)
      if (!std::isnan(users[order[k]].score)) by_score.push_back(k);
    std::stable_sort(by_score.begin(), by_score.end(), [&](size_t a, size_t b) {
      const double sa = users[order[a]].score, sb = users[order[b]].score;
      if (sa != sb) return sa > sb;
      return pick_hash[order[a]] < pick_hash[order[b]];
    });
    for (size_t r = 0; r < by_score.size(); ++r)
      rows[by_score[r]].score_bin = 1 + int(r * size_t(p.score_bins) / by_score.size());
  }
  std::map<std::string, std::vector<size_t>> strata;
  for (size_t k = 0; k < order.size(); ++k) {
    const ScoredUser& u = users[order[k]];
    Assignment& a = rows[k];
    a.user_id = u.id;
    a.segment = u.segment;
    a.score = u.score;
    a.rank = int64_t(k) + 1;
    const std::string seg = !p.stratify_segment ? "*" : (u.segment.empty() ? "-" : u.segment);
    a.stratum = fmt::format("{}/b{:02d}", seg, a.score_bin);
    strata[a.stratum].push_back(k);
  }
  // 4. Control group: systematic allocation over the strata, seeded order inside each.
  Rng ur(mix64(p.seed, 3));
  const double u0 = ur.uniform();
  double cum = 0;
  int64_t prev = int64_t(std::floor(u0));
  for (auto& [name, members] : strata) {
    cum += double(members.size()) * fraction;
    const int64_t now = int64_t(std::floor(cum + u0 + 1e-9));
    const int64_t c = std::clamp<int64_t>(now - prev, 0, int64_t(members.size()));
    prev = now;
    std::vector<std::pair<uint64_t, size_t>> o;
    o.reserve(members.size());
    for (size_t k : members) o.push_back({user_hash(arm_seed, rows[k].user_id), k});
    std::sort(o.begin(), o.end(), [&](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      return rows[a.second].user_id < rows[b.second].user_id;
    });
    StratumCount& sc = plan.strata[name];
    for (size_t i = 0; i < o.size(); ++i) {
      const bool treated = int64_t(i) >= c;
      rows[o[i].second].treated = treated;
      (treated ? sc.treatment : sc.control)++;
      (treated ? plan.treatment : plan.control)++;
    }
  }
  plan.rows = std::move(rows);
  return plan;
}

std::string assignment_csv(const Plan& plan) {
  std::string out = "user_id,arm,stratum,segment,score_bin,score,rank,planned_start\n";
  for (const Assignment& a : plan.rows) {
    data::append_csv_field(out, a.user_id);
    out += a.treated ? ",treatment," : ",control,";
    data::append_csv_field(out, a.stratum);
    out.push_back(',');
    data::append_csv_field(out, a.segment);
    out += fmt::format(",{},{},{},{}\n", a.score_bin, fmt_score(a.score), a.rank, plan.planned_start);
  }
  return out;
}

std::string activation_csv(const Plan& plan) {
  std::string out = "user_id,segment,score\n";
  for (const Assignment& a : plan.rows) {
    if (!a.treated) continue;
    data::append_csv_field(out, a.user_id);
    out.push_back(',');
    data::append_csv_field(out, a.segment);
    out += "," + fmt_score(a.score) + "\n";
  }
  return out;
}

PlanResult run_plan(const PlanParams& p, std::vector<ScoredUser> users, const std::string& input_sha256) {
  check_params(p);
  PlanResult res;
  res.dir = p.dir;
  const fs::path dir(p.dir);
  DirLock lock(dir, "campaign.dir");
  if (!p.input.empty())
    for (const char* n : {"assignment.csv", "activation.csv", "campaign.json"})
      check_output_not_input(dir / n, std::string("campaign.dir's ") + n, {{"campaign.plan.input", p.input}});
  res.plan = make_plan(p, std::move(users));
  const Plan& plan = res.plan;
  const std::string a_csv = assignment_csv(plan), act_csv = activation_csv(plan);
  const std::string a_sha = sha256_hex(a_csv), act_sha = sha256_hex(act_csv);
  const fs::path meta = dir / "campaign.json";
  if (fs::exists(meta)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(meta));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(meta.string() + " is not valid JSON (" + e.what() + "); it is not a campaign directory");
    }
    if (j.value("format", "") != kAssignmentFormat)
      throw DataError(meta.string() + " is not a Portrait campaign (format '" + j.value("format", "") + "')");
    const std::string other = j.value("campaign_id", "");
    if (other != p.campaign_id)
      throw DataError(fmt::format("campaign directory {} holds campaign '{}', not '{}'; give each campaign its "
                                  "own campaign.dir",
                                  dir.string(), other, p.campaign_id));
    if (j.value("assignment_sha256", "") == a_sha && j.value("activation_sha256", "") == act_sha) {
      if (!fs::exists(dir / "assignment.csv") || sha256_file(dir / "assignment.csv") != a_sha)
        throw DataError(fmt::format("campaign '{}': {} differs from the plan sealed in campaign.json (edited or "
                                    "damaged); restore it, the arms cannot be re-drawn",
                                    p.campaign_id, (dir / "assignment.csv").string()));
      PLOG_INFO("campaign '{}' is already planned with this identical assignment in {}; nothing rewritten",
                p.campaign_id, dir.string());
      res.unchanged = true;
      return res;
    }
    throw DataError(fmt::format(
        "campaign '{}' was already planned in {} (on {}, seed {}); a campaign's arms are never re-drawn, and this "
        "plan differs ({} vs {} users, seed {}). Plan a new campaign id, or delete the directory to discard the "
        "old plan.",
        p.campaign_id, dir.string(), j.value("created_utc", "?"), j.value("seed", uint64_t(0)),
        plan.rows.size(), j.value("audience", int64_t(0)), p.seed));
  }
  // Not sealed: a plan interrupted before campaign.json (or a fresh directory). Rewrite.
  write_file_atomic(dir / "assignment.csv", a_csv);
  write_file_atomic(dir / "activation.csv", act_csv);
  nlohmann::json j;
  j["format"] = kAssignmentFormat;
  j["format_version"] = kAssignmentFormatVersion;
  j["campaign_id"] = p.campaign_id;
  j["planned_start"] = plan.planned_start;
  j["created_utc"] = utc_now();
  j["seed"] = p.seed;
  j["targeting"] = p.targeting;
  j["segments"] = p.segments;
  j["budget_users"] = p.budget_users;
  j["budget_cost"] = p.budget_cost;
  j["cost_per_user"] = p.cost_per_user;
  j["control_fraction"] = p.control_fraction;
  j["stratify_segment"] = p.stratify_segment;
  j["score_bins"] = p.score_bins;
  j["score_name"] = p.score_name;
  j["has_scores"] = plan.has_scores;
  j["input"] = {{"path", p.input}, {"sha256", input_sha256}};
  j["eligible"] = plan.eligible;
  j["audience"] = int64_t(plan.rows.size());
  j["treatment"] = plan.treatment;
  j["control"] = plan.control;
  nlohmann::json st = nlohmann::json::object();
  for (auto& [name, c] : plan.strata) st[name] = {{"treatment", c.treatment}, {"control", c.control}};
  j["strata"] = std::move(st);
  j["assignment_sha256"] = a_sha;
  j["activation_sha256"] = act_sha;
  write_file_atomic(meta, j.dump(2) + "\n");
  fsync_dir(dir);
  PLOG_INFO("campaign '{}': {} users ({} treatment, {} control) in {} strata -> {}", p.campaign_id, plan.rows.size(),
            plan.treatment, plan.control, plan.strata.size(), dir.string());
  return res;
}

std::vector<ScoredUser> read_scored_users(const fs::path& file, const std::string& user_col,
                                          const std::string& score_col, const std::string& segment_col) {
  const std::string fmt_name = data::input_format(file, "auto");
  if (fmt_name == "jsonl")
    throw DataError("scored users '" + file.string() + "': JSON Lines is not read here; give a CSV or TSV file");
  const char sep = fmt_name == "tsv" ? '\t' : ',';
  data::RecordReader rr(file, true);
  std::string_view rec;
  int64_t line;
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  if (!rr.next(rec, line)) throw DataError("scored users '" + file.string() + "' is empty (expected a header)");
  split_or_throw(rec, sep, f, scratch, file.string(), line, 0);
  std::vector<std::string> header(f.begin(), f.end());
  if (!header.empty() && header[0].rfind("\xEF\xBB\xBF", 0) == 0) header[0] = header[0].substr(3);
  auto col = [&](const std::string& name, bool required) -> int {
    if (name.empty()) return -1;
    auto it = std::find(header.begin(), header.end(), name);
    if (it != header.end()) return int(it - header.begin());
    if (required) {
      const std::string hint = cfg::did_you_mean(name, header);
      throw DataError("scored users '" + file.string() + "' line 1: no column '" + name + "'" +
                      (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
    }
    return -1;
  };
  const int cu = col(user_col, true), cs = col(score_col, false), cg = col(segment_col, false);
  std::vector<ScoredUser> out;
  while (rr.next(rec, line)) {
    if (rec.empty() || rec == "\r") continue;
    split_or_throw(rec, sep, f, scratch, file.string(), line, header.size());
    ScoredUser u;
    u.id = std::string(f[size_t(cu)]);
    if (u.id.empty()) throw DataError(fmt::format("{} line {}: empty user id", file.string(), line));
    if (cs >= 0 && !f[size_t(cs)].empty()) {
      double x;
      if (!data::parse_double(f[size_t(cs)], x))
        throw DataError(fmt::format("{} line {}: score '{}' is not a finite number", file.string(), line,
                                    data::snippet(f[size_t(cs)], 64)));
      u.score = x;
    }
    if (cg >= 0) u.segment = std::string(f[size_t(cg)]);
    out.push_back(std::move(u));
  }
  return out;
}

LoadedCampaign load_campaign(const fs::path& dir) {
  LoadedCampaign c;
  const fs::path meta = dir / "campaign.json", csv = dir / "assignment.csv";
  if (!fs::exists(meta))
    throw DataError("campaign directory " + dir.string() +
                    " has no campaign.json: not a sealed campaign plan (run `portrait campaign plan`)");
  c.json = read_file(meta);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(c.json);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(meta.string() + " is not valid JSON: " + e.what());
  }
  if (j.value("format", "") != kAssignmentFormat)
    throw DataError(meta.string() + ": format '" + j.value("format", "") + "' is not " + kAssignmentFormat);
  if (j.value("format_version", 0) != kAssignmentFormatVersion)
    throw DataError(fmt::format("{}: format_version {} is not {} (written by another Portrait version)", meta.string(),
                                j.value("format_version", 0), kAssignmentFormatVersion));
  c.campaign_id = j.value("campaign_id", "");
  c.planned_start = j.value("planned_start", "");
  c.has_scores = j.value("has_scores", false);
  if (!data::parse_timestamp_ms(c.planned_start, c.start_ms))
    throw DataError(meta.string() + ": planned_start '" + c.planned_start + "' is not a timestamp");
  const std::string text = read_file(csv);
  if (sha256_hex(text) != j.value("assignment_sha256", ""))
    throw DataError(csv.string() + " does not match the sha256 recorded in campaign.json (edited or damaged)");
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  size_t pos = 0;
  int64_t line = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string::npos) e = text.size();
    const std::string_view rec(text.data() + pos, e - pos);
    pos = e + 1;
    ++line;
    if (line == 1) continue;  // header
    split_or_throw(rec, ',', f, scratch, csv.string(), line, 8);
    Assignment a;
    a.user_id = std::string(f[0]);
    a.treated = f[1] == "treatment";
    if (!a.treated && f[1] != "control")
      throw DataError(fmt::format("{} line {}: arm '{}' is not treatment or control", csv.string(), line, f[1]));
    a.stratum = std::string(f[2]);
    a.segment = std::string(f[3]);
    a.score_bin = std::atoi(std::string(f[4]).c_str());
    double x;
    a.score = !f[5].empty() && data::parse_double(f[5], x) ? x : NAN;
    a.rank = std::atoll(std::string(f[6]).c_str());
    c.rows.push_back(std::move(a));
  }
  return c;
}

}  // namespace portrait::campaign
