#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using portrait::tok::Tokenizer;
using portrait::tok::TokenizerTrainParams;

namespace {

std::vector<std::string> corpus() {
  const char* en[] = {"great quality", "fast shipping", "terrible battery", "love this phone",
                      "the shoes fit well", "would buy again", "broken on arrival", "nice color"};
  const char* zh[] = {"质量很好", "物流很快", "电池太差", "非常喜欢这个手机", "鞋子很合脚",
                      "还会再买", "到货就坏了", "颜色好看"};
  std::vector<std::string> out;
  for (int i = 0; i < 1500; ++i) {
    std::string s = std::string(en[i % 8]) + " " + zh[(i / 8) % 8];
    if (i % 3 == 0) s += std::string("，") + en[(i / 3) % 8] + " " + std::to_string(i % 100);
    out.push_back(s);
  }
  return out;
}

TokenizerTrainParams small() {
  TokenizerTrainParams p;
  p.vocab_size = 400;
  p.num_threads = 2;
  return p;
}

const Tokenizer& shared() {
  static Tokenizer t = Tokenizer::train(corpus(), small());
  return t;
}

fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("portrait_tok_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(Tokenizer, MixedChineseEnglishRoundTripsExactly) {
  const auto& t = shared();
  for (std::string s : {"great quality 质量很好", "物流很快, fast shipping 42",
                        "非常喜欢这个手机 love this phone", "颜色好看nice color"}) {
    auto ids = t.encode(s);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(t.decode(ids), s);
  }
}

TEST(Tokenizer, UnseenCharactersRoundTripThroughByteFallback) {
  const auto& t = shared();
  std::string s = "龘 emoji 😀 ünïcode";  // characters absent from the corpus
  auto ids = t.encode(s);
  for (int32_t id : ids) EXPECT_NE(id, portrait::tok::kUnkId) << "byte fallback must avoid <unk>";
  EXPECT_EQ(t.decode(ids), s);
}

TEST(Tokenizer, SpecialIdsAreFixedAndUserSymbolsAreSinglePieces) {
  const auto& t = shared();
  EXPECT_EQ(t.id_to_piece(portrait::tok::kPadId), "<pad>");
  EXPECT_EQ(t.id_to_piece(portrait::tok::kUnkId), "<unk>");
  EXPECT_EQ(t.id_to_piece(portrait::tok::kBosId), "<s>");
  EXPECT_EQ(t.id_to_piece(portrait::tok::kEosId), "</s>");
  int32_t mask = t.piece_to_id("[MASK]");
  EXPECT_GT(mask, portrait::tok::kEosId);
  auto ids = t.encode("[MASK]");
  EXPECT_NE(std::find(ids.begin(), ids.end(), mask), ids.end());
}

TEST(Tokenizer, TrainingIsDeterministic) {
  auto p = small();
  auto a = Tokenizer::train(corpus(), p);
  EXPECT_EQ(a.sha256(), shared().sha256());
  EXPECT_EQ(a.sha256().size(), 64u);
}

TEST(Tokenizer, BpeModelTypeAlsoRoundTrips) {
  auto p = small();
  p.model_type = "bpe";
  auto t = Tokenizer::train(corpus(), p);
  std::string s = "love this phone 非常喜欢";
  EXPECT_EQ(t.decode(t.encode(s)), s);
  EXPECT_NE(t.sha256(), shared().sha256());
}

TEST(Tokenizer, SaveWritesModelAndSha256AndLoadRestoresSameIds) {
  auto d = tmpdir("save");
  shared().save(d / "tok.model");
  ASSERT_TRUE(fs::exists(d / "tok.model.sha256"));
  EXPECT_EQ(portrait::sha256_file(d / "tok.model"), shared().sha256());
  auto t = Tokenizer::load(d / "tok.model");
  EXPECT_EQ(t.sha256(), shared().sha256());
  EXPECT_EQ(t.encode("fast shipping 物流很快"), shared().encode("fast shipping 物流很快"));
  fs::remove_all(d);
}

TEST(Tokenizer, LoadRejectsModelThatDoesNotMatchItsSha256File) {
  auto d = tmpdir("tamper");
  shared().save(d / "tok.model");
  { std::ofstream(d / "tok.model.sha256") << std::string(64, '0') << "  tok.model\n"; }
  EXPECT_THROW(Tokenizer::load(d / "tok.model"), std::runtime_error);
  fs::remove_all(d);
}

TEST(Tokenizer, EncodeBatchMatchesSequentialEncodeInOrder) {
  const auto& t = shared();
  auto texts = corpus();
  auto batch = t.encode_batch(texts, 4);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); i += 37) EXPECT_EQ(batch[i], t.encode(texts[i]));
}

TEST(Tokenizer, EmptyCorpusAndUnknownModelTypeAreErrors) {
  EXPECT_THROW(Tokenizer::train({"", ""}, small()), std::runtime_error);
  auto p = small();
  p.model_type = "wordpiece";
  EXPECT_THROW(Tokenizer::train(corpus(), p), std::runtime_error);
}

// Weak spot: tokenizer errors named SentencePiece's flags (--character_coverage), which no
// Portrait user can set; they now name the config keys that set them.
TEST(Tokenizer, TrainingErrorsNameConfigKeysNotSentencePieceFlags) {
  EXPECT_EQ(portrait::tok::sentencepiece_message_in_config_keys(
                "Vocabulary size is smaller than required_chars. 20 vs 95. Increase vocab_size or decrease "
                "character_coverage with --character_coverage option.",
                "prep.tokenizer"),
            "Vocabulary size is smaller than required_chars. 20 vs 95. Increase prep.tokenizer.vocab_size or "
            "decrease prep.tokenizer.character_coverage with prep.tokenizer.character_coverage.");
  EXPECT_EQ(portrait::tok::sentencepiece_message_in_config_keys("my_vocab_sizes stay", "tokenizer"), "my_vocab_sizes stay");
  std::vector<std::string> text;  // many distinct characters: more than a vocabulary of 20 holds
  for (int i = 0; i < 400; ++i) text.push_back("w" + std::to_string(i) + " " + std::string(1, char('!' + i % 90)));
  auto p = small();
  p.vocab_size = 20;
  p.config_prefix = "prep.tokenizer";
  try {
    Tokenizer::train(text, p);
    GTEST_SKIP() << "this SentencePiece accepted a vocabulary smaller than the character set";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("prep.tokenizer."), std::string::npos) << m;
    EXPECT_EQ(m.find("--"), std::string::npos) << m;
  }
}
