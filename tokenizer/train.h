// `portrait tokenizer` subcommand: train a SentencePiece model from a text file (one review
// per line, e.g. the `reviews.txt` that `portrait prep` writes after PII masking).
// Config section `tokenizer:` (configs/tokenizer.yaml); `portrait prep` reads the same
// training keys from its own `tokenizer:` section.
#pragma once

#include <cstdint>
#include <string>

#include "core/config/node.h"
#include "core/config/section.h"
#include "tokenizer/tokenizer.h"

namespace portrait::tok {

struct TokenizerCommandParams {
  std::string input;            ///< text file, one sentence per line (mandatory)
  std::string output;           ///< model path; "<output>.sha256" is written beside it
  TokenizerTrainParams train;   ///< training hyper-parameters
};

/// Reads the training keys (model_type, vocab_size, character_coverage, byte_fallback,
/// special_tokens, num_threads, max_sentences, max_sentence_length, seed) from `s`.
/// Does not call s.finish().
void read_tokenizer_train_params(cfg::Section& s, TokenizerTrainParams& p);

/// Section `tokenizer`: the training keys plus `input` and `output`; rejects unknown keys.
TokenizerCommandParams tokenizer_params_from_config(const cfg::Node& resolved_root);

struct TokenizerSummary {
  std::string model_path;
  std::string sha256;
  int vocab_size = 0;
  int64_t sentences = 0;
};

TokenizerSummary run_tokenizer_train(const TokenizerCommandParams& p);

}  // namespace portrait::tok
