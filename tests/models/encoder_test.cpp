#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/encoder.h"
#include "models/losses.h"

namespace portrait {
namespace {

ModelConfig tiny_config(int64_t repeat_dim = 0) {
  ModelConfig c;
  c.n_items = 50;
  c.n_categories = 7;
  c.n_text_tokens = 40;
  c.n_targets = 3;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.d_ff = 64;
  c.dropout = 0.0;
  c.max_events = 12;
  c.max_text_tokens = 6;
  c.embed_dim = 16;
  c.repeat_dim = repeat_dim;
  return c;
}

// The structural properties must hold with and without the repeat channel: these tests run
// once per repeat_dim.
class EncoderStructure : public ::testing::TestWithParam<int64_t> {};
INSTANTIATE_TEST_SUITE_P(RepeatDim, EncoderStructure, ::testing::Values(int64_t{0}, int64_t{6}));

// Users with different numbers of events and text tokens (left-aligned, 0 = padding).
UserBatch make_batch(const ModelConfig& c, int64_t B, int64_t L, int64_t T, uint64_t seed) {
  torch::manual_seed(seed);
  UserBatch b;
  auto ev_len = torch::randint(1, L + 1, {B}, torch::kLong);
  ev_len[0] = L;  // one full row
  auto tx_len = torch::randint(0, T + 1, {B}, torch::kLong);
  tx_len[0] = 0;  // one user without text
  auto pos = torch::arange(L).view({1, L});
  b.event_mask = pos < ev_len.view({B, 1});
  auto fill = [&](int64_t hi) { return torch::randint(1, hi, {B, L}, torch::kLong) * b.event_mask; };
  b.item = fill(c.n_items);
  b.category = fill(c.n_categories);
  b.event_type = fill(c.n_event_types);
  b.gap_bucket = fill(c.n_gap_buckets);
  b.price_bucket = fill(c.n_price_buckets);
  auto tpos = torch::arange(T).view({1, T});
  b.text_mask = tpos < tx_len.view({B, 1});
  b.text = torch::randint(1, c.n_text_tokens, {B, T}, torch::kLong) * b.text_mask;
  return b;
}

// Real (non-padded) entries of every output must match between two runs.
void expect_same_real_outputs(const EncoderOutput& a, const EncoderOutput& b, const torch::Tensor& event_mask) {
  EXPECT_TRUE(torch::allclose(a.user, b.user, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(a.behaviour, b.behaviour, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(a.text, b.text, 1e-5, 1e-6));
  auto m = event_mask.unsqueeze(-1);
  EXPECT_TRUE(torch::allclose(a.states * m, b.states * m, 1e-5, 1e-6));
}

TEST_P(EncoderStructure, PaddedTokensNeverChangeAnyRealOutput) {
  auto cfg = tiny_config(GetParam());
  UserEncoder enc(cfg);
  enc->eval();
  torch::NoGradGuard ng;
  auto b = make_batch(cfg, 6, 10, 5, 1);
  auto out1 = enc->forward(b);
  UserBatch scrambled = b;
  auto pad = ~b.event_mask;
  scrambled.item = torch::where(pad, torch::randint(1, cfg.n_items, b.item.sizes(), torch::kLong), b.item);
  scrambled.category = torch::where(pad, torch::randint(1, cfg.n_categories, b.item.sizes(), torch::kLong), b.category);
  scrambled.event_type = torch::where(pad, torch::randint(1, 5, b.item.sizes(), torch::kLong), b.event_type);
  scrambled.text = torch::where(~b.text_mask, torch::randint(1, cfg.n_text_tokens, b.text.sizes(), torch::kLong), b.text);
  auto out2 = enc->forward(scrambled);
  expect_same_real_outputs(out1, out2, b.event_mask);
  // And the scrambling did change padded states (the test would be vacuous otherwise).
  EXPECT_FALSE(torch::allclose(out1.states, out2.states));
}

TEST_P(EncoderStructure, CausalStatesDependOnlyOnEarlierEvents) {
  auto cfg = tiny_config(GetParam());
  UserEncoder enc(cfg);
  enc->eval();
  torch::NoGradGuard ng;
  auto b = make_batch(cfg, 3, 10, 5, 2);
  auto before = enc->forward(b);
  UserBatch changed = b;
  changed.item = b.item.clone();
  const int64_t k = 4;
  int64_t old = b.item.index({0, k}).item<int64_t>();
  changed.item.index_put_({0, k}, old == 1 ? 2 : 1);
  auto after = enc->forward(changed);
  auto s0 = before.states[0], s1 = after.states[0];
  EXPECT_TRUE(torch::allclose(s0.slice(0, 0, k), s1.slice(0, 0, k), 1e-5, 1e-6)) << "earlier states moved";
  EXPECT_FALSE(torch::allclose(s0.slice(0, k, k + 1), s1.slice(0, k, k + 1))) << "state at k unchanged";
  EXPECT_FALSE(torch::allclose(before.user[0], after.user[0])) << "CLS must see every event";
  // Other users in the batch are untouched.
  EXPECT_TRUE(torch::allclose(before.user.slice(0, 1), after.user.slice(0, 1), 1e-5, 1e-6));
}

TEST(Encoder, BidirectionalModeLetsEarlyStatesSeeLaterEvents) {
  auto cfg = tiny_config();
  cfg.causal = false;
  UserEncoder enc(cfg);
  enc->eval();
  torch::NoGradGuard ng;
  auto b = make_batch(cfg, 2, 10, 5, 3);
  auto before = enc->forward(b);
  UserBatch changed = b;
  changed.item = b.item.clone();
  changed.item.index_put_({0, 9}, b.item.index({0, 9}).item<int64_t>() == 1 ? 2 : 1);
  auto after = enc->forward(changed);
  EXPECT_FALSE(torch::allclose(before.states[0][0], after.states[0][0]));
}

TEST_P(EncoderStructure, TextViewIgnoresEventsAndEventStatesIgnoreText) {
  auto cfg = tiny_config(GetParam());
  UserEncoder enc(cfg);
  enc->eval();
  torch::NoGradGuard ng;
  auto b = make_batch(cfg, 4, 8, 6, 4);
  b.text_mask.index_put_({1}, true);
  b.text.index_put_({1}, torch::randint(1, cfg.n_text_tokens, {6}, torch::kLong));
  auto base = enc->forward(b);
  UserBatch ev = b;
  ev.item = torch::where(b.event_mask, torch::randint(1, cfg.n_items, b.item.sizes(), torch::kLong), b.item);
  auto o1 = enc->forward(ev);
  EXPECT_TRUE(torch::allclose(base.text, o1.text, 1e-5, 1e-6));
  UserBatch tx = b;
  tx.text = torch::where(b.text_mask, torch::randint(1, cfg.n_text_tokens, b.text.sizes(), torch::kLong), b.text);
  auto o2 = enc->forward(tx);
  auto m = b.event_mask.unsqueeze(-1);
  EXPECT_TRUE(torch::allclose(base.states * m, o2.states * m, 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(base.user[1], o2.user[1]));
  // A user without text has a zero text view and has_text = false.
  EXPECT_FALSE(base.has_text[0].item<bool>());
  EXPECT_EQ(base.text[0].abs().sum().item<float>(), 0.0f);
}

TEST_P(EncoderStructure, EmbeddingsAreUnitNormAndShaped) {
  auto cfg = tiny_config(GetParam());
  UserEncoder enc(cfg);
  enc->eval();
  torch::NoGradGuard ng;
  auto b = make_batch(cfg, 5, 12, 6, 5);
  auto o = enc->forward(b);
  EXPECT_EQ(o.user.sizes(), (std::vector<int64_t>{5, cfg.embed_dim}));
  EXPECT_EQ(o.states.sizes(), (std::vector<int64_t>{5, 12, cfg.embed_dim}));
  EXPECT_TRUE(torch::allclose(o.user.norm(2, 1), torch::ones({5}), 1e-5, 1e-5));
  auto items = enc->all_item_vectors();
  EXPECT_EQ(items.sizes(), (std::vector<int64_t>{cfg.n_items, cfg.embed_dim}));
  EXPECT_TRUE(torch::allclose(enc->item_vectors(torch::tensor({3L})), items.slice(0, 3, 4)));
}

TEST_P(EncoderStructure, AttentionPoolingAlsoIgnoresPadding) {
  auto cfg = tiny_config(GetParam());
  cfg.pooling = "attention";
  UserEncoder enc(cfg);
  enc->eval();
  torch::NoGradGuard ng;
  auto b = make_batch(cfg, 4, 10, 5, 6);
  auto o1 = enc->forward(b);
  UserBatch s = b;
  s.item = torch::where(~b.event_mask, torch::full_like(b.item, 7), b.item);
  auto o2 = enc->forward(s);
  EXPECT_TRUE(torch::allclose(o1.user, o2.user, 1e-5, 1e-6));
}

TEST(AttentionMask, EncodesCausalEventsTextBlockAndClsRow) {
  auto ev = torch::tensor({{true, true, false}});
  auto tx = torch::tensor({{true, false}});
  auto m = build_attention_mask(ev, tx, true)[0][0];  // [S=6, S]
  auto expected = torch::tensor({{1, 1, 1, 0, 1, 0},    // CLS: all real keys
                                 {0, 1, 0, 0, 0, 0},    // e1: itself
                                 {0, 1, 1, 0, 0, 0},    // e2: e1, e2
                                 {0, 1, 1, 1, 0, 0},    // e3 (pad): junk row, never read
                                 {0, 0, 0, 0, 1, 0},    // t1: text keys
                                 {0, 0, 0, 0, 1, 1}},   // t2 (pad): junk row, never read
                                torch::kBool);
  EXPECT_TRUE(torch::equal(m, expected)) << m;
}

// Finite differences against autograd in float64 on a tiny model.
TEST(Encoder, GradientsMatchFiniteDifferences) {
  for (int64_t R : {int64_t{0}, int64_t{2}}) {
    SCOPED_TRACE("repeat_dim " + std::to_string(R));
    auto cfg = tiny_config();
    cfg.d_model = 8;
    cfg.n_heads = 2;
    cfg.d_ff = 16;
    cfg.embed_dim = 4;
    cfg.repeat_dim = R;
    cfg.n_layers = 1;
    UserEncoder enc(cfg);
    enc->to(torch::kDouble);
    enc->eval();
    auto b = make_batch(cfg, 3, 5, 3, 7);
    auto inv_t = torch::full({}, 5.0, torch::kDouble);
    auto loss_fn = [&] {
      auto o = enc->forward(b);
      auto pos_ids = torch::tensor({3L, 5L, 9L});
      auto pos = enc->item_vectors(pos_ids);
      return sampled_softmax_loss(o.user, pos, pos_ids, torch::arange(3), {}, {}, {}, 0.0, inv_t) +
             clip_loss(o.behaviour, o.user, torch::ones({3}, torch::kBool), inv_t);
    };
    enc->zero_grad();
    loss_fn().backward();
    int checked = 0;
    torch::NoGradGuard ng;
    for (auto& p : enc->named_parameters()) {
      if (!p.value().grad().defined()) continue;
      auto flat = p.value().view(-1);
      auto g = p.value().grad().view(-1);
      for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
        double orig = flat[i].item<double>();
        const double eps = 1e-6;
        flat[i] = orig + eps;
        double up = loss_fn().item<double>();
        flat[i] = orig - eps;
        double down = loss_fn().item<double>();
        flat[i] = orig;
        double num = (up - down) / (2 * eps);
        double ana = g[i].item<double>();
        EXPECT_NEAR(num, ana, 1e-6 + 1e-4 * std::abs(ana)) << p.key() << "[" << i << "]";
        ++checked;
      }
    }
    EXPECT_GT(checked, 30);
  }
}

// The repeat channel's purpose: an untrained model already ranks the item a user keeps coming
// back to first, because the sketch rows start nearly orthogonal. Without the channel the
// untrained ranking is arbitrary.
TEST(Encoder, RepeatChannelRanksTheUsersOwnRepeatedItemFirstBeforeTraining) {
  auto cfg = tiny_config(32);
  cfg.embed_dim = 48;
  cfg.n_items = 200;
  torch::manual_seed(11);
  UserEncoder enc(cfg);
  enc->eval();
  torch::NoGradGuard ng;
  const int64_t B = 8;
  auto b = make_batch(cfg, B, 10, 4, 12);
  auto own = torch::arange(2, 2 + 7 * B, 7, torch::kLong);  // one item per user
  b.item = own.view({B, 1}).expand({B, 10}) * b.event_mask;
  auto scores = torch::matmul(enc->forward(b).user, enc->all_item_vectors().t());  // [B, n_items]
  scores.slice(1, 0, 2).fill_(-1e9);
  EXPECT_TRUE(torch::equal(scores.argmax(1), own)) << scores.argmax(1);
  // The same users without the channel: the own item is first for almost nobody.
  auto plain_cfg = cfg;
  plain_cfg.repeat_dim = 0;
  UserEncoder plain(plain_cfg);
  plain->eval();
  auto s0 = torch::matmul(plain->forward(b).user, plain->all_item_vectors().t());
  s0.slice(1, 0, 2).fill_(-1e9);
  EXPECT_LE(s0.argmax(1).eq(own).sum().item<int64_t>(), 2);
}

TEST(Encoder, TinyBatchOverfits) {
  auto cfg = tiny_config();
  torch::manual_seed(0);
  UserEncoder enc(cfg);
  PurchaseHead head(cfg.embed_dim, 16, cfg.n_targets, "relu");
  auto b = make_batch(cfg, 8, 10, 5, 8);
  auto pos_ids = torch::arange(10, 18, torch::kLong);
  auto labels = torch::randint(0, 2, {8, cfg.n_targets}).to(torch::kFloat);
  std::vector<torch::Tensor> params = enc->parameters();
  for (auto& p : head->parameters()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(3e-3));
  auto inv_t = torch::full({}, 20.0);
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    auto o = enc->forward(b);
    auto loss = sampled_softmax_loss(o.user, enc->item_vectors(pos_ids), pos_ids, torch::arange(8), {}, {}, {}, 0.0, inv_t) +
                purchase_bce_loss(head->forward(o.user), labels);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  EXPECT_GT(first, 1.0);
  EXPECT_LT(last, 0.05) << "first " << first;
}

}  // namespace
}  // namespace portrait
