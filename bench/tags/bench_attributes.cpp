// Attribute prediction on a real user table (MovieLens-100K's ml-100k.user: age, gender,
// occupation): kNN on the embeddings, a logistic head on the embeddings and trees on the tags,
// against the majority class, on a held-out fifth of the users (95% bootstrap intervals).
//
//   bench_tags_attributes --embeddings E.h5 --shards S --users ml-100k.user --key KEY
//       [--bands age=25,35,45] [--skip zip_code] [--seed 1] [--test 0.2] [--out results.json]
//       [--predictions predictions.csv]   (user_id,attribute,value,confidence,method of the
//                                          unlabelled users; pseudonymous ids)
//
// --key is prep's pseudonymization key (bench/real/run.sh: real-benchmark-key): the table's raw
// ids are hashed the way prep hashed them, so only pseudonyms meet the embeddings.
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unordered_map>

#include "core/fs.h"
#include "data/prep.h"
#include "infer/h5.h"
#include "tags/attributes.h"
#include "tags/rules.h"
#include "tags/tags.h"

namespace h5 = portrait::infer::h5;
namespace tg = portrait::tags;

namespace {

std::vector<double> parse_edges(const std::string& s) {
  std::vector<double> out;
  size_t a = 0;
  while (a <= s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    out.push_back(std::stod(s.substr(a, b - a)));
    a = b + 1;
  }
  return out;
}

std::string ci(const tg::Metrics& m, bool f1) {
  return f1 ? fmt::format("{:.3f} [{:.3f}, {:.3f}]", m.macro_f1, m.macro_f1_lo, m.macro_f1_hi)
            : fmt::format("{:.3f} [{:.3f}, {:.3f}]", m.accuracy, m.accuracy_lo, m.accuracy_hi);
}

nlohmann::json to_json(const tg::Metrics& m) {
  return {{"accuracy", m.accuracy}, {"accuracy_ci95", {m.accuracy_lo, m.accuracy_hi}},
          {"macro_f1", m.macro_f1}, {"macro_f1_ci95", {m.macro_f1_lo, m.macro_f1_hi}}};
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a{{"--seed", "1"}, {"--test", "0.2"}, {"--skip", "zip_code"}};
  std::map<std::string, std::vector<double>> bands;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--bands") {
      const auto eq = v.find('=');
      bands[v.substr(0, eq)] = parse_edges(v.substr(eq + 1));
    } else {
      a[k] = v;
    }
  }
  for (const char* req : {"--embeddings", "--shards", "--users", "--key"})
    if (!a.count(req)) {
      std::cerr << "usage: bench_tags_attributes --embeddings E.h5 --shards S --users U --key KEY "
                   "[--bands age=25,35,45] [--skip zip_code] [--seed 1] [--test 0.2] [--out results.json]\n";
      return 2;
    }
  try {
    // Embeddings (torch-free read through infer/h5).
    h5::H f = h5::open_file(a["--embeddings"]);
    const auto ids = h5::read_strings(f, "user_id");
    std::vector<hsize_t> dims;
    const auto x = h5::read_float(f, "embedding", &dims);
    const int d = int(dims.at(1));
    // Tags of the same users, reordered to the embeddings' rows.
    tg::TagParams tp;
    const auto act = tg::read_activity(a["--shards"], tg::activity_options(tp));
    const auto table = tg::compute_tags(act, tp);
    auto feats = tg::rule_features(table, act);
    std::unordered_map<std::string, size_t> row_of;
    const auto& tid = table.at("user_id").s;
    for (size_t i = 0; i < tid.size(); ++i) row_of[tid[i]] = i;
    for (auto& ft : feats) {
      std::vector<double> xx;
      std::vector<int> cc;
      for (const auto& id : ids) {
        const auto it = row_of.find(id);
        const size_t r = it == row_of.end() ? SIZE_MAX : it->second;
        if (ft.categorical) cc.push_back(r == SIZE_MAX ? 0 : ft.code[r]);
        else xx.push_back(r == SIZE_MAX ? 0.0 : ft.x[r]);
      }
      ft.x = std::move(xx);
      ft.code = std::move(cc);
    }
    // The attribute table, keyed by the same pseudonyms.
    const auto at = tg::read_attribute_table(a["--users"], "user_id");
    std::unordered_map<std::string, size_t> urow;
    for (size_t i = 0; i < at.user_id.size(); ++i) urow[portrait::data::pseudonymize(a["--key"], at.user_id[i])] = i;
    size_t matched = 0;
    for (const auto& id : ids) matched += urow.count(id);
    std::cout << fmt::format("{} embedded users ({} dims), {} in the attribute table, {} with tags\n", ids.size(), d,
                             matched, row_of.size());
    std::set<std::string> skip;
    for (size_t p = 0, q; p <= a["--skip"].size(); p = q + 1) {
      q = a["--skip"].find(',', p);
      if (q == std::string::npos) q = a["--skip"].size();
      skip.insert(a["--skip"].substr(p, q - p));
    }
    nlohmann::json out = nlohmann::json::array();
    std::string preds = "user_id,attribute,value,confidence,method\n";
    std::string diffs = "\n| attribute | paired difference | accuracy | macro-F1 |\n|---|---|---|---|\n";
    std::cout << "| attribute | classes | train / test | metric | majority | kNN (embeddings) | logistic (embeddings) | "
                 "tree (tags) |\n|---|---|---|---|---|---|---|---|\n";
    for (size_t k = 0; k < at.names.size(); ++k) {
      if (skip.count(at.names[k])) continue;
      auto vals = at.values[k];
      if (bands.count(at.names[k])) vals = tg::band(vals, bands[at.names[k]], at.names[k]);
      std::vector<std::string> label;
      for (const auto& id : ids) {
        const auto it = urow.find(id);
        label.push_back(it == urow.end() ? "" : vals[it->second]);
      }
      const auto r = tg::compare_predictors(at.names[k], label, ids, x, d, feats, std::stod(a["--test"]),
                                            std::stoull(a["--seed"]));
      for (bool f1 : {false, true})
        std::cout << fmt::format("| {} | {} | {} / {} | {} | {} | {} (k={}) | {} (L2={:g}) | {} |\n", r.attribute,
                                 r.classes.size(), r.train, r.test, f1 ? "macro-F1" : "accuracy", ci(r.majority, f1),
                                 ci(r.knn, f1), r.knn_k, ci(r.logistic, f1), r.logistic_l2, ci(r.tree, f1));
      for (const auto& [name, m] : {std::pair{"kNN - majority", &r.knn_vs_majority},
                                    {"logistic - majority", &r.logistic_vs_majority},
                                    {"tree - majority", &r.tree_vs_majority},
                                    {"logistic - kNN", &r.logistic_vs_knn},
                                    {"tree - kNN", &r.tree_vs_knn}})
        diffs += fmt::format("| {} | {} | {:+.3f} [{:+.3f}, {:+.3f}] | {:+.3f} [{:+.3f}, {:+.3f}] |\n", r.attribute, name,
                             m->accuracy, m->accuracy_lo, m->accuracy_hi, m->macro_f1, m->macro_f1_lo, m->macro_f1_hi);
      for (size_t u = 0; u < r.unlabelled.size(); ++u)
        preds += fmt::format("{},{},{},{:.4f},{}\n", ids[r.unlabelled[u]], r.attribute, r.predicted[u], r.confidence[u],
                             r.chosen);
      out.push_back({{"attribute", r.attribute}, {"predicted_with", r.chosen}, {"unlabelled", r.unlabelled.size()}, {"classes", r.classes}, {"train", r.train}, {"test", r.test},
                     {"knn_k", r.knn_k}, {"logistic_l2", r.logistic_l2}, {"majority", to_json(r.majority)},
                     {"knn", to_json(r.knn)}, {"logistic", to_json(r.logistic)}, {"tree", to_json(r.tree)},
                     {"paired", {{"knn_minus_majority", to_json(r.knn_vs_majority)},
                                 {"logistic_minus_majority", to_json(r.logistic_vs_majority)},
                                 {"tree_minus_majority", to_json(r.tree_vs_majority)},
                                 {"logistic_minus_knn", to_json(r.logistic_vs_knn)},
                                 {"tree_minus_knn", to_json(r.tree_vs_knn)}}}});
    }
    std::cout << diffs;
    if (a.count("--out")) portrait::write_file_atomic(a["--out"], out.dump(2) + "\n");
    if (a.count("--predictions")) portrait::write_file_atomic(a["--predictions"], preds);
  } catch (const std::exception& e) {
    std::cerr << "bench_tags_attributes: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
