// models/batch.h: the one loader-batch -> model-input adapter of train, eval and embed.
#include <gtest/gtest.h>

#include "core/error.h"
#include "models/batch.h"

namespace portrait {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_items = 50;
  c.n_categories = 6;
  c.n_text_tokens = 30;
  c.max_events = 3;
  c.max_text_tokens = 2;
  c.n_gap_buckets = 8;
  c.n_price_buckets = 4;
  return c;
}

/// One user with 5 events (items 10..14) and 4 text tokens (21..24), padded to L=6, T=5.
data::Batch one_user() {
  data::Batch b;
  b.rows = 1;
  b.L = 6;
  b.T = 5;
  b.length = {5};
  b.user_index = {9};
  b.item = {10, 11, 12, 13, 14, 0};
  b.category = {2, 2, 3, 3, 4, 0};
  b.event = {1, 2, 3, 4, 5, 0};
  b.gap = {0, 3, 7, 12, 40, 0};   // 12 and 40 lie beyond the model's 8 buckets
  b.price = {1, 2, 3, 9, 1, 0};   // 9 beyond its 4
  b.input_mask = {1, 1, 1, 1, 1, 0};
  b.text = {21, 22, 23, 24, 0};
  b.text_mask = {1, 1, 1, 1, 0};
  return b;
}

TEST(FitBatch, KeepsTheMostRecentEventsAndTextTokens) {
  auto f = fit_batch(one_user(), small_config());
  EXPECT_EQ(f.L, 3);
  EXPECT_EQ(f.T, 2);
  EXPECT_EQ(f.length, std::vector<int32_t>{3});
  EXPECT_EQ(f.item, (std::vector<int32_t>{12, 13, 14}));
  EXPECT_EQ(f.event, (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(f.text, (std::vector<int32_t>{23, 24}));  // the newest review tokens, not the first
  EXPECT_EQ(f.user_index, std::vector<int64_t>{9});
}

TEST(FitBatch, OpenEndedBucketsShareTheLastBucket) {
  auto f = fit_batch(one_user(), small_config());
  EXPECT_EQ(f.gap, (std::vector<int32_t>{7, 7, 7}));
  EXPECT_EQ(f.price, (std::vector<int32_t>{3, 3, 1}));
}

TEST(FitBatch, IdsBeyondTheModelsVocabulariesNameTheField) {
  auto c = small_config();
  c.n_items = 14;  // item 14 is out of range
  try {
    fit_batch(one_user(), c);
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("item id 14"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("n_items is 14"), std::string::npos) << e.what();
  }
  auto t = small_config();
  t.n_text_tokens = 24;
  EXPECT_THROW(fit_batch(one_user(), t), DataError);
}

TEST(FitBatch, AModelWithoutTextGetsNoTextAndTensorsMatch) {
  auto c = small_config();
  c.n_text_tokens = 0;
  auto f = fit_batch(one_user(), c);
  EXPECT_EQ(f.T, 0);
  auto u = to_user_batch(f, torch::kCPU);
  EXPECT_EQ(u.item.sizes(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(u.item.scalar_type(), torch::kLong);
  EXPECT_EQ(u.event_mask.sum().item<int64_t>(), 3);
  EXPECT_EQ(u.text.size(1), 0);
}

}  // namespace
}  // namespace portrait
