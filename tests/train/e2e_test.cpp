// Slow end-to-end check of the whole training path on CPU:
//   run_synth (planted segments + truth.csv oracle) -> run_prep (shards, id map) ->
//   run_train (model=tiny, the default objectives) -> full-ranking eval on the test split.
// Targets (issue 4): Recall@10 >= 2x the popularity baseline, and the purchase heads' mean AUC
// within 0.05 of the generator's oracle AUC (the true purchase probabilities in truth.csv, joined to
// the shard users through data.privacy.id_map_path). The measured numbers are printed and
// written to <build>/train_e2e_result.json.
//
// Knobs (environment): PORTRAIT_E2E_USERS, PORTRAIT_E2E_STEPS, PORTRAIT_E2E_THREADS (torch
// intra-op threads, default 1: on a shared 2-core box 2 threads spin against other jobs),
// PORTRAIT_E2E_OVERRIDES (space-separated config overrides, e.g. "train.lr=3e-3"),
// PORTRAIT_E2E_DIR (keep the output there). Training uses the shipped configs (train.yaml,
// model=tiny, train=default).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/config/compose.h"
#include "core/config/interpolate.h"
#include "core/fs.h"
#include "data/loader.h"
#include "data/prep.h"
#include "data/shard.h"
#include "data/synth.h"
#include "models/batch.h"
#include "models/checkpoint.h"
#include "models/eval.h"
#include "train/internal.h"
#include "train/trainer.h"

using namespace portrait;
namespace fs = std::filesystem;

namespace {

int64_t env_int(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : def;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else cur += c;
  }
  out.push_back(cur);
  return out;
}

/// The generator's truth for each shard user: segment and per-category purchase probability.
struct Truth {
  int segment = 0;
  std::map<std::string, float> p;  ///< category name -> oracle probability
};

/// pseudonym -> truth row, joined through the id map prep wrote.
std::map<std::string, Truth> load_truth(const fs::path& syn, const fs::path& id_map) {
  std::map<std::string, std::string> pseudo;  // raw id -> pseudonym
  {
    std::ifstream in(id_map);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      auto f = split_csv(line);
      if (f.size() >= 2) pseudo[f[0]] = f[1];
    }
  }
  std::map<std::string, Truth> truth;
  std::ifstream in(syn / "truth.csv");
  std::string line;
  std::getline(in, line);
  auto header = split_csv(line);  // user_id, segment, language, activity, p_<category>...
  while (std::getline(in, line)) {
    auto f = split_csv(line);
    auto it = pseudo.find(f[0]);
    if (it == pseudo.end()) continue;
    auto& row = truth[it->second];
    row.segment = std::stoi(f[1]);
    for (size_t k = 4; k < f.size() && k < header.size(); ++k) row.p[header[k].substr(2)] = std::stof(f[k]);
  }
  return truth;
}

data::Loader ordered_loader(const fs::path& shards, const std::string& split) {
  data::LoaderParams lp;
  lp.shard_dir = shards.string();
  lp.split = split;
  lp.batch_size = 512;
  lp.shuffle = false;
  return data::Loader(lp);
}

/// Mean per-head AUC of the oracle probabilities on `split`, over the heads the model report
/// uses (padding/OOV skipped, one-class heads undefined).
BinaryMetrics oracle_auc(const std::map<std::string, Truth>& truth, const fs::path& shards,
                         const std::string& split) {
  auto vocab = data::read_shard(data::list_shards(shards).front(), {}, true).categories;
  data::Loader loader = ordered_loader(shards, split);
  const int64_t C = loader.num_categories();
  BinaryAccumulator acc(C, {0, 1});
  loader.start_epoch(0, 0);
  data::Batch b;
  int64_t missing = 0;
  while (loader.next(b)) {
    auto probs = torch::zeros({b.rows, C});
    for (int64_t r = 0; r < b.rows; ++r) {
      auto it = truth.find(loader.user_id(b.user_index[size_t(r)]));
      if (it == truth.end()) {
        ++missing;
        continue;
      }
      for (int64_t c = 2; c < C; ++c) {
        auto jt = it->second.p.find(vocab[size_t(c)]);
        if (jt != it->second.p.end()) probs[r][c] = jt->second;
      }
    }
    acc.add(probs, torch::from_blob(b.purchase.data(), {b.rows, C}, torch::kFloat));
  }
  EXPECT_EQ(missing, 0) << "users without a truth row";
  return acc.result();
}

/// The purchase heads' probabilities on `split` against the generator's true probabilities:
/// ECE (15 bins, every (user, head) pair of the real categories) before and after the
/// calibration the model carries, and the expected vs true number of buyers.
struct TruthCalibration {
  double ece_raw = 0, ece_calibrated = 0, expected_raw = 0, expected_calibrated = 0, expected_true = 0;
  int64_t pairs = 0;
  std::string method;
};
TruthCalibration calibration_vs_truth(const std::map<std::string, Truth>& truth, const fs::path& shards,
                                      const fs::path& model_dir, const std::string& split) {
  ModelBundle m = load_model(model_dir);
  m.train(false);
  torch::NoGradGuard ng;
  calib::HeadCalibration cal;
  if (m.meta.contains("calibration")) cal = calib::HeadCalibration::from_json(m.meta["calibration"]);
  auto vocab = data::read_shard(data::list_shards(shards).front(), {}, true).categories;
  data::Loader loader = ordered_loader(shards, split);
  const int64_t C = m.cfg.n_targets;
  std::vector<double> raw, cald, tru;
  loader.start_epoch(0, 0);
  data::Batch b;
  while (loader.next(b)) {
    auto probs = torch::sigmoid(m.head->forward(m.encoder->forward(model_input(b, m.cfg, torch::kCPU)).user))
                     .contiguous();
    auto pa = probs.accessor<float, 2>();
    for (int64_t r = 0; r < b.rows; ++r) {
      auto it = truth.find(loader.user_id(b.user_index[size_t(r)]));
      if (it == truth.end()) continue;
      for (int64_t c = 2; c < C; ++c) {
        auto jt = it->second.p.find(vocab[size_t(c)]);
        if (jt == it->second.p.end()) continue;
        raw.push_back(pa[r][c]);
        cald.push_back(cal.apply(c, pa[r][c]));
        tru.push_back(jt->second);
      }
    }
  }
  TruthCalibration t;
  t.method = cal.enabled() ? cal.method : "none";
  t.pairs = int64_t(raw.size());
  t.ece_raw = calib::reliability(raw, tru).ece;
  t.ece_calibrated = calib::reliability(cald, tru).ece;
  for (size_t i = 0; i < raw.size(); ++i) {
    t.expected_raw += raw[i];
    t.expected_calibrated += cald[i];
    t.expected_true += tru[i];
  }
  return t;
}

/// A reference ranking that knows every user's true segment but nothing personal: items ranked
/// by how often users of that segment acted on them (click/cart/purchase, train split inputs and
/// label windows, all before the test cutoff). Same full-ranking code as the model's report.
RankingMetrics segment_oracle_recall(const std::map<std::string, Truth>& truth, const fs::path& shards,
                                     const std::string& split) {
  std::map<int, torch::Tensor> counts;  // segment -> [V] double
  auto segment_of = [&](data::Loader& l, int64_t user) {
    auto it = truth.find(l.user_id(user));
    return it == truth.end() ? -1 : it->second.segment;
  };
  {
    data::Loader tr = ordered_loader(shards, "train");
    const int64_t V = tr.num_items();
    tr.start_epoch(0, 0);
    data::Batch b;
    while (tr.next(b)) {
      for (int64_t r = 0; r < b.rows; ++r) {
        int seg = segment_of(tr, b.user_index[size_t(r)]);
        if (seg < 0) continue;
        auto& c = counts[seg];
        if (!c.defined()) c = torch::zeros({V}, torch::kDouble);
        auto* cp = c.data_ptr<double>();
        for (int64_t j = 0; j < b.L; ++j) {
          const size_t k = size_t(r * b.L + j);
          if (b.input_mask[k] > 0 && b.event[k] >= 2 && b.event[k] <= 4) cp[b.item[k]] += 1;
        }
        for (int64_t j = 0; j < b.M; ++j) {
          const size_t k = size_t(r * b.M + j);
          if (b.target_mask[k] > 0) cp[b.target_item[k]] += 1;
        }
      }
    }
  }
  data::Loader loader = ordered_loader(shards, split);
  const int64_t V = loader.num_items();
  RankingAccumulator acc;
  loader.start_epoch(0, 0);
  data::Batch b;
  while (loader.next(b)) {
    auto scores = torch::zeros({b.rows, V}, torch::kDouble);
    for (int64_t r = 0; r < b.rows; ++r) {
      auto it = counts.find(segment_of(loader, b.user_index[size_t(r)]));
      if (it != counts.end()) scores[r] = it->second;
    }
    acc.add(scores, torch::from_blob(b.target_item.data(), {b.rows, b.M}, torch::kInt),
            torch::from_blob(b.target_mask.data(), {b.rows, b.M}, torch::kFloat));
  }
  return acc.result();
}

}  // namespace

TEST(TrainEndToEnd, SynthPrepTrainBeatsPopularityAndApproachesOracleAuc) {
  const int64_t threads = env_int("PORTRAIT_E2E_THREADS", 1);
  at::set_num_threads(int(threads));
  const char* keep = std::getenv("PORTRAIT_E2E_DIR");
  const fs::path root = keep && *keep ? fs::path(keep)
                                      : fs::temp_directory_path() / ("portrait_e2e_" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto t0 = std::chrono::steady_clock::now();

  data::SynthParams sp;
  sp.output_dir = (root / "syn").string();
  sp.users = env_int("PORTRAIT_E2E_USERS", 4000);
  sp.items = 1000;
  sp.categories = 20;
  sp.days = 120;
  sp.fault_fraction = 0;
  sp.bot_users = 0;
  data::run_synth(sp);

  data::PrepParams pp;
  pp.input = {(root / "syn/events_00000.csv").string()};
  pp.output_dir = (root / "shards").string();
  pp.hash_key = "e2e-test-key-0123456789abcdef";
  pp.partitions = 2;
  pp.progress = false;
  pp.seq_len = 64;
  pp.text_len = 32;
  pp.tokenizer.vocab_size = 2000;
  pp.data.id_map_path = (root / "id_map.csv").string();
  data::run_prep(pp);
  const double prep_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The shipped config: configs/train.yaml with model=tiny and train=default, plus overrides.
  std::vector<std::string> ov = {"shards=" + pp.output_dir, "seed=1234", "train.eval_every=0",
                                 "train.ckpt_every=0", "train.final_eval_splits=[test]",
                                 "train.progress=false", "train.threads=" + std::to_string(threads)};
  ov.push_back("train.steps=" + std::to_string(env_int("PORTRAIT_E2E_STEPS", 800)));
  if (const char* extra = std::getenv("PORTRAIT_E2E_OVERRIDES"); extra && *extra) {
    std::istringstream is(extra);
    for (std::string o; is >> o;) ov.push_back(o);
  }
  cfg::ComposeOptions co;
  co.search_path = {PORTRAIT_CONFIG_DIR};
  co.config_name = "train";
  co.overrides = ov;
  train::TrainParams p = train::train_params_from_config(cfg::resolve(cfg::compose(co).config));
  auto s = train::run_train(p, root / "run");

  const auto& ev = s.final_eval.at("test");
  const double r10 = ev["model"]["recall@10"], pop10 = ev["popularity"]["recall@10"];
  const double auc = ev["purchase"]["mean_auc"];
  const auto truth = load_truth(root / "syn", pp.data.id_map_path);
  auto oracle = oracle_auc(truth, pp.output_dir, "test");
  auto seg_oracle = segment_oracle_recall(truth, pp.output_dir, "test");
  const double seg10 = seg_oracle.recall.at(0);
  const TruthCalibration tc = calibration_vs_truth(truth, pp.output_dir, s.model_dir, "test");
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  nlohmann::json out = {{"users", sp.users},
                        {"steps", p.steps},
                        {"batch_size", p.batch_size},
                        {"threads", threads},
                        {"overrides", ov},
                        {"train_seconds", s.seconds},
                        {"users_per_s", s.users_per_s},
                        {"tokens_per_s", s.tokens_per_s},
                        {"prep_seconds", prep_s},
                        {"total_seconds", total_s},
                        {"test", ev},
                        {"oracle_mean_auc", oracle.mean_auc},
                        {"segment_oracle", seg_oracle.to_json()},
                        {"oracle_heads", oracle.heads_used},
                        {"calibration_vs_truth",
                         {{"method", tc.method},
                          {"pairs", tc.pairs},
                          {"ece_raw", tc.ece_raw},
                          {"ece_calibrated", tc.ece_calibrated},
                          {"expected_buyers_raw", tc.expected_raw},
                          {"expected_buyers_calibrated", tc.expected_calibrated},
                          {"expected_buyers_true", tc.expected_true}}}};
  write_file_atomic(fs::path(PORTRAIT_BINARY_DIR) / "train_e2e_result.json", out.dump(2) + "\n");
  std::printf("[e2e] %s: Recall@10 model %.4f vs popularity %.4f (x%.2f); NDCG@10 %.4f vs %.4f\n",
              ev["protocol"].get<std::string>().c_str(), r10, pop10, pop10 > 0 ? r10 / pop10 : 0.0,
              ev["model"]["ndcg@10"].get<double>(), ev["popularity"]["ndcg@10"].get<double>());
  std::printf("[e2e] reference: segment oracle (true segment, no personal history) Recall@10 %.4f (x%.2f)\n",
              seg10, pop10 > 0 ? seg10 / pop10 : 0.0);
  std::printf("[e2e] purchase mean AUC model %.4f vs oracle %.4f (%lld heads); train %.1fs, %.0f users/s, "
              "%.0f tokens/s; total %.1fs\n",
              auc, oracle.mean_auc, (long long)oracle.heads_used, s.seconds, s.users_per_s, s.tokens_per_s,
              total_s);
  std::printf("[e2e] purchase heads vs the true probabilities (%lld user x head pairs, 15 bins): ECE %.4f raw, "
              "%.4f calibrated (%s); expected buyers %.0f raw, %.0f calibrated, %.0f true\n",
              (long long)tc.pairs, tc.ece_raw, tc.ece_calibrated, tc.method.c_str(), tc.expected_raw,
              tc.expected_calibrated, tc.expected_true);
  EXPECT_NE(tc.method, "none") << "the shipped defaults calibrate the purchase heads";
  EXPECT_LT(tc.ece_calibrated, tc.ece_raw) << "calibration made the heads' probabilities worse";
  // The acceptance targets: Recall@10 >= 2x popularity and |AUC - oracle| <= 0.05.
  // Measured with the repeat channel (session 4, shipped defaults, 4000 users, 800 steps):
  // x2.10 at seed 1234 (1 and 2 threads alike), x2.08 at seed 7, x2.07 at seed 99; AUC gap
  // 0.034-0.040. Without the channel it was x1.98-2.00, so this pins the channel's effect.
  // Session 5 defaults (user = last event state, dense loss on every position, no future
  // loss, dropout 0.2; the same defaults as on MovieLens-100K): x2.10 (0.4531), AUC 0.7847
  // (gap 0.045) at seed 1234 with 1 thread.
  const bool recall_target = r10 >= 2.0 * pop10, auc_target = std::abs(auc - oracle.mean_auc) <= 0.05;
  std::printf("[e2e] acceptance targets: Recall@10 >= 2x popularity: %s; AUC within 0.05 of oracle: %s\n",
              recall_target ? "MET" : "NOT MET", auc_target ? "MET" : "NOT MET");
  EXPECT_GE(r10, 2.0 * pop10) << "Recall@10 below the acceptance target of 2x popularity";
  EXPECT_LE(std::abs(auc - oracle.mean_auc), 0.05) << "purchase AUC further than 0.05 from the oracle";
  EXPECT_GT(r10, seg10) << "the model no longer beats the segment oracle: personal history is unused";
  if (!(keep && *keep)) fs::remove_all(root);
}
