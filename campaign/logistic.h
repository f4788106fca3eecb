// Weighted L2-regularised logistic regression fitted by Newton's method (IRLS), the response
// model of the uplift learners (campaign/uplift.h). Small dense problems: N rows of D features
// (D up to a few hundred: user embeddings), so each Newton step forms the (D+1)^2 Hessian and
// solves it by Cholesky. Features are standardised on the fitting rows (means and sds kept in
// the model); the intercept is not penalised. Deterministic: plain sequential double sums.
#pragma once

#include <cstdint>
#include <vector>

namespace portrait::campaign {

struct LogisticParams {
  double l2 = 1.0;        ///< penalty lambda/2 |w|^2 on the standardised weights (not the intercept)
  int max_iter = 50;      ///< Newton steps
  double tol = 1e-9;      ///< stop when the largest coefficient change is below this
};

struct LogisticModel {
  int64_t dim = 0;
  std::vector<double> mean, sd;  ///< [dim] standardisation of the fitting rows
  std::vector<double> w;         ///< [dim] weights on standardised features
  double b = 0;                  ///< intercept
  int iterations = 0;
  bool converged = false;

  /// Probability of y = 1 for one row x [dim].
  double predict(const float* x) const;
};

/// Fits rows `x` [n, dim] (row-major), labels `y` [n] in {0, 1}, optional weights [n] (empty
/// = all 1). Throws std::invalid_argument on mismatched sizes or no rows.
LogisticModel fit_logistic(const std::vector<float>& x, int64_t dim, const std::vector<double>& y,
                           const std::vector<double>& weight, const LogisticParams& p = {});

}  // namespace portrait::campaign
