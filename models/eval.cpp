#include "models/eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace portrait {

std::string ranking_protocol(int64_t n_items) {
  return fmt::format("full ranking over {} items (not sampled)", n_items);
}

// ---- ranking -------------------------------------------------------------------------------

RankingAccumulator::RankingAccumulator(std::vector<int64_t> ks, int64_t first_item)
    : ks_(std::move(ks)),
      first_item_(first_item),
      recall_sum_(ks_.size(), 0.0),
      ndcg_sum_(ks_.size(), 0.0),
      hr_sum_(ks_.size(), 0.0),
      recall_sq_(ks_.size(), 0.0),
      ndcg_sq_(ks_.size(), 0.0),
      hr_sq_(ks_.size(), 0.0) {}

void RankingAccumulator::add(const torch::Tensor& scores_in, const torch::Tensor& targets_in,
                             const torch::Tensor& mask_in, const torch::Tensor& seen_in) {
  torch::NoGradGuard ng;
  TORCH_CHECK(scores_in.dim() == 2 && targets_in.dim() == 2 && targets_in.sizes() == mask_in.sizes(),
              "RankingAccumulator::add: scores [B, V], targets and mask [B, M]");
  const int64_t B = scores_in.size(0), V = scores_in.size(1);
  TORCH_CHECK(targets_in.size(0) == B, "RankingAccumulator::add: batch sizes differ");
  n_items_ = std::max<int64_t>(V - first_item_, 0);
  if (B == 0 || n_items_ == 0) return;
  const int64_t kmax = std::min<int64_t>(*std::max_element(ks_.begin(), ks_.end()), n_items_);
  // Rank only real items: top-k over columns [first_item, V).
  torch::Tensor s = scores_in.to(torch::kCPU);
  s = s.scalar_type() == torch::kDouble ? s.clone() : s.to(torch::kFloat).clone();
  if (seen_in.defined() && seen_in.numel() > 0) {
    TORCH_CHECK(seen_in.dim() == 2 && seen_in.size(0) == B, "RankingAccumulator::add: seen must be [B, S]");
    auto sn = seen_in.to(torch::kCPU, torch::kLong);
    sn = sn.masked_fill((sn < first_item_) | (sn >= V), 0);  // column 0 is never ranked
    s.scatter_(1, sn, -std::numeric_limits<double>::infinity());
  }
  auto full = s;  // [B, V], seen items at -inf
  s = s.slice(1, first_item_, V);
  auto [top_s, top_i] = s.topk(kmax, 1, /*largest=*/true, /*sorted=*/true);
  // An excluded (-inf) item can only enter the top-K when fewer than K items are left.
  auto top = (top_i + first_item_).masked_fill(torch::isinf(top_s), -2);  // [B, K]
  auto t = targets_in.to(torch::kCPU, torch::kLong);
  auto valid = mask_in.to(torch::kCPU).to(torch::kBool) & (t >= first_item_) & (t < V);
  auto tv = t.masked_fill(~valid, -1);
  // Distinct valid targets per user.
  auto sorted = std::get<0>(tv.sort(1));
  auto distinct = sorted >= 0;
  if (sorted.size(1) > 1)
    distinct.slice(1, 1).logical_and_(sorted.slice(1, 1) != sorted.slice(1, 0, sorted.size(1) - 1));
  auto count = distinct.sum(1);  // [B]
  // Full rank of every valid target among the ranked (real, unseen) items; ties count half.
  auto ts = full.gather(1, tv.clamp_min(0));                                     // [B, M]
  auto real = full.slice(1, first_item_, V);
  auto higher = torch::zeros(ts.sizes(), torch::kDouble), equal = torch::zeros(ts.sizes(), torch::kDouble);
  for (int64_t m = 0; m < ts.size(1); ++m) {  // one target column at a time: [B, V] memory
    auto col = ts.slice(1, m, m + 1);
    higher.select(1, m).copy_((real > col).sum(1));
    equal.select(1, m).copy_((real == col).sum(1) - 1);
  }
  auto rank = (1.0 + higher + 0.5 * equal.clamp_min(0.0)).masked_fill(~valid | torch::isinf(ts), INFINITY);
  auto best = std::get<0>(rank.min(1));                                          // [B]
  auto br = best.accessor<double, 1>();
  auto hit = (top.unsqueeze(2) == tv.unsqueeze(1)).any(2).to(torch::kDouble);  // [B, K]
  auto disc = 1.0 / torch::log2(torch::arange(2, kmax + 2, torch::kDouble));      // [K]
  auto ideal = disc.cumsum(0);
  auto cnt = count.accessor<int64_t, 1>();
  auto h = hit.accessor<double, 2>();
  auto d = disc.accessor<double, 1>();
  auto id = ideal.accessor<double, 1>();
  for (int64_t b = 0; b < B; ++b) {
    if (cnt[b] == 0) continue;
    ++users_;
    const double rr = std::isfinite(br[b]) ? 1.0 / br[b] : 0.0;
    mrr_sum_ += rr;
    mrr_sq_ += rr * rr;
    for (size_t ki = 0; ki < ks_.size(); ++ki) {
      const int64_t k = std::min<int64_t>(ks_[ki], kmax);
      double hits = 0, dcg = 0;
      for (int64_t r = 0; r < k; ++r) {
        hits += h[b][r];
        dcg += h[b][r] * d[r];
      }
      const double rec = hits / double(cnt[b]), nd = dcg / id[std::min<int64_t>(k, cnt[b]) - 1];
      const double hr = hits > 0 ? 1.0 : 0.0;
      recall_sum_[ki] += rec;
      recall_sq_[ki] += rec * rec;
      ndcg_sum_[ki] += nd;
      ndcg_sq_[ki] += nd * nd;
      hr_sum_[ki] += hr;
      hr_sq_[ki] += hr;
    }
  }
}

RankingMetrics RankingAccumulator::result() const {
  RankingMetrics m;
  m.users = users_;
  m.n_items = n_items_;
  m.ks = ks_;
  const double n = double(users_);
  // Standard error of a mean from the sum and the sum of squares (sample variance).
  auto se = [&](double sum, double sq) {
    if (users_ < 2) return 0.0;
    const double mean = sum / n;
    return std::sqrt(std::max(sq / n - mean * mean, 0.0) * n / (n - 1) / n);
  };
  for (size_t i = 0; i < ks_.size(); ++i) {
    m.recall.push_back(users_ ? recall_sum_[i] / n : 0.0);
    m.ndcg.push_back(users_ ? ndcg_sum_[i] / n : 0.0);
    m.hr.push_back(users_ ? hr_sum_[i] / n : 0.0);
    m.recall_se.push_back(se(recall_sum_[i], recall_sq_[i]));
    m.ndcg_se.push_back(se(ndcg_sum_[i], ndcg_sq_[i]));
    m.hr_se.push_back(se(hr_sum_[i], hr_sq_[i]));
  }
  m.mrr = users_ ? mrr_sum_ / n : 0.0;
  m.mrr_se = se(mrr_sum_, mrr_sq_);
  return m;
}

nlohmann::json RankingMetrics::to_json() const {
  nlohmann::json j = {{"users", users}, {"n_items", n_items}};
  auto ci = [](double m, double se) { return nlohmann::json::array({m - 1.96 * se, m + 1.96 * se}); };
  for (size_t i = 0; i < ks.size(); ++i) {
    j[fmt::format("recall@{}", ks[i])] = recall[i];
    j[fmt::format("ndcg@{}", ks[i])] = ndcg[i];
    j[fmt::format("hr@{}", ks[i])] = hr[i];
    j[fmt::format("recall@{}_ci95", ks[i])] = ci(recall[i], recall_se[i]);
    j[fmt::format("ndcg@{}_ci95", ks[i])] = ci(ndcg[i], ndcg_se[i]);
    j[fmt::format("hr@{}_ci95", ks[i])] = ci(hr[i], hr_se[i]);
  }
  j["mrr"] = mrr;
  j["mrr_ci95"] = ci(mrr, mrr_se);
  return j;
}

// ---- classification -------------------------------------------------------------------------

BinaryAccumulator::BinaryAccumulator(int64_t n_heads, std::vector<int64_t> skip)
    : C_(n_heads), skip_(size_t(n_heads), false), p_(size_t(n_heads)), y_(size_t(n_heads)) {
  for (int64_t c : skip)
    if (c >= 0 && c < C_) skip_[size_t(c)] = true;
}

void BinaryAccumulator::add(const torch::Tensor& probs, const torch::Tensor& labels) {
  torch::NoGradGuard ng;
  TORCH_CHECK(probs.dim() == 2 && probs.sizes() == labels.sizes() && probs.size(1) == C_,
              "BinaryAccumulator::add: probs and labels must be [B, ", C_, "]");
  auto p = probs.to(torch::kCPU, torch::kFloat).contiguous();
  auto y = labels.to(torch::kCPU, torch::kFloat).contiguous();
  auto pa = p.accessor<float, 2>();
  auto ya = y.accessor<float, 2>();
  for (int64_t b = 0; b < p.size(0); ++b)
    for (int64_t c = 0; c < C_; ++c) {
      if (skip_[size_t(c)]) continue;
      p_[size_t(c)].push_back(pa[b][c]);
      y_[size_t(c)].push_back(ya[b][c]);
    }
}

BinaryMetrics BinaryAccumulator::result() const {
  BinaryMetrics m;
  double sa = 0, sl = 0;
  for (int64_t c = 0; c < C_; ++c) {
    const auto& p = p_[size_t(c)];
    const auto& y = y_[size_t(c)];
    m.rows = std::max<int64_t>(m.rows, int64_t(p.size()));
    // One AUC / log-loss implementation (core/calibration.h) for training, score and campaign.
    // Float probabilities are clipped at 1e-7: a float32 sigmoid reaches exactly 1 at logits
    // above ~17, and its log-loss would otherwise depend on where float resolution ends.
    double a = std::numeric_limits<double>::quiet_NaN(), l = a;
    if (!skip_[size_t(c)] && !p.empty()) {
      const std::vector<double> pd(p.begin(), p.end());
      std::vector<int> yi(y.size());
      std::transform(y.begin(), y.end(), yi.begin(), [](float v) { return v > 0.5f ? 1 : 0; });
      a = calib::roc_auc(pd, yi);
      l = calib::log_loss(pd, yi, 1e-7);
    }
    m.auc.push_back(a);
    m.logloss.push_back(l);
    m.positives.push_back(int64_t(std::count_if(y.begin(), y.end(), [](float v) { return v > 0.5f; })));
    if (!std::isnan(a)) {
      sa += a;
      sl += l;
      ++m.heads_used;
    }
  }
  m.mean_auc = m.heads_used ? sa / double(m.heads_used) : std::numeric_limits<double>::quiet_NaN();
  m.mean_logloss = m.heads_used ? sl / double(m.heads_used) : std::numeric_limits<double>::quiet_NaN();
  // Calibration over the heads with a defined AUC (the others have one class or none).
  std::vector<double> all_p, all_y;
  for (int64_t c = 0; c < C_; ++c) {
    if (std::isnan(m.auc[size_t(c)])) continue;
    all_p.insert(all_p.end(), p_[size_t(c)].begin(), p_[size_t(c)].end());
    all_y.insert(all_y.end(), y_[size_t(c)].begin(), y_[size_t(c)].end());
  }
  m.ece = all_p.empty() ? std::numeric_limits<double>::quiet_NaN() : calib::reliability(all_p, all_y).ece;
  for (size_t i = 0; i < all_p.size(); ++i) {
    m.expected_positives += all_p[i];
    m.observed_positives += all_y[i] > 0.5 ? 1 : 0;
  }
  return m;
}

BinaryAccumulator BinaryAccumulator::calibrated(const calib::HeadCalibration& cal) const {
  BinaryAccumulator out = *this;
  for (int64_t c = 0; c < C_; ++c)
    for (auto& v : out.p_[size_t(c)]) v = float(cal.apply(c, double(v)));
  return out;
}

calib::HeadCalibration BinaryAccumulator::fit_calibration(const std::string& method, const std::string& scope,
                                                          int64_t min_class) const {
  std::vector<std::vector<double>> p(static_cast<size_t>(C_));
  std::vector<std::vector<int>> y(static_cast<size_t>(C_));
  std::vector<int64_t> skip;
  for (int64_t c = 0; c < C_; ++c) {
    if (skip_[size_t(c)]) {
      skip.push_back(c);
      continue;
    }
    p[size_t(c)].assign(p_[size_t(c)].begin(), p_[size_t(c)].end());
    for (float v : y_[size_t(c)]) y[size_t(c)].push_back(v > 0.5f ? 1 : 0);
  }
  return calib::fit_head_calibration(method, scope, p, y, min_class, skip);
}

namespace {
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace

nlohmann::json BinaryMetrics::to_json(bool per_head) const {
  nlohmann::json j = {{"rows", rows},
                      {"heads_used", heads_used},
                      {"mean_auc", num(mean_auc)},
                      {"mean_logloss", num(mean_logloss)},
                      {"ece", num(ece)},
                      {"expected_positives", num(expected_positives)},
                      {"observed_positives", observed_positives}};
  if (per_head) {
    j["auc"] = nlohmann::json::array();
    j["logloss"] = nlohmann::json::array();
    for (size_t c = 0; c < auc.size(); ++c) {
      j["auc"].push_back(num(auc[c]));
      j["logloss"].push_back(num(logloss[c]));
    }
    j["positives"] = positives;
  }
  return j;
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j = {{"split", split},
                      {"step", step},
                      {"protocol", ranking_protocol(model.n_items)},
                      {"exclude_seen", exclude_seen},
                      {"split_protocol", split_protocol},
                      {"model", model.to_json()},
                      {"popularity", popularity.to_json()}};
  if (has_purchase) {
    j["purchase"] = purchase.to_json();
    j["purchase_baseline"] = purchase_baseline.to_json(false);
    if (calibrated) {
      j["purchase_calibrated"] = purchase_calibrated.to_json();
      j["calibration"] = calibration;
    }
  }
  return j;
}

std::string EvalReport::table() const {
  std::string s = fmt::format("eval {} ({}) @ step {}: {}{}, {} users with targets\n", split,
                              split_protocol.empty() ? "temporal" : split_protocol, step,
                              ranking_protocol(model.n_items), exclude_seen ? ", seen items excluded" : "",
                              model.users);
  s += fmt::format("  {:<12} {:>10} {:>10}\n", "metric", "model", "popularity");
  for (size_t i = 0; i < model.ks.size(); ++i) {
    s += fmt::format("  {:<12} {:>10.4f} {:>10.4f}\n", fmt::format("Recall@{}", model.ks[i]),
                     model.recall[i], i < popularity.recall.size() ? popularity.recall[i] : 0.0);
    s += fmt::format("  {:<12} {:>10.4f} {:>10.4f}\n", fmt::format("NDCG@{}", model.ks[i]), model.ndcg[i],
                     i < popularity.ndcg.size() ? popularity.ndcg[i] : 0.0);
    s += fmt::format("  {:<12} {:>10.4f} {:>10.4f}\n", fmt::format("HR@{}", model.ks[i]), model.hr[i],
                     i < popularity.hr.size() ? popularity.hr[i] : 0.0);
  }
  s += fmt::format("  {:<12} {:>10.4f} {:>10.4f}\n", "MRR", model.mrr, popularity.mrr);
  if (has_purchase) {
    s += fmt::format("  {:<12} {:>10.4f} {:>10.4f}   (mean over {} heads; baseline = train base rate)\n",
                     "AUC", purchase.mean_auc, purchase_baseline.mean_auc, purchase.heads_used);
    s += fmt::format("  {:<12} {:>10.4f} {:>10.4f}\n", "log-loss", purchase.mean_logloss,
                     purchase_baseline.mean_logloss);
    s += fmt::format("  {:<12} {:>10.4f} {:>10.4f}   (15 bins; expected / observed buyers {:.0f} / {})\n", "ECE",
                     purchase.ece, purchase_baseline.ece, purchase.expected_positives, purchase.observed_positives);
    if (calibrated)
      s += fmt::format("  calibrated ({}): AUC {:.4f}, log-loss {:.4f}, ECE {:.4f}, expected buyers {:.0f}\n",
                       calibration, purchase_calibrated.mean_auc, purchase_calibrated.mean_logloss,
                       purchase_calibrated.ece, purchase_calibrated.expected_positives);
  }
  return s;
}

}  // namespace portrait
