// Attribute prediction: table reading, banding, held-out split, metrics with intervals, and
// that each predictor beats the majority class where the attribute is in its input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "tags/attributes.h"

namespace portrait::tags {
namespace {

TEST(Attributes, ReadsRecBoleHeadersAndRejectsRaggedRows) {
  const auto p = std::filesystem::temp_directory_path() / ("portrait_attr_" + std::to_string(::getpid()) + ".user");
  std::ofstream(p) << "user_id:token\tage:token\tgender:token\n1\t24\tM\n2\t53\t\n";
  const auto t = read_attribute_table(p.string(), "user_id");
  EXPECT_EQ(t.user_id, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(t.names, (std::vector<std::string>{"age", "gender"}));
  EXPECT_EQ(t.values[1], (std::vector<std::string>{"M", ""}));  // user 2: gender unlabelled
  EXPECT_EQ(band(t.values[0], {25, 35, 45}, "age"), (std::vector<std::string>{"<25", ">=45"}));
  EXPECT_EQ(band({"30", "", "35"}, {25, 35, 45}, "age"), (std::vector<std::string>{"25-35", "", "35-45"}));
  EXPECT_THROW(band({"x"}, {1}, "age"), DataError);
  std::ofstream(p) << "user_id,age\n1,2,3\n";
  try {
    read_attribute_table(p.string(), "user_id");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(":2:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_attribute_table(p.string(), "uid"), DataError);
  std::filesystem::remove(p);
}

TEST(Attributes, HeldOutPartIsDeterministicAndNearItsFraction) {
  int n = 0;
  for (int i = 0; i < 10000; ++i) n += held_out("u" + std::to_string(i), 1, 0.2);
  EXPECT_NEAR(n / 10000.0, 0.2, 0.02);
  EXPECT_EQ(held_out("abc", 1, 0.2), held_out("abc", 1, 0.2));
  int moved = 0;
  for (int i = 0; i < 1000; ++i) moved += held_out("u" + std::to_string(i), 1, 0.5) != held_out("u" + std::to_string(i), 2, 0.5);
  EXPECT_GT(moved, 300);  // another seed, another split
}

TEST(Attributes, MetricsAndTheirIntervals) {
  const std::vector<int> t{0, 0, 0, 1, 1, 2}, p{0, 0, 1, 1, 1, 0};
  const auto m = evaluate(t, p, 3, 500, 7);
  EXPECT_DOUBLE_EQ(m.accuracy, 4.0 / 6.0);
  // F1: class 0 2/(2*2+1+1) = 2/3, class 1 2*2/(4+1) = 4/5, class 2 0 -> mean 0.4889
  EXPECT_NEAR(m.macro_f1, (2.0 / 3.0 + 0.8 + 0.0) / 3.0, 1e-12);
  EXPECT_LE(m.accuracy_lo, m.accuracy);
  EXPECT_GE(m.accuracy_hi, m.accuracy);
  EXPECT_LT(m.accuracy_lo, m.accuracy_hi);
  // Paired: a predictor against itself differs by exactly 0; against the truth by 1 - accuracy.
  const auto same = paired_difference(t, p, p, 3, 200, 7);
  EXPECT_EQ(same.accuracy, 0.0);
  EXPECT_EQ(same.accuracy_lo, 0.0);
  EXPECT_EQ(same.accuracy_hi, 0.0);
  const auto vs = paired_difference(t, t, p, 3, 200, 7);
  EXPECT_DOUBLE_EQ(vs.accuracy, 2.0 / 6.0);
  EXPECT_GE(vs.accuracy_lo, 0.0);
}

TEST(Attributes, EveryPredictorBeatsTheMajorityWhereTheAttributeIsInItsInput) {
  // 3 classes (60/25/15%): embeddings are noisy class prototypes, the tag feature is the
  // class plus noise; a distractor feature carries nothing.
  const int n = 1200, d = 8, C = 3;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> noise(0.f, 0.45f);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> x;
  std::vector<std::string> label, ids;
  Feature f, g;
  f.name = "signal";
  g.name = "noise";
  for (int i = 0; i < n; ++i) {
    const double r = u(rng);
    const int c = r < 0.6 ? 0 : r < 0.85 ? 1 : 2;
    for (int j = 0; j < d; ++j) x.push_back((j == c ? 1.f : 0.f) + noise(rng));
    label.push_back("class" + std::to_string(c));
    ids.push_back("u:" + std::to_string(i));
    f.x.push_back(c + 0.3 * noise(rng));
    g.x.push_back(u(rng));
  }
  label[5] = "";  // an unlabelled user is neither trained on nor scored
  const auto r = compare_predictors("planted", label, ids, x, d, {g, f}, 0.25, 1);
  EXPECT_EQ(r.classes.size(), size_t(C));
  EXPECT_EQ(r.train + r.test, n - 1);
  EXPECT_NEAR(r.majority.accuracy, 0.6, 0.07);
  std::printf("majority %.3f/%.3f knn %.3f/%.3f logistic %.3f/%.3f tree %.3f/%.3f\n", r.majority.accuracy,
              r.majority.macro_f1, r.knn.accuracy, r.knn.macro_f1, r.logistic.accuracy, r.logistic.macro_f1,
              r.tree.accuracy, r.tree.macro_f1);
  for (const auto* m : {&r.knn, &r.logistic, &r.tree}) {
    EXPECT_GT(m->accuracy, r.majority.accuracy + 0.15);
    EXPECT_GT(m->macro_f1, r.majority.macro_f1 + 0.3);
  }
  // The unlabelled user gets a prediction with a confidence.
  ASSERT_EQ(r.unlabelled, (std::vector<size_t>{5}));
  ASSERT_EQ(r.predicted.size(), 1u);
  EXPECT_FALSE(r.chosen.empty());
  EXPECT_GT(r.confidence[0], 1.0 / C);
  EXPECT_LE(r.confidence[0], 1.0);
  // Deterministic.
  const auto again = compare_predictors("planted", label, ids, x, d, {g, f}, 0.25, 1);
  EXPECT_EQ(again.knn.accuracy, r.knn.accuracy);
  EXPECT_EQ(again.logistic.macro_f1, r.logistic.macro_f1);
  EXPECT_EQ(again.tree.accuracy, r.tree.accuracy);
}

}  // namespace
}  // namespace portrait::tags
