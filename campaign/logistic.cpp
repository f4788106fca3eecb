#include "campaign/logistic.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace portrait::campaign {

namespace {

double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }

// Solves A x = r in place for a symmetric positive definite A [m, m] (Cholesky).
void cholesky_solve(std::vector<double>& a, std::vector<double>& r, size_t m) {
  for (size_t j = 0; j < m; ++j) {
    double d = a[j * m + j];
    for (size_t k = 0; k < j; ++k) d -= a[j * m + k] * a[j * m + k];
    if (!(d > 0)) throw std::runtime_error("logistic regression: Hessian is not positive definite");
    d = std::sqrt(d);
    a[j * m + j] = d;
    for (size_t i = j + 1; i < m; ++i) {
      double s = a[i * m + j];
      for (size_t k = 0; k < j; ++k) s -= a[i * m + k] * a[j * m + k];
      a[i * m + j] = s / d;
    }
  }
  for (size_t i = 0; i < m; ++i) {  // L z = r
    double s = r[i];
    for (size_t k = 0; k < i; ++k) s -= a[i * m + k] * r[k];
    r[i] = s / a[i * m + i];
  }
  for (size_t i = m; i-- > 0;) {  // L^T x = z
    double s = r[i];
    for (size_t k = i + 1; k < m; ++k) s -= a[k * m + i] * r[k];
    r[i] = s / a[i * m + i];
  }
}

}  // namespace

double LogisticModel::predict(const float* x) const {
  double z = b;
  for (int64_t j = 0; j < dim; ++j) z += w[size_t(j)] * ((double(x[j]) - mean[size_t(j)]) / sd[size_t(j)]);
  return sigmoid(z);
}

LogisticModel fit_logistic(const std::vector<float>& x, int64_t dim, const std::vector<double>& y,
                           const std::vector<double>& weight, const LogisticParams& p) {
  if (dim <= 0) throw std::invalid_argument("fit_logistic: dim must be positive");
  const size_t n = y.size(), D = size_t(dim), m = D + 1;
  if (n == 0) throw std::invalid_argument("fit_logistic: no rows");
  if (x.size() != n * D) throw std::invalid_argument("fit_logistic: x is not [n, dim]");
  if (!weight.empty() && weight.size() != n) throw std::invalid_argument("fit_logistic: weight is not [n]");
  LogisticModel mdl;
  mdl.dim = dim;
  mdl.mean.assign(D, 0.0);
  mdl.sd.assign(D, 0.0);
  double wsum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double wi = weight.empty() ? 1.0 : weight[i];
    wsum += wi;
    for (size_t j = 0; j < D; ++j) mdl.mean[j] += wi * x[i * D + j];
  }
  if (!(wsum > 0)) throw std::invalid_argument("fit_logistic: weights sum to zero");
  for (size_t j = 0; j < D; ++j) mdl.mean[j] /= wsum;
  for (size_t i = 0; i < n; ++i) {
    const double wi = weight.empty() ? 1.0 : weight[i];
    for (size_t j = 0; j < D; ++j) {
      const double d = x[i * D + j] - mdl.mean[j];
      mdl.sd[j] += wi * d * d;
    }
  }
  for (size_t j = 0; j < D; ++j) {
    mdl.sd[j] = std::sqrt(mdl.sd[j] / wsum);
    if (!(mdl.sd[j] > 1e-12)) mdl.sd[j] = 1.0;  // a constant feature: its weight stays ~0
  }
  // Standardised design with the intercept as column D.
  std::vector<double> z(n * m);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < D; ++j) z[i * m + j] = (x[i * D + j] - mdl.mean[j]) / mdl.sd[j];
    z[i * m + D] = 1.0;
  }
  std::vector<double> beta(m, 0.0), h(m * m), g(m);
  for (mdl.iterations = 0; mdl.iterations < p.max_iter;) {
    std::fill(h.begin(), h.end(), 0.0);
    std::fill(g.begin(), g.end(), 0.0);
    for (size_t i = 0; i < n; ++i) {
      const double* zi = &z[i * m];
      double eta = 0;
      for (size_t j = 0; j < m; ++j) eta += beta[j] * zi[j];
      const double mu = sigmoid(eta), wi = weight.empty() ? 1.0 : weight[i];
      const double r = wi * (y[i] - mu), v = wi * std::max(mu * (1 - mu), 1e-12);
      for (size_t j = 0; j < m; ++j) {
        g[j] += r * zi[j];
        const double vz = v * zi[j];
        for (size_t k = 0; k <= j; ++k) h[j * m + k] += vz * zi[k];
      }
    }
    for (size_t j = 0; j < D; ++j) {
      g[j] -= p.l2 * beta[j];
      h[j * m + j] += p.l2;
    }
    for (size_t j = 0; j < m; ++j)
      for (size_t k = j + 1; k < m; ++k) h[j * m + k] = h[k * m + j];
    cholesky_solve(h, g, m);  // g <- Newton step
    double change = 0;
    for (size_t j = 0; j < m; ++j) {
      beta[j] += g[j];
      change = std::max(change, std::abs(g[j]));
    }
    ++mdl.iterations;
    if (change < p.tol) {
      mdl.converged = true;
      break;
    }
  }
  mdl.w.assign(beta.begin(), beta.begin() + long(D));
  mdl.b = beta[D];
  return mdl;
}

}  // namespace portrait::campaign
