// Attribute prediction: a platform knows some users' attributes (age band, gender,
// occupation, ...) and wants them for the rest. Three predictors, compared on a held-out part
// of the labelled users against the majority class:
//   * kNN on the user embeddings (cosine, exact top-k with kernels/topk.h's CPU path, votes
//     weighted by similarity);
//   * a multinomial logistic head on the embeddings (full-batch gradient descent, L2);
//   * one-vs-rest shallow trees on the readable tags (rules.h; class = the highest leaf rate).
// Hyper-parameters (k, L2) are chosen on an inner validation part of the training users
// only. Splits are a hash of the pseudonymous id and a seed: deterministic, input-order free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tags/rules.h"

namespace portrait::tags {

/// A user-attribute table: ids and, per attribute, a value per user ("" = unlabelled).
struct AttributeTable {
  std::vector<std::string> user_id;
  std::vector<std::string> names;                 ///< attribute columns
  std::vector<std::vector<std::string>> values;   ///< [attribute][user]
};

/// Reads a CSV or TSV (tab when the header holds one) with a header row; RecBole-style
/// headers "age:token" are read as "age". `id_column` names the user column; every other
/// column is an attribute. Throws DataError naming the file and line on a ragged row.
AttributeTable read_attribute_table(const std::string& path, const std::string& id_column);

/// Numeric values -> band labels by ascending edges: "<e0", "e0-e1" (e0 <= v < e1), ...,
/// ">=en". "" stays "" and a non-number is an error naming `what`.
std::vector<std::string> band(const std::vector<std::string>& values, const std::vector<double>& edges,
                              const std::string& what);

/// true: user `id` falls in the held-out part (a hash of the id and the seed).
bool held_out(const std::string& id, uint64_t seed, double fraction);

struct Metrics {
  double accuracy = 0, macro_f1 = 0;
  double accuracy_lo = 0, accuracy_hi = 0, macro_f1_lo = 0, macro_f1_hi = 0;  ///< 95% bootstrap
};
/// Accuracy and macro-F1 (over the classes in truth or prediction) with 95% percentile
/// bootstrap intervals over users (`draws` resamples, seeded).
Metrics evaluate(const std::vector<int>& truth, const std::vector<int>& pred, int n_classes, int draws = 1000,
                 uint64_t seed = 1);

/// Paired difference a - b of two predictors on the same users: accuracy and macro-F1 with
/// 95% percentile bootstrap intervals (both scored on the same resamples).
Metrics paired_difference(const std::vector<int>& truth, const std::vector<int>& a, const std::vector<int>& b,
                          int n_classes, int draws = 1000, uint64_t seed = 1);

/// Predictions for `test` rows from `train` rows (indices into the row-major [n, d] `x` /
/// the per-user labels `y` in [0, n_classes)).
std::vector<int> predict_majority(const std::vector<int>& y, const std::vector<size_t>& train, size_t n_test,
                                  int n_classes);
/// `confidence` (optional) receives, per test row, the predicted class's share: of the kNN
/// votes, the softmax probability, or of the trees' leaf rates.
std::vector<int> predict_knn(const std::vector<float>& x, int d, const std::vector<int>& y,
                             const std::vector<size_t>& train, const std::vector<size_t>& test, int n_classes, int k,
                             std::vector<double>* confidence = nullptr);
std::vector<int> predict_logistic(const std::vector<float>& x, int d, const std::vector<int>& y,
                                  const std::vector<size_t>& train, const std::vector<size_t>& test, int n_classes,
                                  double l2, int iterations = 300, std::vector<double>* confidence = nullptr);
std::vector<int> predict_tree(const std::vector<Feature>& f, const std::vector<int>& y, const std::vector<size_t>& train,
                              const std::vector<size_t>& test, int n_classes, const RuleParams& p,
                              std::vector<double>* confidence = nullptr);

struct AttributeResult {
  std::string attribute;
  std::vector<std::string> classes;
  int64_t train = 0, test = 0;
  int knn_k = 0;
  double logistic_l2 = 0;
  Metrics majority, knn, logistic, tree;
  /// Paired differences on the test users: each predictor minus the majority, and the
  /// logistic head and the tree minus kNN.
  Metrics knn_vs_majority, logistic_vs_majority, tree_vs_majority, logistic_vs_knn, tree_vs_knn;
  /// Predictions for the unlabelled users (rows with label ""), by the predictor with the best
  /// inner-validation macro-F1 ("knn" | "logistic" | "tree"), refitted on every labelled user.
  std::string chosen;
  std::vector<size_t> unlabelled;
  std::vector<std::string> predicted;
  std::vector<double> confidence;
};

/// The whole comparison for one attribute: `label[i]` of user i ("" = unlabelled), the
/// embeddings `x` [n, d] and tree features of the same users, held-out part by `seed`.
AttributeResult compare_predictors(const std::string& attribute, const std::vector<std::string>& label,
                                   const std::vector<std::string>& ids, const std::vector<float>& x, int d,
                                   const std::vector<Feature>& features, double test_fraction, uint64_t seed);

}  // namespace portrait::tags
