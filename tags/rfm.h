// RFM (recency, frequency, monetary) scores and the conventional RFM segment names.
//
// Scores 1..5 are quintiles with ties handled deterministically: a value's score is
//   1 + floor(5 * below / n)
// where n is the number of scored users and `below` the number of them with a strictly worse
// value (recency: more days since the last purchase; frequency, monetary: less). Equal values
// always get equal scores; the best value of a tie-free population gets 5, the worst 1; a
// large block of ties (e.g. every one-purchase buyer) takes the score of its lowest position.
//
// Names come from one 5 x 5 grid over R and FM = (F + M + 1) / 2 (the mean of F and M rounded
// half up), so every (R, F, M) has exactly one name:
//
//            FM=1             FM=2                 FM=3                 FM=4             FM=5
//   R=5  New Customers    Potential Loyalists  Potential Loyalists  Champions        Champions
//   R=4  Promising        Potential Loyalists  Potential Loyalists  Loyal Customers  Loyal Customers
//   R=3  About to Sleep   About to Sleep       Need Attention       Loyal Customers  Loyal Customers
//   R=2  Hibernating      Hibernating          At Risk              At Risk          Can't Lose Them
//   R=1  Lost             Hibernating          At Risk              At Risk          Can't Lose Them
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace portrait::tags {

inline constexpr int kRfmNameCount = 11;
inline constexpr std::array<const char*, kRfmNameCount> kRfmNames = {
    "Champions",      "Loyal Customers", "Potential Loyalists", "New Customers",
    "Promising",      "Need Attention",  "About to Sleep",      "At Risk",
    "Can't Lose Them", "Hibernating",    "Lost"};

/// Quintile scores 1..5 of `values` (see the file comment). `higher_is_better` = false for
/// recency in days (fewer days = better). Empty input gives an empty result.
std::vector<int> quintile_scores(const std::vector<double>& values, bool higher_is_better);

/// FM = (f + m + 1) / 2, the grid's column.
int fm_score(int f, int m);

/// The RFM name of scores r, f, m in 1..5 (std::invalid_argument outside).
const char* rfm_name(int r, int f, int m);

}  // namespace portrait::tags
