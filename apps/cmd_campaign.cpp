// Campaign commands: `portrait campaign plan | evaluate | simulate | uplift` (campaign/). `plan`
// also reads `portrait score` / `portrait segment` HDF5 outputs (infer/h5.h) and `uplift` an
// embeddings export (infer/embeddings_file.h); everything else is in the torch-free campaign
// library.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <unordered_map>

#include "apps/commands.h"
#include "campaign/evaluate.h"
#include "campaign/plan.h"
#include "campaign/simulate.h"
#include "campaign/uplift.h"
#include "core/config/section.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/rows.h"
#include "infer/embeddings_file.h"
#include "infer/h5.h"
#include "infer/score.h"
#include "infer/segment.h"

namespace portrait::apps {

namespace fs = std::filesystem;

namespace {

const char* kCampaignUsage =
    "Usage: portrait campaign <plan|evaluate|simulate|uplift> [options] [key=value ...]\n\n"
    "Precision marketing: plan a campaign with a randomized control group, then measure what it\n"
    "did (reach, participation, conversion, revenue; lift with 95% intervals; uplift and Qini).\n\n"
    "Subcommands:\n"
    "  plan       pick the audience from scores / lookalikes / a user list and hold out a\n"
    "             stratified randomized control group; writes the sealed campaign directory\n"
    "  evaluate   read the events since the start (prep's validation), per arm and segment\n"
    "             outcomes and lifts -> evaluation.json + CSV tables\n"
    "  simulate   a synthetic campaign with planted, segment-dependent effects and a truth file\n"
    "  uplift     learn who a finished campaign moved (T-learner, class transformation on the\n"
    "             user embeddings); Qini against propensity and random; scores for the next plan\n\n"
    "Run 'portrait campaign <subcommand> --help' for its options.\n";

struct PlanInput {
  std::vector<campaign::ScoredUser> users;
  std::string score_name, sha256;
};

/// campaign.plan.input: a `portrait score` output (scores.h5 or its directory) or a CSV/TSV of
/// users (lookalikes.csv, a segment list, any export with a user column); campaign.plan.
/// segments_file: a `portrait segment` output giving each user's segment.
PlanInput read_plan_input(const cfg::Node& root) {
  cfg::Section c(root, "campaign");
  cfg::Section s = c.sub("plan");
  std::string input, target, segments_file;
  std::map<std::string, std::string> cols = {{"user", "user_id"}, {"score", "score"}, {"segment", "segment"}};
  s.read("input", input);
  s.read("target", target);
  s.read("segments_file", segments_file);
  s.read("input_columns", cols);
  for (auto& [k, v] : cols)
    if (k != "user" && k != "score" && k != "segment")
      throw ConfigError("config key 'campaign.plan.input_columns." + k + "' is not one of user, score, segment");
  if (input.empty()) throw ConfigError("config key 'campaign.plan.input' must name the scored users");
  PlanInput in;
  fs::path path(input);
  if (fs::is_directory(path)) path /= "scores.h5";
  if (!fs::exists(path)) throw DataError("campaign.plan.input: " + path.string() + " does not exist");
  in.sha256 = sha256_file(path);
  if (infer::h5::is_hdf5(path)) {
    auto f = infer::h5::open_file(path);
    if (!infer::h5::has_attr(f, "format") || infer::h5::attr_str(f, "format") != infer::kScoresFormat)
      throw DataError(path.string() + " is an HDF5 file but not a `portrait score` output (format " +
                      std::string(infer::kScoresFormat) + ")");
    auto ids = infer::h5::read_strings(f, "user_id");
    auto targets = infer::h5::read_strings(f, "target");
    if (!infer::h5::exists(f, "probability"))
      throw DataError(path.string() + " has no /probability (written with score.write_probabilities=false)");
    std::vector<hsize_t> dims;
    auto prob = infer::h5::read_float(f, "probability", &dims);
    const size_t C = dims.size() == 2 ? size_t(dims[1]) : 1;
    size_t head = 0;
    if (target.empty()) {
      if (C != 1)
        throw ConfigError(fmt::format("{} has {} purchase heads: choose one with campaign.plan.target ({})",
                                      path.string(), C, fmt::join(targets, ", ")));
    } else {
      auto it = std::find(targets.begin(), targets.end(), target);
      if (it == targets.end()) {
        const std::string hint = cfg::did_you_mean(target, targets);
        throw ConfigError("campaign.plan.target = '" + target + "' is not a head of " + path.string() +
                          (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
      }
      head = size_t(it - targets.begin());
    }
    in.score_name = targets.empty() ? "probability" : "p(" + targets[head] + ")";
    in.users.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) in.users.push_back({ids[i], double(prob[i * C + head]), ""});
  } else {
    in.users = campaign::read_scored_users(path, cols["user"], cols["score"], cols["segment"]);
    in.score_name = cols["score"];
  }
  if (!segments_file.empty()) {
    fs::path sp(segments_file);
    if (fs::is_directory(sp)) sp /= "segments.h5";
    auto f = infer::h5::open_file(sp);
    if (!infer::h5::has_attr(f, "format") || infer::h5::attr_str(f, "format") != infer::kSegmentsFormat)
      throw DataError(sp.string() + " is not a `portrait segment` output (format " +
                      std::string(infer::kSegmentsFormat) + ")");
    auto ids = infer::h5::read_strings(f, "user_id");
    auto seg = infer::h5::read_i32(f, "segment");
    std::unordered_map<std::string, int32_t> by_id;
    by_id.reserve(ids.size() * 2);
    for (size_t i = 0; i < ids.size() && i < seg.size(); ++i) by_id[ids[i]] = seg[i];
    int64_t missing = 0;
    for (auto& u : in.users) {
      auto it = by_id.find(u.id);
      if (it == by_id.end()) ++missing;
      else u.segment = std::to_string(it->second);
    }
    if (missing)
      PLOG_WARN("campaign plan: {} of {} users have no segment in {} (their stratum segment is '-')", missing,
                in.users.size(), sp.string());
  }
  return in;
}

/// `campaign.id` when the config sets one (not ??? and not empty), else "".
std::string configured_id(const cfg::Node& root) {
  const cfg::Node* n = cfg::find_path(root, "campaign.id");
  if (!n || !n->is_string() || n->is_missing()) return "";
  return n->as_string();
}

}  // namespace

CommandSpec campaign_plan_command() {
  CommandSpec c;
  c.name = "campaign plan";
  c.summary = "plan a campaign: audience + stratified randomized control group";
  c.description =
      "Picks the audience from a scored user set (a `portrait score` output with\n"
      "campaign.plan.target naming the head, lookalikes.csv, or any CSV with a user column)\n"
      "by top score, at random or by segment, within a budget, and holds out\n"
      "campaign.plan.control_fraction of it at random inside each stratum (segment x score\n"
      "decile). Writes <campaign.dir>/assignment.csv, activation.csv (the treatment arm: what\n"
      "the channel receives) and campaign.json (format, version, id, sha256s; written last).\n"
      "Deterministic from campaign.seed; a planned campaign is never re-drawn: planning the same\n"
      "id again succeeds only if the plan is identical.\n\n"
      "  portrait campaign plan campaign.id=spring campaign.start=2024-06-01 \\\n"
      "      campaign.plan.input=<score run dir> campaign.plan.target=phones \\\n"
      "      campaign.plan.segments_file=<segment run>/segments.h5 campaign.plan.budget_users=10000";
  c.config_name = "campaign/plan";
  c.run = [](JobContext& ctx) {
    auto p = campaign::plan_params_from_config(ctx.cfg);
    PlanInput in = read_plan_input(ctx.cfg);
    if (p.score_name.empty()) p.score_name = in.score_name;
    auto r = campaign::run_plan(p, std::move(in.users), in.sha256);
    std::cout << fmt::format("campaign plan: '{}' {} users ({} treatment, {} control) in {} strata of {} eligible{} -> {}\n",
                             r.plan.campaign_id, r.plan.rows.size(), r.plan.treatment, r.plan.control,
                             r.plan.strata.size(), r.plan.eligible,
                             r.unchanged ? " (already planned, identical: nothing rewritten)" : "",
                             r.dir.string());
    return kExitOk;
  };
  return c;
}

CommandSpec campaign_evaluate_command() {
  CommandSpec c;
  c.name = "campaign evaluate";
  c.summary = "measure a campaign: per arm and segment outcomes, lift with intervals, uplift, Qini";
  c.description =
      "Reads the sealed campaign directory and the event logs since the campaign start with the\n"
      "data group's mapping and prep's validation (bad rows, events of users outside the\n"
      "assignment and duplicates go to quarantine.jsonl with their reasons). Per arm, segment\n"
      "and stratum: reach, participation (a click), conversion (a purchase within\n"
      "campaign.evaluate.attribution_days), revenue per user; absolute and relative lift with\n"
      "95% intervals (Newcombe / Wald; Katz), p-values (Holm-adjusted per family),\n"
      "incremental conversions; uplift@k, uplift by score decile and the Qini curve.\n"
      "Outputs: evaluation.json, arms.csv, lift.csv, uplift_deciles.csv, qini.csv,\n"
      "uplift_at_k.csv, quarantine.jsonl in campaign.evaluate.output_dir.\n\n"
      "  PORTRAIT_HASH_KEY=... portrait campaign evaluate campaign.id=spring \\\n"
      "      campaign.evaluate.input='[logs/2024-06-*.csv.gz]'";
  c.config_name = "campaign/evaluate";
  c.run = [](JobContext& ctx) {
    auto p = campaign::evaluate_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    const std::string want = configured_id(ctx.cfg);
    if (!want.empty()) {
      const auto loaded = campaign::load_campaign(p.campaign_dir);
      if (loaded.campaign_id != want)
        throw ConfigError(fmt::format("campaign.dir {} holds campaign '{}', not campaign.id = '{}'", p.campaign_dir,
                                      loaded.campaign_id, want));
    }
    auto s = campaign::run_evaluate(p);
    const auto& ov = s.overall().conversion;
    std::cout << fmt::format(
        "campaign evaluate: '{}' conversion {:.4f} vs {:.4f} (control): lift {:+.4f} [{:+.4f}, {:+.4f}], p = {:.3g}, "
        "{:+.1f} incremental conversions; {} rows quarantined -> {}\n",
        s.campaign_id, ov.rate_t, ov.rate_c, ov.abs_lift, ov.abs_lo, ov.abs_hi, ov.p_value, ov.incremental,
        s.quarantined, s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec campaign_simulate_command() {
  CommandSpec c;
  c.name = "campaign simulate";
  c.summary = "a synthetic campaign with planted, segment-dependent effects and a truth file";
  c.description =
      "Draws a scored population (campaign.simulate.users in .segments segments), plans the\n"
      "campaign with the real planner (campaign.plan.*), then post-campaign events where\n"
      "treatment shifts each user's purchase log-odds by the segment's planted effect\n"
      "(campaign.simulate.segment_log_odds; zero and negative for some). truth.json holds each\n"
      "segment's true mean effect, truth.csv each user's. User ids are pseudonymized with the\n"
      "data.privacy key, as prep does, so `campaign evaluate` reads the events as real logs.\n\n"
      "  PORTRAIT_HASH_KEY=... portrait campaign simulate hydra.run.dir=sim\n"
      "  PORTRAIT_HASH_KEY=... portrait campaign evaluate campaign.dir=sim/campaign \\\n"
      "      campaign.evaluate.input='[sim/events.csv]'";
  c.config_name = "campaign/simulate";
  c.run = [](JobContext& ctx) {
    auto p = campaign::simulate_params_from_config(ctx.cfg);
    data::DataParams d;
    data::read_data_params(ctx.cfg, d);
    if (p.pseudonymize) p.hash_key = data::resolve_hash_key(d);
    auto r = campaign::run_simulate(p);
    std::cout << fmt::format("campaign simulate: {} users, audience {}, {} event rows, true lift {:+.4f} -> {}\n",
                             r.users, r.audience, r.rows, r.overall_effect, r.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec campaign_uplift_command() {
  CommandSpec c;
  c.name = "campaign uplift";
  c.summary = "uplift models from a finished campaign, compared with propensity targeting by Qini";
  c.description =
      "Learns P(conversion | user, arm) from a finished campaign: the sealed assignment\n"
      "(campaign.dir), `campaign evaluate`'s outcomes.csv (campaign.uplift.outcomes) and the user\n"
      "embeddings of a `portrait embed` export (campaign.uplift.embeddings) or a CSV of features\n"
      "(campaign.uplift.features: user_id,f0,...). Learners: t_learner (two logistic response\n"
      "models) and class_transformation (one logistic model of the transformed outcome, arms\n"
      "reweighted). On a held-out part of the audience each learner's ranking is compared with the\n"
      "plan's score and a random ranking by the Qini area and the incremental conversions among\n"
      "the top campaign.uplift.budget_fraction, with paired bootstrap intervals; with a truth file\n"
      "(simulate's truth.csv) also the true incremental conversions. Outputs: uplift_model.json,\n"
      "uplift_eval.json, qini_uplift.csv, uplift_scores.csv (user_id,score,segment: the input of\n"
      "the next `campaign plan`).\n\n"
      "  portrait campaign uplift campaign.dir=sim/campaign campaign.uplift.outcomes=sim/eval \\\n"
      "      campaign.uplift.features=sim/features.csv campaign.uplift.truth=sim/truth.csv";
  c.config_name = "campaign/uplift";
  c.run = [](JobContext& ctx) {
    auto p = campaign::uplift_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    campaign::Features f;
    if (!p.embeddings.empty()) {
      infer::EmbeddingsFile e = infer::read_embeddings(p.embeddings);
      f.ids = std::move(e.user_id);
      f.dim = e.dim;
      f.x = std::move(e.x);
      f.source = p.embeddings;
      f.sha256 = sha256_file(p.embeddings);
    } else {
      f = campaign::read_features_csv(p.features);
    }
    auto s = campaign::run_uplift(p, f);
    std::cout << fmt::format("campaign uplift: '{}' trained on {} users, held out {}; Qini area (incremental at {:.0f}% "
                             "of the held-out users):\n",
                             s.campaign_id, s.train_users, s.holdout_users, 100 * p.budget_fraction);
    for (const auto& r : s.rankings)
      std::cout << fmt::format("  {:<22} {:+10.2f}  ({:+.1f}{})\n", r.name, r.qini.area, r.incremental_at_budget,
                               std::isnan(r.true_incremental_at_budget)
                                   ? std::string()
                                   : fmt::format(", true {:+.1f}", r.true_incremental_at_budget));
    std::cout << fmt::format("-> {}\n", s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec campaign_command() {
  CommandSpec c;
  c.name = "campaign";
  c.summary = "plan a campaign with a control group, measure its lift, learn its uplift";
  c.description = kCampaignUsage;
  c.creates_run_dir = false;
  c.run = [](JobContext&) { return kExitOk; };  // dispatched by run_campaign_command
  return c;
}

const std::vector<CommandSpec>& campaign_subcommands() {
  static const std::vector<CommandSpec> v = {campaign_plan_command(), campaign_evaluate_command(),
                                             campaign_simulate_command(), campaign_uplift_command()};
  return v;
}

int run_campaign_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << kCampaignUsage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  for (const auto& c : campaign_subcommands())
    if (c.name == "campaign " + args[0]) return run_command(c, std::vector<std::string>(args.begin() + 1, args.end()));
  std::vector<std::string> names = {"plan", "evaluate", "simulate", "uplift"};
  const std::string hint = cfg::did_you_mean(args[0], names);
  std::cerr << fmt::format("portrait campaign: '{}' is not a campaign subcommand (plan, evaluate, simulate, uplift).{}\n",
                           args[0], hint.empty() ? "" : fmt::format(" Did you mean '{}'?", hint));
  return kExitUsage;
}

}  // namespace portrait::apps
