// Probability calibration of purchase scores: so "expected buyers" computed from a head's
// probabilities match the buyers that come. Fitted on a labelled calibration split (e.g.
// validation users with their observed purchase in the label window), then applied to every
// score. Torch-free; plain doubles.
//
//   isotonic     pool-adjacent-violators fit of a non-decreasing map score -> probability,
//                applied with linear interpolation between the fitted blocks and clipped at
//                the ends (as scikit-learn's IsotonicRegression(out_of_bounds="clip")). Needs
//                about a thousand or more calibration samples.
//   platt        p = sigmoid(a * logit(s) + b), maximum likelihood by Newton's method (two
//                parameters; Platt 1999 on the score's log-odds).
//   temperature  p = sigmoid(logit(s) / T), maximum likelihood (Guo et al. 2017): one
//                parameter, so it fixes over- / under-confidence but not a shifted base rate.
// Platt and temperature maps are strictly increasing (AUC unchanged); isotonic is
// non-decreasing (it may tie scores, which can move AUC slightly).
//
// Metrics: ECE with equal-width bins (15 by default, as Guo et al.) against labels or against
// known true probabilities (the generator's), and the reliability-diagram table behind it.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace portrait::campaign {

struct Calibrator {
  std::string method = "identity";  ///< identity | isotonic | platt | temperature
  // isotonic: blocks in increasing score order
  std::vector<double> x_lo, x_hi, value;
  // platt: a, b; temperature: T
  double a = 1, b = 0, temperature = 1;
  int64_t samples = 0;              ///< calibration samples it was fitted on

  /// Calibrated probability of one score (a probability in [0, 1]).
  double apply(double score) const;
  std::vector<double> apply(const std::vector<double>& scores) const;
  nlohmann::json to_json() const;
  static Calibrator from_json(const nlohmann::json& j);
};

/// Fits `method` (isotonic | platt | temperature) on scores (probabilities) and 0/1 labels.
Calibrator fit_calibrator(const std::string& method, const std::vector<double>& scores,
                          const std::vector<int>& labels);

struct ReliabilityBin {
  double lo = 0, hi = 0;      ///< bin edges of the predicted probability
  int64_t n = 0;
  double mean_predicted = 0;  ///< mean predicted probability in the bin
  double observed = 0;        ///< mean label (or mean true probability) in the bin
  double gap() const { return observed - mean_predicted; }
};

struct Reliability {
  std::vector<ReliabilityBin> bins;
  double ece = 0;   ///< sum over bins of n_b / N * |observed - predicted|
  double mce = 0;   ///< max over non-empty bins of |observed - predicted|
};

/// Reliability table and ECE of `pred` against 0/1 labels (`truth` holds 0/1) or against true
/// probabilities (`truth` in [0, 1]): the "observed" side is the mean of `truth` per bin.
Reliability reliability(const std::vector<double>& pred, const std::vector<double>& truth, int bins = 15);

/// Area under the ROC curve of scores against 0/1 labels (ties count one half).
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);

/// Mean negative log-likelihood (log loss) of probabilities against 0/1 labels (clipped at 1e-15).
double log_loss(const std::vector<double>& pred, const std::vector<int>& labels);

}  // namespace portrait::campaign
