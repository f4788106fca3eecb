// SentencePiece tokenizer for review text: training from an in-memory or on-disk corpus,
// thread-parallel encoding, and a model file stored with its SHA-256 so shards can record
// exactly which tokenizer produced their text tokens.
//
//   TokenizerTrainParams p;  p.vocab_size = 8000;
//   Tokenizer tok = Tokenizer::train(sentences, p);
//   tok.save(dir / "tokenizer.model");      // also writes tokenizer.model.sha256
//   auto ids = tok.encode("质量很好 great quality");
//
// Fixed special ids: pad = 0, unk = 1, bos = 2, eos = 3; user special tokens follow.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace portrait::tok {

inline constexpr int32_t kPadId = 0;
inline constexpr int32_t kUnkId = 1;
inline constexpr int32_t kBosId = 2;
inline constexpr int32_t kEosId = 3;

struct TokenizerTrainParams {
  std::string model_type = "unigram";  ///< "unigram" or "bpe"
  int vocab_size = 8000;               ///< target size; a soft limit (small corpora get fewer)
  double character_coverage = 0.9995;  ///< share of characters covered (CJK needs < 1)
  bool byte_fallback = true;           ///< unknown characters become UTF-8 byte pieces
  std::vector<std::string> special_tokens = {"[MASK]", "[SEP]"};  ///< user-defined symbols
  int num_threads = 2;                 ///< training threads
  int64_t max_sentences = 2000000;     ///< deterministic sample cap (by hash of the text)
  int max_sentence_length = 4192;      ///< bytes; longer sentences are truncated for training
  uint64_t seed = 1234;                ///< seeds the deterministic sentence sample
  std::string config_prefix = "tokenizer";  ///< where these keys live in the config (errors name
                                            ///< e.g. prep.tokenizer.vocab_size, not --vocab_size)
};

/// SentencePiece's message with its trainer flags ("--vocab_size", "character_coverage") named
/// as the config keys under `prefix` that set them ("prep.tokenizer.vocab_size").
std::string sentencepiece_message_in_config_keys(const std::string& message, const std::string& prefix);

class Tokenizer {
 public:
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  /// Trains on `sentences` (empty strings are skipped). Throws std::runtime_error with
  /// SentencePiece's message on failure (e.g. a corpus too small for the vocabulary).
  static Tokenizer train(const std::vector<std::string>& sentences,
                         const TokenizerTrainParams& params);
  /// Trains on a text file, one sentence per line.
  static Tokenizer train_from_file(const std::filesystem::path& text_file,
                                   const TokenizerTrainParams& params);
  /// Loads a model written by save(); verifies the ".sha256" sidecar when present.
  static Tokenizer load(const std::filesystem::path& model_file);
  static Tokenizer from_serialized(std::string serialized_model);

  /// Writes the model and "<model>.sha256" atomically.
  void save(const std::filesystem::path& model_file) const;

  std::vector<int32_t> encode(std::string_view text) const;
  /// Encodes many texts with `threads` worker threads (0 = hardware concurrency).
  /// Output order matches input order.
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts,
                                                 int threads = 0) const;
  std::string decode(const std::vector<int32_t>& ids) const;

  int vocab_size() const;
  int32_t piece_to_id(std::string_view piece) const;
  std::string id_to_piece(int32_t id) const;
  bool loaded() const { return sp_ != nullptr; }
  /// Serialized ModelProto and its lower-case hex SHA-256.
  const std::string& serialized() const { return proto_; }
  const std::string& sha256() const { return sha_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string proto_, sha_;
};

}  // namespace portrait::tok
