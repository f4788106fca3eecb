// `portrait demo`: the README's first command. Runs the whole pipeline at small scale on CPU:
//   synth -> prep (+ tokenizer) -> train (model=tiny) -> embed -> segment -> score -> tags -> profile
// Every stage runs exactly as its own command would: its primary config (configs/<stage>.yaml)
// is composed with the paths of this run, the demo's shared groups (data, model, train,
// infer) are laid over it, and the stage gets its own run directory <run>/<stage>/ with the
// usual .hydra record. The demo ends with a summary table (including the segments' NMI
// against the generator's planted segments) and the path of the HTML report.
#include <fmt/format.h>
#include <hdf5.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "apps/command_specs.h"
#include "apps/commands.h"
#include "apps/stage_stop.h"
#include "core/config/interpolate.h"
#include "core/config/run_dir.h"
#include "core/config/section.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/prep.h"
#include "data/synth.h"
#include "infer/embed.h"
#include "infer/profile.h"
#include "tags/tags.h"
#include "infer/score.h"
#include "infer/segment.h"
#include "train/trainer.h"

namespace portrait::apps {

namespace fs = std::filesystem;

namespace {

struct DemoParams {
  int64_t users = 4000;
  int64_t items = 1000;
  int segments = 8;
  int64_t seq_len = 64;  ///< events per user kept by prep (prep.seq_len)
  std::vector<std::string> stages = {"synth", "prep", "train", "embed", "segment", "score", "tags", "profile"};
};

DemoParams demo_params(const cfg::Node& root) {
  DemoParams p;
  cfg::Section s(root, "demo");
  s.read("users", p.users, 100, 100000000);
  s.read("items", p.items, 10, 100000000);
  s.read("segments", p.segments, 1, 1024);
  s.read("seq_len", p.seq_len, 1, 65536);
  s.read("stages", p.stages);
  s.finish();
  for (const auto& st : p.stages) {
    static const std::vector<std::string> known = {"synth", "prep",  "train", "embed",
                                                   "segment", "score", "tags", "profile"};
    if (std::find(known.begin(), known.end(), st) == known.end())
      throw ConfigError(fmt::format("config key 'demo.stages' has unknown stage '{}'; allowed: synth, prep, "
                                    "train, embed, segment, score, tags, profile",
                                    st));
  }
  return p;
}

// Composes stage `name`'s primary config with `overrides`, lays the demo's shared groups
// over it, records it in `dir`/.hydra and returns it resolved.
cfg::Node stage_config(const JobContext& ctx, const std::string& name, std::vector<std::string> overrides,
                       const fs::path& dir, const std::vector<std::string>& shared_groups) {
  cfg::ComposeOptions o;
  o.search_path = ctx.search_path;
  o.config_name = name;
  o.job_name = name;
  overrides.push_back("hydra.run.dir=" + dir.string());
  o.overrides = overrides;
  o.overlay = cfg::Node::map();
  for (const auto& g : shared_groups) {
    if (const cfg::Node* src = ctx.composed.config.find(g)) o.overlay[g] = *src;
  }
  cfg::Composed c = cfg::compose(o);
  if (const cfg::Node* seed = ctx.composed.config.find("seed"); seed && c.config.contains("seed")) c.config["seed"] = *seed;
  cfg::ResolveContext rc;
  rc.now = ctx.now;
  cfg::decide_run_dir(c, rc, false);
  rc.hydra = &c.hydra;
  cfg::Node resolved = cfg::resolve(c.config, rc);
  cfg::write_run_dir(c, dir, true);
  return resolved;
}

// The pseudonymization key of a demo run: $PORTRAIT_HASH_KEY when set, otherwise derived
// from the seed so the demo is reproducible. Acceptable only because the demo's users are
// synthetic; `portrait prep` itself never invents a key.
std::string demo_key(int64_t seed) {
  if (const char* k = std::getenv("PORTRAIT_HASH_KEY"); k && std::strlen(k) >= 16) return k;
  return sha256_hex("portrait-demo-key/" + std::to_string(seed));
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ',')) out.push_back(f);
  return out;
}

std::vector<std::string> read_fixed_strings(hid_t file, const char* name) {
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  if (ds < 0) throw std::runtime_error(std::string("no dataset ") + name);
  hid_t ft = H5Dget_type(ds);
  hid_t sp = H5Dget_space(ds);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  std::vector<std::string> out;
  if (H5Tis_variable_str(ft) > 0) {
    std::vector<char*> buf(static_cast<size_t>(n));
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
    for (auto* c : buf) out.emplace_back(c ? c : "");
    H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf.data());
    H5Tclose(mt);
  } else {
    size_t len = H5Tget_size(ft);
    std::vector<char> buf(static_cast<size_t>(n) * len);
    H5Dread(ds, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
    for (hssize_t i = 0; i < n; ++i) {
      std::string s(buf.data() + i * len, len);
      s.erase(s.find_last_not_of('\0') + 1);
      out.push_back(s);
    }
  }
  H5Sclose(sp);
  H5Tclose(ft);
  H5Dclose(ds);
  return out;
}

std::vector<int32_t> read_ints(hid_t file, const char* name) {
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  if (ds < 0) throw std::runtime_error(std::string("no dataset ") + name);
  hid_t sp = H5Dget_space(ds);
  std::vector<int32_t> v(static_cast<size_t>(H5Sget_simple_extent_npoints(sp)));
  H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(sp);
  H5Dclose(ds);
  return v;
}

// Normalized mutual information (arithmetic-mean normalisation, as sklearn's default).
double nmi(const std::vector<int>& a, const std::vector<int>& b) {
  const double n = static_cast<double>(a.size());
  std::map<int, double> pa, pb;
  std::map<std::pair<int, int>, double> pab;
  for (size_t i = 0; i < a.size(); ++i) {
    pa[a[i]] += 1;
    pb[b[i]] += 1;
    pab[{a[i], b[i]}] += 1;
  }
  double mi = 0, ha = 0, hb = 0;
  for (auto& [k, c] : pab) mi += c / n * std::log((c * n) / (pa[k.first] * pb[k.second]));
  for (auto& [k, c] : pa) ha -= c / n * std::log(c / n);
  for (auto& [k, c] : pb) hb -= c / n * std::log(c / n);
  double denom = 0.5 * (ha + hb);
  return denom > 0 ? mi / denom : 1.0;
}

// NMI of the k-means segments against the synthetic generator's planted segments, joining
// segments.h5 (pseudonymous ids) -> id_map.csv (raw -> pseudonym) -> truth.csv (raw -> planted).
std::pair<double, int64_t> segment_nmi(const fs::path& segments_h5, const fs::path& id_map, const fs::path& truth) {
  std::map<std::string, std::string> raw_of;  // pseudonym -> raw
  {
    std::ifstream in(id_map);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      auto f = split_csv_line(line);
      if (f.size() >= 2) raw_of[f[1]] = f[0];
    }
  }
  std::map<std::string, int> planted;
  {
    std::ifstream in(truth);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      auto f = split_csv_line(line);
      if (f.size() >= 2) planted[f[0]] = std::stoi(f[1]);
    }
  }
  hid_t file = H5Fopen(segments_h5.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw std::runtime_error("cannot open " + segments_h5.string());
  auto ids = read_fixed_strings(file, "user_id");
  auto seg = read_ints(file, "segment");
  H5Fclose(file);
  std::vector<int> a, b;
  for (size_t i = 0; i < ids.size() && i < seg.size(); ++i) {
    auto r = raw_of.find(ids[i]);
    if (r == raw_of.end()) continue;
    auto t = planted.find(r->second);
    if (t == planted.end()) continue;
    a.push_back(seg[i]);
    b.push_back(t->second);
  }
  if (a.empty()) throw std::runtime_error("no user of segments.h5 could be joined to the planted segments");
  return {nmi(a, b), static_cast<int64_t>(a.size())};
}

}  // namespace

CommandSpec demo_command() {
  CommandSpec c = demo_spec();
  c.run = [](JobContext& ctx) {
    using clock = std::chrono::steady_clock;
    DemoParams d = demo_params(ctx.cfg);
    const fs::path run = ctx.run_dir;
    const fs::path raw = run / "synth", shards = run / "prep", train_dir = run / "train";
    const fs::path emb = run / "embed" / "embeddings.h5", seg = run / "segment" / "segments.h5";
    const fs::path scores = run / "score", report = run / "profile", tags_dir = run / "tags";
    auto want = [&](const std::string& s) { return std::find(d.stages.begin(), d.stages.end(), s) != d.stages.end(); };
    std::vector<std::pair<std::string, double>> times;
    // The first interrupted or failed stage ends the demo, naming the stage and the command
    // that resumes from it; no later stage runs (they would read outputs that do not exist).
    std::vector<std::string> invocation = ctx.composed.task_overrides;
    invocation.insert(invocation.end(), ctx.composed.hydra_overrides.begin(), ctx.composed.hydra_overrides.end());
    StageStop stop("demo", invocation, d.stages, run);
    std::optional<int> stopped;  // exit status once a stage stopped the pipeline
    auto timed = [&](const std::string& name, auto&& fn) {
      if (stopped) return;
      auto t0 = clock::now();
      PLOG_INFO("demo: stage {} ...", name);
      stop.begin(name);
      try {
        fn();
      } catch (...) {
        stop.end();
        stop.failed(name);
        throw;
      }
      stop.end();
      times.emplace_back(name, std::chrono::duration<double>(clock::now() - t0).count());
    };
    std::vector<std::pair<std::string, std::string>> rows;  // summary table

    if (want("synth")) timed("synth", [&] {
      auto cfgn = stage_config(ctx, "synth",
                               {"synth.output_dir=" + raw.string(), fmt::format("synth.users={}", d.users),
                                fmt::format("synth.items={}", d.items), fmt::format("synth.segments={}", d.segments)},
                               raw, {"data"});
      auto s = data::run_synth(data::synth_params_from_config(cfgn));
      rows.emplace_back("synthetic log", fmt::format("{} users, {} rows", s.users, s.rows));
    });
    if (want("prep")) timed("prep", [&] {
      auto cfgn = stage_config(ctx, "prep",
                               {"prep.input=[" + (raw / "events_00000.csv").string() + "]",
                                "prep.catalogue=" + (raw / "catalogue.csv").string(),
                                "prep.output_dir=" + shards.string(), fmt::format("prep.seq_len={}", d.seq_len),
                                // The demo joins segments to the planted truth, so it asks for the map.
                                "data.privacy.id_map_path=" + (shards / "id_map.csv").string()},
                               shards, {"data"});
      auto p = data::prep_params_from_config(cfgn);
      p.config_yaml = cfg::to_yaml(cfgn);
      int64_t seed = 0;
      if (const cfg::Node* sd = ctx.cfg.find("seed"); sd && sd->is_int()) seed = sd->as_int();
      p.hash_key = demo_key(seed);
      auto s = data::run_prep(p);
      rows.emplace_back("prep", fmt::format("{} events kept, {} rows quarantined, {} users", s.accepted_events,
                                            s.quarantined, s.users));
    });
    nlohmann::json eval;
    if (want("train")) timed("train", [&] {
      auto cfgn = stage_config(ctx, "train", {"shards=" + shards.string()}, train_dir, {"model", "train"});
      auto p = train::train_params_from_config(cfgn);
      auto s = train::run_train(p, train_dir);
      if (s.interrupted) {  // the trainer finished its step and wrote a checkpoint
        stopped = stop.interrupted("train", s.stop_signal,
                                   fmt::format("checkpoint at step {} written", s.steps));
        return;
      }
      if (s.steps < p.steps) {  // train.stop_after: a chunk on purpose, no model to embed yet
        stop.paused("train", fmt::format("train.stop_after: step {} of {}", s.steps, p.steps));
        stopped = kExitOk;
        return;
      }
      eval = s.final_eval;
      rows.emplace_back("train", fmt::format("{} steps, {:.0f} users/s, final loss {:.3f}", s.steps, s.users_per_s,
                                             s.final_loss));
    });
    if (want("embed")) timed("embed", [&] {
      auto cfgn = stage_config(ctx, "embed",
                               {"embed.model=" + (train_dir / "model").string(), "embed.shards=" + shards.string(),
                                "embed.output=" + emb.string()},
                               emb.parent_path(), {"infer"});
      auto p = infer::embed_params_from_config(cfgn);
      p.config_yaml = cfg::to_yaml(cfgn);
      auto s = infer::run_embed(p);
      rows.emplace_back("embed", fmt::format("{} users -> {}", s.users_embedded, s.output));
    });
    if (want("segment")) timed("segment", [&] {
      auto cfgn = stage_config(ctx, "segment", {"segment.embeddings=" + emb.string(), "segment.output=" + seg.string()},
                               seg.parent_path(), {"infer"});
      auto p = infer::segment_params_from_config(cfgn);
      p.config_yaml = cfg::to_yaml(cfgn);
      auto s = infer::run_segment(p);
      rows.emplace_back("segment", fmt::format("k={}, inertia {:.4g}, {} iterations", s.k, s.inertia, s.iterations));
      if (fs::exists(shards / "id_map.csv") && fs::exists(raw / "truth.csv")) {
        auto [v, n] = segment_nmi(seg, shards / "id_map.csv", raw / "truth.csv");
        rows.emplace_back("segment NMI vs planted", fmt::format("{:.3f} over {} users", v, n));
        std::cout << fmt::format("segment NMI against the planted segments: {:.3f} ({} users)\n", v, n);
      }
    });
    if (want("score")) timed("score", [&] {
      auto cfgn = stage_config(ctx, "score", {"score.embeddings=" + emb.string(), "score.output_dir=" + scores.string()},
                               scores, {"infer"});
      auto p = infer::score_params_from_config(cfgn);
      p.config_yaml = cfg::to_yaml(cfgn);
      auto s = infer::run_score(p);
      rows.emplace_back("score", fmt::format("{} users x {} heads", s.users, s.targets));
    });
    if (want("tags")) timed("tags", [&] {
      std::vector<std::string> ov = {"tags.shards=" + shards.string(), "tags.output_dir=" + tags_dir.string()};
      if (fs::exists(seg)) ov.push_back("tags.segments=" + seg.string());
      if (fs::exists(scores / "scores.h5")) ov.push_back("tags.scores=" + scores.string());
      auto cfgn = stage_config(ctx, "tags", ov, tags_dir, {});
      auto p = tags::tag_params_from_config(cfgn);
      p.config_yaml = cfg::to_yaml(cfgn);
      auto s = tags::run_tags(p);
      rows.emplace_back("tags", fmt::format("{} users ({} with purchases){}", s.users, s.buyers,
                                            s.rules.empty() ? "" : ", segment rules"));
    });
    std::string html;
    if (want("profile")) timed("profile", [&] {
      auto cfgn = stage_config(ctx, "profile",
                               {"profile.embeddings=" + emb.string(), "profile.segments=" + seg.string(),
                                "profile.scores=" + scores.string(), "profile.shards=" + shards.string(),
                                "profile.metrics=" + (train_dir / "metrics.jsonl").string(),
                                "profile.output_dir=" + report.string(),
                                "profile.rules=" + (fs::exists(tags_dir / "segment_rules.json") ? tags_dir.string() : "")},
                               report, {"infer"});
      auto p = infer::profile_params_from_config(cfgn);
      p.config_yaml = cfg::to_yaml(cfgn);
      auto s = infer::run_profile(p);
      html = s.html;
      rows.emplace_back("profile", fmt::format("{} segments published, {} suppressed (k-anonymity)", s.published,
                                               s.suppressed));
    });

    if (stopped) return *stopped;

    std::cout << "\n+-------------------------+----------------------------------------------------------+\n";
    std::cout << fmt::format("| {:<23} | {:<56} |\n", "Portrait demo", run.string().substr(0, 56));
    std::cout << "+-------------------------+----------------------------------------------------------+\n";
    for (const auto& [k, v] : rows) std::cout << fmt::format("| {:<23} | {:<56} |\n", k, v.substr(0, 56));
    for (const char* split : {"test"}) {
      if (!eval.contains(split)) continue;
      const auto& e = eval[split];
      auto get = [&](const char* who, const char* key) {
        return e.contains(who) && e[who].contains(key) && e[who][key].is_number() ? e[who][key].get<double>()
                                                                                   : std::nan("");
      };
      std::cout << fmt::format("| {:<23} | {:<56} |\n", "Recall@10 (test)",
                               fmt::format("{:.4f} model vs {:.4f} popularity", get("model", "recall@10"),
                                           get("popularity", "recall@10")));
      if (e.contains("purchase") && e["purchase"].contains("mean_auc") && e["purchase"]["mean_auc"].is_number())
        std::cout << fmt::format("| {:<23} | {:<56} |\n", "purchase AUC (test)",
                                 fmt::format("{:.4f} (mean over heads)", e["purchase"]["mean_auc"].get<double>()));
    }
    double total = 0;
    std::string t;
    for (const auto& [k, v] : times) {
      total += v;
      t += fmt::format("{} {:.0f}s ", k, v);
    }
    std::cout << fmt::format("| {:<23} | {:<56} |\n", fmt::format("wall time {:.0f}s", total), t.substr(0, 56));
    std::cout << "+-------------------------+----------------------------------------------------------+\n";
    if (!html.empty()) std::cout << "report: " << html << "\n";
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
