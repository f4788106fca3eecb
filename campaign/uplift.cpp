#include "campaign/uplift.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "campaign/plan.h"
#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/io.h"
#include "data/rows.h"
#include "data/text.h"

namespace portrait::campaign {

namespace {

namespace stdfs = std::filesystem;

/// A small CSV/TSV table: header + rows of fields, read whole (outcomes, truth, features).
struct Table {
  std::string file;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> lines;

  int col(const std::string& name, bool required) const {
    auto it = std::find(header.begin(), header.end(), name);
    if (it != header.end()) return int(it - header.begin());
    if (required) {
      const std::string hint = cfg::did_you_mean(name, header);
      throw DataError(fmt::format("{} line 1: no column '{}'{}", file, name, hint.empty() ? "" : "; did you mean '" + hint + "'?"));
    }
    return -1;
  }
  double number(size_t r, int c, const char* what) const {
    double v;
    if (!data::parse_double(rows[r][size_t(c)], v))
      throw DataError(fmt::format("{} line {}: {} '{}' (column '{}') is not a finite number", file, lines[r], what,
                                  data::snippet(rows[r][size_t(c)], 64), header[size_t(c)]));
    return v;
  }
};

Table read_table(const stdfs::path& path, const char* what) {
  if (!stdfs::exists(path)) throw DataError(fmt::format("{} '{}' does not exist", what, path.string()));
  const std::string fmt_name = data::input_format(path, "auto");
  if (fmt_name == "jsonl") throw DataError(fmt::format("{} '{}': give a CSV or TSV file", what, path.string()));
  const char sep = fmt_name == "tsv" ? '\t' : ',';
  Table t;
  t.file = path.string();
  data::RecordReader rr(path, true);
  std::string_view rec;
  int64_t line;
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  if (!rr.next(rec, line)) throw DataError(fmt::format("{} '{}' is empty (expected a header)", what, t.file));
  if (!data::split_csv(rec, sep, f, scratch)) throw DataError(fmt::format("{} line 1: malformed header", t.file));
  t.header.assign(f.begin(), f.end());
  if (!t.header.empty() && t.header[0].rfind("\xEF\xBB\xBF", 0) == 0) t.header[0] = t.header[0].substr(3);
  while (rr.next(rec, line)) {
    if (rec.empty() || rec == "\r") continue;
    if (!data::split_csv(rec, sep, f, scratch) || f.size() != t.header.size())
      throw DataError(fmt::format("{} line {}: malformed row ({} fields, header has {})", t.file, line, f.size(),
                                  t.header.size()));
    t.rows.emplace_back(f.begin(), f.end());
    t.lines.push_back(line);
  }
  return t;
}

/// One held-out user in a ranking's order.
struct Held {
  bool treated;
  double y, effect;  ///< effect: truth (NaN without a truth file)
};

struct RankMetrics {
  double area = 0, incremental = 0;
};

// Qini area (campaign/stats.h's grid and formula) and incremental outcomes among the top
// `budget` fraction (their uplift times their count), with per-user weights (1 = the point
// estimate; Poisson(1) draws = one bootstrap resample).
RankMetrics rank_metrics(const std::vector<Held>& order, const std::vector<double>& w, int points, double budget) {
  const size_t N = order.size();
  RankMetrics m;
  if (N == 0) return m;
  std::vector<double> at_rank(N + 1, 0.0);
  double yt = 0, yc = 0, nt = 0, nc = 0;
  const size_t nb = std::max<size_t>(1, size_t(std::llround(budget * double(N))));
  for (size_t i = 0; i < N; ++i) {
    const double wi = w.empty() ? 1.0 : w[i];
    if (order[i].treated) {
      nt += wi;
      yt += wi * order[i].y;
    } else {
      nc += wi;
      yc += wi * order[i].y;
    }
    at_rank[i + 1] = nc > 0 ? yt - yc * nt / nc : yt;
    if (i + 1 == nb) m.incremental = (nt > 0 && nc > 0) ? (yt / nt - yc / nc) * (nt + nc) : NAN;
  }
  const double total = at_rank[N];
  double pf = 0, pq = 0;
  for (int k = 1; k <= points; ++k) {
    const size_t n = std::min(N, size_t(std::llround(double(k) * double(N) / double(points))));
    const double f = double(n) / double(N), q = at_rank[n] - f * total;
    m.area += 0.5 * (f - pf) * (pq + q);
    pf = f;
    pq = q;
  }
  return m;
}

double percentile(std::vector<double> v, double q) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t i = size_t(pos);
  return i + 1 < v.size() ? v[i] + (pos - double(i)) * (v[i + 1] - v[i]) : v[i];
}

// Poisson(1) draw (Knuth): the per-user weight of one bootstrap resample.
int poisson1(Rng& r) {
  const double L = std::exp(-1.0);
  int k = 0;
  double p = 1;
  do {
    ++k;
    p *= r.uniform();
  } while (p > L);
  return k - 1;
}

nlohmann::json model_json(const LogisticModel& m) {
  return {{"dim", m.dim}, {"mean", m.mean}, {"sd", m.sd}, {"w", m.w}, {"b", m.b},
          {"iterations", m.iterations}, {"converged", m.converged}};
}

std::string num(double x) { return std::isnan(x) ? std::string() : fmt::format("{:.10g}", x); }

/// One audience user with features: assignment row, feature row, held out or not.
struct AudienceUser {
  size_t a, f;
  bool held;
};

/// The state of one `campaign uplift` run, filled step by step by run_uplift.
struct UpliftRun {
  const UpliftParams& p;
  const Features& feats;
  UpliftSummary& sum;
  const LoadedCampaign camp;
  const size_t D;
  std::vector<double> y;                            ///< [assigned] outcome
  std::unordered_map<std::string, double> truth;   ///< user -> true effect (truth file)
  std::vector<AudienceUser> users;
  std::vector<std::string> names;                   ///< learners, then propensity, random
  std::vector<std::vector<Held>> orders;            ///< [ranking][rank] held-out outcomes
  std::vector<std::vector<size_t>> pos;             ///< [ranking][rank] held-out user index
  size_t H = 0, nb = 0;                             ///< held-out users; of them in the budget

  using U = AudienceUser;
  UpliftRun(const UpliftParams& params, const Features& f, UpliftSummary& s)
      : p(params), feats(f), sum(s), camp(load_campaign(params.campaign_dir)), D(size_t(f.dim)) {}

  double predict(const std::string& learner, const float* x) const {
    if (learner == "t_learner") return sum.models.at("t_learner/treatment").predict(x) - sum.models.at("t_learner/control").predict(x);
    return 2.0 * sum.models.at("class_transformation").predict(x) - 1.0;
  }

  void read_outcomes(const stdfs::path& outcomes_path) {
    // Outcomes of the assigned users (evaluate's file must belong to this campaign).
    const Table oc = read_table(outcomes_path, "campaign.uplift.outcomes");
    const int c_user = oc.col("user_id", true), c_arm = oc.col("arm", true), c_y = oc.col(p.outcome, true);
    std::unordered_map<std::string, size_t> arow;
    for (size_t i = 0; i < camp.rows.size(); ++i) arow.emplace(camp.rows[i].user_id, i);
    y.assign(camp.rows.size(), NAN);
    for (size_t r = 0; r < oc.rows.size(); ++r) {
      auto it = arow.find(oc.rows[r][size_t(c_user)]);
      const bool treated = oc.rows[r][size_t(c_arm)] == "treatment";
      if (it == arow.end() || camp.rows[it->second].treated != treated)
        throw DataError(fmt::format("{} line {}: user or arm not in campaign '{}' ({}): outcomes.csv must come from "
                                    "`campaign evaluate` of this campaign",
                                    oc.file, oc.lines[r], camp.campaign_id, p.campaign_dir));
      y[it->second] = oc.number(r, c_y, p.outcome.c_str());
    }
    for (size_t i = 0; i < y.size(); ++i)
      if (std::isnan(y[i]))
        throw DataError(fmt::format("{}: assigned user #{} of campaign '{}' has no outcome row: outcomes.csv must come "
                                    "from `campaign evaluate` of this campaign",
                                    oc.file, i + 1, camp.campaign_id));
  }

  void read_truth() {
    if (!p.truth.empty()) {
      const Table tt = read_table(p.truth, "campaign.uplift.truth");
      const int tu = tt.col("user_id", true), te = tt.col("effect", true);
      for (size_t r = 0; r < tt.rows.size(); ++r) truth[tt.rows[r][size_t(tu)]] = tt.number(r, te, "effect");
    }

  }

  void select_users() {
    // Audience users with features.
    std::unordered_map<std::string, size_t> frow;
    frow.reserve(feats.ids.size() * 2);
    for (size_t i = 0; i < feats.ids.size(); ++i) frow.emplace(feats.ids[i], i);
    const uint64_t split_seed = mix64(p.seed, 0x0b1f7);
    for (size_t i = 0; i < camp.rows.size(); ++i) {
      auto it = frow.find(camp.rows[i].user_id);
      if (it == frow.end()) continue;
      const double u = double(user_hash(split_seed, camp.rows[i].user_id) >> 11) * 0x1.0p-53;
      users.push_back({i, it->second, u < p.holdout});
    }
    sum.audience = int64_t(camp.rows.size());
    sum.with_features = int64_t(users.size());
    const double missing = 1.0 - double(users.size()) / double(std::max<size_t>(1, camp.rows.size()));
    if (missing > p.max_missing_fraction)
      throw DataError(fmt::format("{:.1f}% of campaign '{}''s audience has no features in {} (campaign.uplift.max_missing_"
                                  "fraction = {}): features and campaign must describe the same pseudonymous users",
                                  100 * missing, camp.campaign_id, feats.source, p.max_missing_fraction));
    if (missing > 0) PLOG_WARN("campaign uplift: {} audience users have no features and are skipped", camp.rows.size() - users.size());

  }

  void fit() {
    // Fit on the training part.
    std::vector<float> xt, xc, xa;
    std::vector<double> yt, yc, za, wa;
    int64_t n_t = 0, n_c = 0;
    for (const U& u : users) {
      if (u.held) continue;
      (camp.rows[u.a].treated ? n_t : n_c)++;
    }
    if (n_t == 0 || n_c == 0) throw DataError("campaign uplift: the training part needs users of both arms");
    const double pt = double(n_t) / double(n_t + n_c);
    for (const U& u : users) {
      if (u.held) continue;
      const float* x = &feats.x[u.f * D];
      const bool t = camp.rows[u.a].treated;
      const double yy = y[u.a] > 0 ? 1.0 : 0.0;
      (t ? xt : xc).insert((t ? xt : xc).end(), x, x + D);
      (t ? yt : yc).push_back(yy);
      xa.insert(xa.end(), x, x + D);
      za.push_back(t ? yy : 1.0 - yy);
      wa.push_back(t ? 0.5 / pt : 0.5 / (1.0 - pt));
    }
    sum.train_users = n_t + n_c;
    auto has = [&](const char* l) { return std::find(p.learners.begin(), p.learners.end(), l) != p.learners.end(); };
    if (has("t_learner")) {
      sum.models["t_learner/treatment"] = fit_logistic(xt, feats.dim, yt, {}, p.logistic);
      sum.models["t_learner/control"] = fit_logistic(xc, feats.dim, yc, {}, p.logistic);
    }
    if (has("class_transformation")) sum.models["class_transformation"] = fit_logistic(xa, feats.dim, za, wa, p.logistic);

  }

  void rank_holdout() {
    // Rankings of the held-out users: order[k][rank] = that user's outcome, pos[k][rank] = its
    // index among the held-out users (the bootstrap draws one weight per user for every ranking).
    names.assign(p.learners.begin(), p.learners.end());
    names.push_back("propensity");
    names.push_back("random");
    const uint64_t tie_seed = mix64(p.seed, 0x71e), rnd_seed = mix64(p.seed, 0x7a4d);
    std::vector<size_t> held_idx;
    for (size_t i = 0; i < users.size(); ++i)
      if (users[i].held) held_idx.push_back(i);
    H = held_idx.size();
    orders.assign(names.size(), {});
    pos.assign(names.size(), {});
    for (size_t k = 0; k < names.size(); ++k) {
      std::vector<std::pair<double, uint64_t>> key(H);
      for (size_t j = 0; j < H; ++j) {
        const U& u = users[held_idx[j]];
        const Assignment& a = camp.rows[u.a];
        const double s = names[k] == "propensity" ? (std::isnan(a.score) ? 0.0 : a.score)
                         : names[k] == "random"   ? double(user_hash(rnd_seed, a.user_id) >> 11)
                                                  : predict(names[k], &feats.x[u.f * D]);
        key[j] = {s, user_hash(tie_seed, a.user_id)};
      }
      std::vector<size_t>& perm = pos[k];
      perm.resize(H);
      for (size_t j = 0; j < H; ++j) perm[j] = j;
      std::sort(perm.begin(), perm.end(), [&](size_t l, size_t r) {
        return key[l].first != key[r].first ? key[l].first > key[r].first : key[l].second < key[r].second;
      });
      for (size_t j : perm) {
        const U& u = users[held_idx[j]];
        const Assignment& a = camp.rows[u.a];
        auto tr = truth.find(a.user_id);
        orders[k].push_back({a.treated, y[u.a] > 0 ? 1.0 : 0.0, tr == truth.end() ? NAN : tr->second});
      }
    }
    sum.holdout_users = int64_t(H);
    for (auto& h : orders.front()) sum.holdout_treated += h.treated;
    if (H == 0 || sum.holdout_treated == 0 || sum.holdout_treated == sum.holdout_users)
      throw DataError("campaign uplift: the held-out part needs users of both arms (raise campaign.uplift.holdout)");
    nb = std::max<size_t>(1, size_t(std::llround(p.budget_fraction * double(H))));
    sum.budget_users = int64_t(nb);

  }

  void compare_rankings() {
    // Point estimates, then a paired Poisson bootstrap over held-out users.
    std::vector<RankMetrics> point;
    for (size_t k = 0; k < names.size(); ++k) point.push_back(rank_metrics(orders[k], {}, p.qini_points, p.budget_fraction));
    const size_t K = names.size(), ip = K - 2, ir = K - 1;
    std::vector<std::vector<double>> d_area_p(K), d_area_r(K), d_inc_p(K), d_inc_r(K);
    Rng rng(mix64(p.seed, 0xb0075));
    std::vector<double> wu(H), w(H);
    for (int b = 0; b < p.bootstrap; ++b) {
      for (size_t j = 0; j < H; ++j) wu[j] = double(poisson1(rng));
      std::vector<RankMetrics> m(K);
      for (size_t k = 0; k < K; ++k) {
        for (size_t r = 0; r < H; ++r) w[r] = wu[pos[k][r]];
        m[k] = rank_metrics(orders[k], w, p.qini_points, p.budget_fraction);
      }
      for (size_t k = 0; k < K; ++k) {
        d_area_p[k].push_back(m[k].area - m[ip].area);
        d_area_r[k].push_back(m[k].area - m[ir].area);
        d_inc_p[k].push_back(m[k].incremental - m[ip].incremental);
        d_inc_r[k].push_back(m[k].incremental - m[ir].incremental);
      }
    }
    const double a = (1 - p.level) / 2;
    for (size_t k = 0; k < K; ++k) {
      RankingResult r;
      r.name = names[k];
      std::vector<RankedOutcome> ro;
      for (size_t i = 0; i < H; ++i) ro.push_back({double(H - i), orders[k][i].treated, orders[k][i].y, i});
      r.qini = qini_curve(ro, p.qini_points);  // same order: scores H..1
      r.incremental_at_budget = point[k].incremental;
      r.area_diff_vs_propensity = point[k].area - point[ip].area;
      r.area_diff_vs_random = point[k].area - point[ir].area;
      r.inc_diff_vs_propensity = point[k].incremental - point[ip].incremental;
      r.inc_diff_vs_random = point[k].incremental - point[ir].incremental;
      if (p.bootstrap > 0) {
        r.area_lo_vs_propensity = percentile(d_area_p[k], a), r.area_hi_vs_propensity = percentile(d_area_p[k], 1 - a);
        r.area_lo_vs_random = percentile(d_area_r[k], a), r.area_hi_vs_random = percentile(d_area_r[k], 1 - a);
        r.inc_lo_vs_propensity = percentile(d_inc_p[k], a), r.inc_hi_vs_propensity = percentile(d_inc_p[k], 1 - a);
        r.inc_lo_vs_random = percentile(d_inc_r[k], a), r.inc_hi_vs_random = percentile(d_inc_r[k], 1 - a);
      } else {
        r.area_lo_vs_propensity = r.area_hi_vs_propensity = r.area_lo_vs_random = r.area_hi_vs_random = NAN;
        r.inc_lo_vs_propensity = r.inc_hi_vs_propensity = r.inc_lo_vs_random = r.inc_hi_vs_random = NAN;
      }
      if (!truth.empty()) {
        double t = 0;
        for (size_t i = 0; i < nb; ++i) t += orders[k][i].effect;
        r.true_incremental_at_budget = t;
      }
      sum.rankings.push_back(std::move(r));
    }

  }

  void write_scores_and_qini(const stdfs::path& out_dir) {
    // ---- Outputs ---------------------------------------------------------------------------
    std::unordered_map<std::string, std::string> segment_of;
    for (auto& row : camp.rows) segment_of.emplace(row.user_id, row.segment);
    {
      std::string csv = "user_id,score,segment\n";
      csv.reserve(feats.ids.size() * 64);
      for (size_t i = 0; i < feats.ids.size(); ++i) {
        data::append_csv_field(csv, feats.ids[i]);
        csv += fmt::format(",{:.8g},", predict(p.score_with, &feats.x[i * D]));
        auto it = segment_of.find(feats.ids[i]);
        if (it != segment_of.end()) data::append_csv_field(csv, it->second);
        csv += '\n';
      }
      write_file_atomic(out_dir / "uplift_scores.csv", csv);
      sum.scored_users = int64_t(feats.ids.size());
    }
    {
      std::string csv = "fraction,users";
      for (auto& r : sum.rankings) csv += "," + r.name;
      csv += ",random_line\n";
      const size_t P = sum.rankings.front().qini.points.size();
      for (size_t i = 0; i < P; ++i) {
        const QiniPoint& q0 = sum.rankings.front().qini.points[i];
        csv += fmt::format("{},{}", num(q0.fraction), q0.users);
        for (auto& r : sum.rankings) csv += "," + num(r.qini.points[i].qini);
        csv += "," + num(q0.random) + "\n";
      }
      write_file_atomic(out_dir / "qini_uplift.csv", csv);
    }
  }

  void write_evaluation(const stdfs::path& out_dir) const {
    nlohmann::json ev;
    ev["format"] = "portrait-uplift-evaluation";
    ev["format_version"] = 1;
    ev["campaign_id"] = sum.campaign_id;
    ev["outcome"] = p.outcome;
    ev["audience"] = sum.audience;
    ev["with_features"] = sum.with_features;
    ev["train_users"] = sum.train_users;
    ev["holdout_users"] = sum.holdout_users;
    ev["holdout_treated"] = sum.holdout_treated;
    ev["budget_fraction"] = p.budget_fraction;
    ev["budget_users"] = sum.budget_users;
    ev["level"] = p.level;
    ev["bootstrap"] = p.bootstrap;
    ev["methods"] = {
        {"split", "held-out users by a seeded hash of the pseudonymous id (campaign.seed), both arms"},
        {"qini", "Q(k) = Y_t(k) - Y_c(k) N_t(k)/N_c(k) over held-out users in ranking order; area between the curve "
                 "and the random line, over the fraction targeted (campaign/stats.h)"},
        {"incremental_at_budget", "(conversion rate treated - control) x users among the top budget_fraction"},
        {"intervals", "paired Poisson bootstrap over held-out users (the same weights in every ranking), percentile"},
        {"true_incremental_at_budget", "sum of the truth file's per-user effects among the top budget_fraction"}};
    for (auto& r : sum.rankings) {
      nlohmann::json j = {{"qini_area", r.qini.area},
                          {"qini_area_per_user", r.qini.area_per_user},
                          {"incremental_at_budget", r.incremental_at_budget},
                          {"area_minus_propensity", {r.area_diff_vs_propensity, r.area_lo_vs_propensity, r.area_hi_vs_propensity}},
                          {"area_minus_random", {r.area_diff_vs_random, r.area_lo_vs_random, r.area_hi_vs_random}},
                          {"incremental_minus_propensity", {r.inc_diff_vs_propensity, r.inc_lo_vs_propensity, r.inc_hi_vs_propensity}},
                          {"incremental_minus_random", {r.inc_diff_vs_random, r.inc_lo_vs_random, r.inc_hi_vs_random}}};
      if (!std::isnan(r.true_incremental_at_budget)) j["true_incremental_at_budget"] = r.true_incremental_at_budget;
      ev["rankings"][r.name] = std::move(j);
    }
    write_file_atomic(out_dir / "uplift_eval.json", ev.dump(2) + "\n");
  }

  void write_model(const stdfs::path& out_dir) const {
    nlohmann::json mj;
    mj["format"] = kUpliftModelFormat;
    mj["format_version"] = kUpliftModelFormatVersion;
    mj["campaign_id"] = sum.campaign_id;
    mj["outcome"] = p.outcome;
    mj["score_with"] = p.score_with;
    mj["features"] = {{"source", feats.source}, {"sha256", feats.sha256}, {"dim", feats.dim}};
    for (auto& [name, m] : sum.models) mj["models"][name] = model_json(m);
    mj["logistic"] = {{"l2", p.logistic.l2}, {"max_iter", p.logistic.max_iter}};
    mj["config_yaml"] = p.config_yaml;
    write_file_atomic(out_dir / "uplift_model.json", mj.dump(2) + "\n");
  }
};

}  // namespace

Features read_features_csv(const std::string& path) {
  Table t = read_table(path, "campaign.uplift.features");
  if (t.header.size() < 2) throw DataError(fmt::format("{} line 1: expected user_id then at least one feature column", path));
  Features f;
  f.source = path;
  f.sha256 = sha256_file(path);
  f.dim = int64_t(t.header.size() - 1);
  f.ids.reserve(t.rows.size());
  f.x.reserve(t.rows.size() * size_t(f.dim));
  for (size_t r = 0; r < t.rows.size(); ++r) {
    if (t.rows[r][0].empty()) throw DataError(fmt::format("{} line {}: empty user id", path, t.lines[r]));
    f.ids.push_back(t.rows[r][0]);
    for (int c = 1; c <= int(f.dim); ++c) f.x.push_back(float(t.number(r, c, "feature")));
  }
  return f;
}

UpliftParams uplift_params_from_config(const cfg::Node& root) {
  UpliftParams p;
  cfg::Section c(root, "campaign");
  c.read("dir", p.campaign_dir);
  int64_t seed = int64_t(p.seed);
  c.read("seed", seed, int64_t{0});
  p.seed = uint64_t(seed);
  {
    cfg::Section s = c.sub("uplift");
    s.read("outcomes", p.outcomes);
    s.read("features", p.features);
    s.read("embeddings", p.embeddings);
    s.read("truth", p.truth);
    s.read("output_dir", p.output_dir);
    s.read_enum("outcome", p.outcome, {"converted", "clicked"});
    s.read("learners", p.learners);
    s.read_enum("score_with", p.score_with, {"t_learner", "class_transformation"});
    s.read("holdout", p.holdout, 0.01, 0.99);
    s.read("budget_fraction", p.budget_fraction, 1e-6, 1.0);
    s.read("bootstrap", p.bootstrap, 0, 100000);
    s.read("level", p.level, 0.5, 0.9999);
    s.read("qini_points", p.qini_points, 1, 100000);
    s.read("l2", p.logistic.l2, 0.0, 1e9);
    s.read("max_iter", p.logistic.max_iter, 1, 1000);
    s.read("max_missing_fraction", p.max_missing_fraction, 0.0, 1.0);
    s.finish();
  }
  for (const char* k : {"id", "start", "plan", "evaluate", "simulate"}) c.ignore(k);
  c.finish();
  for (const auto& l : p.learners)
    if (l != "t_learner" && l != "class_transformation")
      throw ConfigError("config key 'campaign.uplift.learners' = '" + l + "': the learners are t_learner, class_transformation");
  if (p.learners.empty()) throw ConfigError("config key 'campaign.uplift.learners' must name at least one learner");
  if (std::find(p.learners.begin(), p.learners.end(), p.score_with) == p.learners.end())
    throw ConfigError("config key 'campaign.uplift.score_with' = '" + p.score_with + "' is not one of campaign.uplift.learners");
  if (p.campaign_dir.empty()) throw ConfigError("config key 'campaign.dir' must be set");
  if (p.outcomes.empty())
    throw ConfigError("config key 'campaign.uplift.outcomes' must name `campaign evaluate`'s outcomes.csv or its output directory");
  if (p.features.empty() == p.embeddings.empty())
    throw ConfigError("set exactly one of campaign.uplift.features (a CSV user_id,f0,...) and campaign.uplift.embeddings "
                      "(a `portrait embed` export)");
  if (p.output_dir.empty()) throw ConfigError("config key 'campaign.uplift.output_dir' must be set");
  return p;
}

UpliftSummary run_uplift(const UpliftParams& p, const Features& feats) {
  const auto t0 = std::chrono::steady_clock::now();
  UpliftSummary sum;
  UpliftRun run(p, feats, sum);
  sum.campaign_id = run.camp.campaign_id;
  stdfs::path outcomes_path(p.outcomes);
  if (stdfs::is_directory(outcomes_path)) outcomes_path /= "outcomes.csv";
  const stdfs::path out_dir(p.output_dir);
  stdfs::create_directories(out_dir);
  DirLock lock(out_dir, "campaign.uplift.output_dir");
  {
    std::vector<NamedInput> inputs = {{"campaign.uplift.outcomes", outcomes_path},
                                      {"campaign.dir", stdfs::path(p.campaign_dir) / "assignment.csv"},
                                      {"campaign.uplift.features", feats.source}};
    if (!p.truth.empty()) inputs.push_back({"campaign.uplift.truth", p.truth});
    for (const char* n : {"uplift_model.json", "uplift_eval.json", "qini_uplift.csv", "uplift_scores.csv"})
      check_output_not_input(out_dir / n, std::string("campaign.uplift.output_dir's ") + n, inputs);
  }
  run.read_outcomes(outcomes_path);
  run.read_truth();
  run.select_users();
  run.fit();
  run.rank_holdout();
  run.compare_rankings();
  run.write_scores_and_qini(out_dir);
  run.write_evaluation(out_dir);
  run.write_model(out_dir);
  sum.output_dir = out_dir.string();
  sum.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace portrait::campaign
