// RFM quintile scores (ties, direction) and the name grid.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tags/rfm.h"

namespace portrait::tags {
namespace {

TEST(RfmScores, TieFreeValuesSpreadOverFiveQuintiles) {
  EXPECT_EQ(quintile_scores({10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, true),
            (std::vector<int>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
  EXPECT_EQ(quintile_scores({3, 1, 2, 5, 4}, true), (std::vector<int>{3, 1, 2, 5, 4}));
}

TEST(RfmScores, RecencyScoresFewerDaysHigher) {
  EXPECT_EQ(quintile_scores({1, 40, 5, 10, 20}, false), (std::vector<int>{5, 1, 4, 3, 2}));
}

TEST(RfmScores, TiesGetEqualScoresFromTheirLowestPosition) {
  // Three of four tied at the bottom: all score 1; the one above them sees 3 worse values.
  EXPECT_EQ(quintile_scores({1, 1, 2, 1}, true), (std::vector<int>{1, 1, 4, 1}));
  EXPECT_EQ(quintile_scores({7, 7, 7}, true), (std::vector<int>{1, 1, 1}));
  EXPECT_TRUE(quintile_scores({}, true).empty());
  // Independent of input order.
  auto a = quintile_scores({5, 2, 2, 9, 2, 5}, true), b = quintile_scores({2, 2, 5, 2, 9, 5}, true);
  EXPECT_EQ(a[0], b[2]);
  EXPECT_EQ(a[3], b[4]);
  EXPECT_EQ(a[1], b[0]);
}

TEST(RfmNames, GridCornersAndDocumentedCells) {
  EXPECT_STREQ(rfm_name(5, 5, 5), "Champions");
  EXPECT_STREQ(rfm_name(5, 1, 1), "New Customers");
  EXPECT_STREQ(rfm_name(4, 1, 1), "Promising");
  EXPECT_STREQ(rfm_name(5, 2, 3), "Potential Loyalists");
  EXPECT_STREQ(rfm_name(4, 4, 5), "Loyal Customers");
  EXPECT_STREQ(rfm_name(3, 3, 3), "Need Attention");
  EXPECT_STREQ(rfm_name(3, 1, 2), "About to Sleep");
  EXPECT_STREQ(rfm_name(2, 3, 4), "At Risk");
  EXPECT_STREQ(rfm_name(1, 5, 5), "Can't Lose Them");
  EXPECT_STREQ(rfm_name(2, 1, 1), "Hibernating");
  EXPECT_STREQ(rfm_name(1, 1, 1), "Lost");
  EXPECT_EQ(fm_score(3, 2), 3);  // rounded half up
  EXPECT_EQ(fm_score(1, 2), 2);
  EXPECT_THROW(rfm_name(0, 1, 1), std::invalid_argument);
  EXPECT_THROW(rfm_name(1, 6, 1), std::invalid_argument);
}

TEST(RfmNames, EveryScoreTripleGetsExactlyOneOfTheElevenNames) {
  std::set<std::string> seen;
  const std::set<std::string> names(kRfmNames.begin(), kRfmNames.end());
  ASSERT_EQ(names.size(), 11u);
  for (int r = 1; r <= 5; ++r)
    for (int f = 1; f <= 5; ++f)
      for (int m = 1; m <= 5; ++m) {
        const std::string n = rfm_name(r, f, m);
        int matches = 0;
        for (const char* k : kRfmNames) matches += n == k;
        EXPECT_EQ(matches, 1) << r << f << m;
        seen.insert(n);
      }
  EXPECT_EQ(seen, names);  // every name is reachable
}

}  // namespace
}  // namespace portrait::tags
