#include "tokenizer/train.h"

#include <fstream>

#include "core/error.h"
#include "core/log.h"

namespace portrait::tok {

void read_tokenizer_train_params(cfg::Section& s, TokenizerTrainParams& p) {
  s.read_enum("model_type", p.model_type, {"unigram", "bpe"});
  s.read("vocab_size", p.vocab_size, 16, 1 << 20);
  s.read("character_coverage", p.character_coverage, 0.5, 1.0);
  s.read("byte_fallback", p.byte_fallback);
  s.read("special_tokens", p.special_tokens);
  s.read("num_threads", p.num_threads, 1, 256);
  s.read("max_sentences", p.max_sentences, int64_t{0});
  s.read("max_sentence_length", p.max_sentence_length, 16, 1 << 20);
  int64_t seed = int64_t(p.seed);
  s.read("seed", seed, int64_t{0});
  p.seed = uint64_t(seed);
  p.config_prefix = s.path();
}

TokenizerCommandParams tokenizer_params_from_config(const cfg::Node& root) {
  TokenizerCommandParams p;
  cfg::Section s(root, "tokenizer");
  s.read("input", p.input);
  s.read("output", p.output);
  read_tokenizer_train_params(s, p.train);
  s.finish();
  if (p.input.empty()) throw ConfigError("config key 'tokenizer.input' must name a text file");
  if (p.output.empty()) throw ConfigError("config key 'tokenizer.output' must name a model path");
  return p;
}

TokenizerSummary run_tokenizer_train(const TokenizerCommandParams& p) {
  std::ifstream in(p.input);
  if (!in) throw DataError("cannot read tokenizer corpus '" + p.input + "'");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(std::move(line));
  PLOG_INFO("training {} tokenizer (vocab {}) on {} sentences", p.train.model_type,
            p.train.vocab_size, lines.size());
  Tokenizer t = Tokenizer::train(lines, p.train);
  t.save(p.output);
  TokenizerSummary s;
  s.model_path = p.output;
  s.sha256 = t.sha256();
  s.vocab_size = t.vocab_size();
  s.sentences = int64_t(lines.size());
  PLOG_INFO("wrote tokenizer {} (vocab {}, sha256 {})", s.model_path, s.vocab_size, s.sha256);
  return s;
}

}  // namespace portrait::tok
