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
//                parameters; Platt 1999 on the score's log-odds). a is kept >= 1e-3: a score
//                that ranks the labels backwards gets a nearly flat increasing map, never a
//                decreasing one (which would reverse an audience).
//   temperature  p = sigmoid(logit(s) / T), maximum likelihood (Guo et al. 2017): one
//                parameter, so it fixes over- / under-confidence but not a shifted base rate.
// Platt and temperature maps are strictly increasing (AUC unchanged); isotonic is
// non-decreasing (it may tie scores, which can move AUC slightly).
//
// Metrics: ECE with equal-width bins (15 by default, as Guo et al.) against labels or against
// known true probabilities (the generator's), and the reliability-diagram table behind it.
//
// HeadCalibration is what the purchase heads carry: `portrait train` fits it on the validation
// split after training (train.calibration), stores it in model.json ("calibration"), `portrait
// embed` copies it to the export (/head attribute "calibration", JSON text) and `portrait
// score` applies it. One map per head where the head has enough validation positives and
// negatives, the map of all heads pooled elsewhere.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace portrait::calib {

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

inline constexpr const char* kCalibrationFormat = "portrait-calibration";
inline constexpr int kCalibrationFormatVersion = 1;

/// Calibration of C purchase heads.
struct HeadCalibration {
  std::string method = "none";                ///< none | isotonic | platt | temperature
  std::string scope = "per_head";             ///< per_head (pooled fallback) | pooled
  std::string fitted_on;                      ///< the split it was fitted on, e.g. "val"
  Calibrator pooled;                          ///< fitted on every head's samples together
  std::vector<std::optional<Calibrator>> heads;  ///< [C]; empty entry = the head uses `pooled`

  bool enabled() const { return method != "none"; }
  /// Calibrated probability of head `c`'s probability p (identity when not enabled).
  double apply(int64_t c, double p) const;
  /// Heads with a map of their own.
  int64_t own_maps() const;
  /// {"format", "format_version", "method", "scope", "fitted_on", "pooled", "heads": [map|null]}
  nlohmann::json to_json() const;
  /// Throws DataError on another format, version or a malformed map.
  static HeadCalibration from_json(const nlohmann::json& j);
};

/// Fits `method` on per-head samples: probs[c] / labels[c] are head c's probabilities and 0/1
/// labels (heads listed in `skip`, e.g. padding and OOV, are ignored). The pooled map uses all
/// other heads' samples; with scope per_head a head gets a map of its own when it has at least
/// `min_class` positives and `min_class` negatives (and its fit succeeds). Throws DataError
/// when the pooled samples lack a class.
HeadCalibration fit_head_calibration(const std::string& method, const std::string& scope,
                                     const std::vector<std::vector<double>>& probs,
                                     const std::vector<std::vector<int>>& labels, int64_t min_class,
                                     const std::vector<int64_t>& skip = {});

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

/// Mean negative log-likelihood (log loss) of probabilities against 0/1 labels, clipped to
/// [eps, 1 - eps] (scikit-learn's 1e-15 by default; float32 probabilities want 1e-7).
double log_loss(const std::vector<double>& pred, const std::vector<int>& labels, double eps = 1e-15);

}  // namespace portrait::calib
