#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "models/losses.h"

namespace portrait {
namespace {

double lse(std::vector<double> v) {
  double m = -INFINITY;
  for (double x : v) m = std::max(m, x);
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

torch::Tensor T(std::vector<std::vector<double>> rows) {
  std::vector<double> flat;
  for (auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return torch::tensor(flat, torch::kDouble).view({static_cast<int64_t>(rows.size()), -1});
}

TEST(SampledSoftmax, MatchesAHandComputedCase) {
  auto q = T({{1, 0}, {0, 1}});
  auto pos = T({{0.6, 0.8}, {1, 0}});
  auto neg = T({{0, -1}});
  auto inv_t = torch::full({}, 2.0, torch::kDouble);
  auto loss = sampled_softmax_loss(q, pos, torch::tensor({1L, 2L}), torch::tensor({0L, 1L}), neg,
                                   torch::tensor({3L}), {}, 0.0, inv_t);
  // Row 0 logits: [q0.p0, q0.p1, q0.n] * 2 = [1.2, 2, 0]; target 0.
  // Row 1 logits: [q1.p0, q1.p1, q1.n] * 2 = [1.6, 0, -2]; target 1.
  double expected = 0.5 * ((lse({1.2, 2, 0}) - 1.2) + (lse({1.6, 0, -2}) - 0));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-9);
}

TEST(SampledSoftmax, LogQCorrectionSubtractsEachCandidatesLogProbability) {
  auto q = T({{1, 0}, {0, 1}});
  auto pos = T({{0.6, 0.8}, {1, 0}});
  auto neg = T({{0, -1}});
  auto inv_t = torch::full({}, 1.0, torch::kDouble);
  auto logq = torch::tensor({std::log(0.5), std::log(0.1)}, torch::kDouble);
  double lu = std::log(0.01);
  auto loss = sampled_softmax_loss(q, pos, torch::tensor({1L, 2L}), torch::tensor({0L, 1L}), neg,
                                   torch::tensor({3L}), logq, lu, inv_t);
  double r0 = lse({0.6 - logq[0].item<double>(), 0.0 + 0.8 * 0 + 1.0 * 0 + 1.0 - logq[1].item<double>(), 0 - lu}) -
              (0.6 - logq[0].item<double>());
  // q0 = (1,0): q0.p1 = 1.0
  r0 = lse({0.6 - std::log(0.5), 1.0 - std::log(0.1), 0.0 - lu}) - (0.6 - std::log(0.5));
  double r1 = lse({0.8 - std::log(0.5), 0.0 - std::log(0.1), -1.0 - lu}) - (0.0 - std::log(0.1));
  EXPECT_NEAR(loss.item<double>(), 0.5 * (r0 + r1), 1e-9);
  // The correction must matter: without it the loss differs.
  auto plain = sampled_softmax_loss(q, pos, torch::tensor({1L, 2L}), torch::tensor({0L, 1L}), neg,
                                    torch::tensor({3L}), {}, 0.0, inv_t);
  EXPECT_GT(std::abs(plain.item<double>() - loss.item<double>()), 1e-3);
}

TEST(SampledSoftmax, AUsersOwnPositivesAreNotItsNegatives) {
  // Rows 0 and 1 belong to user 7: neither may be the other's negative.
  auto q = T({{1, 0}, {0, 1}, {0.6, 0.8}});
  auto pos = T({{0, 1}, {1, 0}, {-1, 0}});
  auto inv_t = torch::full({}, 1.0, torch::kDouble);
  auto loss = sampled_softmax_loss(q, pos, torch::tensor({1L, 2L, 3L}), torch::tensor({7L, 7L, 8L}), {},
                                   {}, {}, 0.0, inv_t);
  double r0 = lse({0.0, -1.0}) - 0.0;       // candidates p0, p2 (p1 masked)
  double r1 = lse({0.0, 0.0}) - 0.0;        // candidates p1, p2 (p0 masked)
  double r2 = lse({0.8, 0.6, -0.6}) + 0.6;  // all three
  EXPECT_NEAR(loss.item<double>(), (r0 + r1 + r2) / 3.0, 1e-9);
}

TEST(SampledSoftmax, SampledNegativeThatIsAPositiveIsMasked) {
  auto q = T({{1, 0}});
  auto pos = T({{1, 0}});
  auto neg = T({{1, 0}, {0, 1}});  // first sampled negative is the positive item itself
  auto inv_t = torch::full({}, 1.0, torch::kDouble);
  auto loss = sampled_softmax_loss(q, pos, torch::tensor({4L}), torch::tensor({0L}), neg,
                                   torch::tensor({4L, 5L}), {}, 0.0, inv_t);
  EXPECT_NEAR(loss.item<double>(), lse({1.0, 0.0}) - 1.0, 1e-9);
}

TEST(SampledSoftmax, DuplicatePositiveItemsAcrossUsersAreNotNegatives) {
  auto q = T({{1, 0}, {0, 1}});
  auto pos = T({{0.6, 0.8}, {0.6, 0.8}});
  auto inv_t = torch::full({}, 1.0, torch::kDouble);
  auto loss = sampled_softmax_loss(q, pos, torch::tensor({9L, 9L}), torch::tensor({0L, 1L}), {}, {}, {},
                                   0.0, inv_t);
  EXPECT_NEAR(loss.item<double>(), 0.0, 1e-12);  // only the positive remains in each row
}

TEST(PurchaseBce, MatchesTheFormulaAndHonoursWeights) {
  auto logits = torch::tensor({{0.5, -1.0}, {2.0, 0.0}});
  auto labels = torch::tensor({{1.0, 0.0}, {0.0, 1.0}});
  auto bce = [](double x, double y) { return -(y * std::log(1 / (1 + std::exp(-x))) + (1 - y) * std::log(1 - 1 / (1 + std::exp(-x)))); };
  double all = (bce(0.5, 1) + bce(-1, 0) + bce(2, 0) + bce(0, 1)) / 4;
  EXPECT_NEAR(purchase_bce_loss(logits, labels).item<double>(), all, 1e-6);
  auto w = torch::tensor({{1.0, 0.0}, {0.0, 1.0}});
  EXPECT_NEAR(purchase_bce_loss(logits, labels, w).item<double>(), (bce(0.5, 1) + bce(0, 1)) / 2, 1e-6);
}

TEST(ClipLoss, IsSymmetricInfoNceOverValidRows) {
  auto a = T({{1, 0}, {0, 1}, {0.6, 0.8}});
  auto b = T({{0.6, 0.8}, {0, 1}, {1, 0}});
  auto valid = torch::tensor({true, true, false});
  auto inv_t = torch::full({}, 1.0, torch::kDouble);
  // Valid rows 0,1: logits a.b^T = [[0.6, 0],[0.8, 1]].
  double row = (lse({0.6, 0.0}) - 0.6 + lse({0.8, 1.0}) - 1.0) / 2;
  double col = (lse({0.6, 0.8}) - 0.6 + lse({0.0, 1.0}) - 1.0) / 2;
  EXPECT_NEAR(clip_loss(a, b, valid, inv_t).item<double>(), 0.5 * (row + col), 1e-9);
  EXPECT_EQ(clip_loss(a, b, torch::tensor({true, false, false}), inv_t).item<double>(), 0.0);
}

TEST(MaskedItem, IsFullSoftmaxNeverPredictingPadding) {
  auto states = T({{1, 0}});
  auto items = T({{5, 5}, {1, 0}, {0, 1}});  // item 0 is padding: even a huge score is ignored
  auto inv_t = torch::full({}, 1.0, torch::kDouble);
  auto loss = masked_item_loss(states, torch::tensor({1L}), items, inv_t);
  EXPECT_NEAR(loss.item<double>(), lse({1.0, 0.0}) - 1.0, 1e-9);
}

TEST(Temperature, LearnedInverseTemperatureIsClampedAndTrainable) {
  LearnedTemperature t(0.07, true, 100.0);
  EXPECT_NEAR(t->forward().item<double>(), 1 / 0.07, 1e-4);
  EXPECT_EQ(t->parameters().size(), 1u);
  LearnedTemperature fixed(0.001, false, 100.0);
  EXPECT_NEAR(fixed->forward().item<double>(), 100.0, 1e-6);
  EXPECT_TRUE(fixed->parameters().empty());
}

}  // namespace
}  // namespace portrait
