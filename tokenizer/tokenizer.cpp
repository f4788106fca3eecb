#include "tokenizer/tokenizer.h"

#include <cctype>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "core/fs.h"

namespace portrait::tok {
namespace {

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string_view>& v) : v_(v) { settle(); }
  bool done() const override { return i_ >= v_.size(); }
  void Next() override {
    ++i_;
    settle();
  }
  const std::string& value() const override { return cur_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void settle() {
    if (i_ < v_.size()) cur_.assign(v_[i_]);
  }
  const std::vector<std::string_view>& v_;
  size_t i_ = 0;
  std::string cur_;
};

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += v[i];
  }
  return out;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::string sentencepiece_message_in_config_keys(const std::string& message, const std::string& prefix) {
  // SentencePiece trainer flag -> the key under `prefix` that sets it (tokenizer/train.cpp).
  static const std::pair<const char*, const char*> kFlags[] = {
      {"vocab_size", "vocab_size"},
      {"character_coverage", "character_coverage"},
      {"model_type", "model_type"},
      {"byte_fallback", "byte_fallback"},
      {"user_defined_symbols", "special_tokens"},
      {"num_threads", "num_threads"},
      {"max_sentence_length", "max_sentence_length"},
  };
  std::string out = message;
  for (const auto& [flag, key] : kFlags) {
    const std::string full = prefix + "." + key;
    const std::string f(flag);
    for (size_t at = 0; (at = out.find(f, at)) != std::string::npos;) {
      size_t begin = at, end = at + f.size();
      const auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; };
      if ((end < out.size() && word(out[end])) || (begin > 0 && word(out[begin - 1]))) {
        at = end;
        continue;  // part of another word
      }
      while (begin > 0 && out[begin - 1] == '-') --begin;  // "--vocab_size"
      std::string repl = full;
      const std::string opt = " option";
      if (out.compare(end, opt.size(), opt) == 0) end += opt.size();  // "... with --x option"
      out.replace(begin, end - begin, repl);
      at = begin + repl.size();
    }
  }
  return out;
}

Tokenizer Tokenizer::train(const std::vector<std::string>& sentences,
                           const TokenizerTrainParams& p) {
  if (p.model_type != "unigram" && p.model_type != "bpe")
    throw std::runtime_error("tokenizer model_type must be 'unigram' or 'bpe', got '" +
                             p.model_type + "'");
  std::vector<std::string_view> use;
  use.reserve(sentences.size());
  for (const auto& s : sentences) {
    if (s.empty()) continue;
    use.emplace_back(s.data(), std::min<size_t>(s.size(), size_t(p.max_sentence_length)));
  }
  if (use.empty()) throw std::runtime_error("tokenizer training corpus is empty (no review text)");
  if (p.max_sentences > 0 && int64_t(use.size()) > p.max_sentences) {
    // Deterministic sample: keep the sentences with the smallest seeded index hash, in
    // their original order.
    std::vector<std::pair<uint64_t, size_t>> keyed(use.size());
    for (size_t i = 0; i < use.size(); ++i) keyed[i] = {mix64(p.seed ^ mix64(i)), i};
    std::nth_element(keyed.begin(), keyed.begin() + p.max_sentences, keyed.end());
    keyed.resize(size_t(p.max_sentences));
    std::vector<size_t> idx;
    for (auto& k : keyed) idx.push_back(k.second);
    std::sort(idx.begin(), idx.end());
    std::vector<std::string_view> sampled;
    for (size_t i : idx) sampled.push_back(use[i]);
    use.swap(sampled);
  }
  std::unordered_map<std::string, std::string> kw = {
      {"model_type", p.model_type},
      {"vocab_size", std::to_string(p.vocab_size)},
      {"character_coverage", std::to_string(p.character_coverage)},
      {"byte_fallback", p.byte_fallback ? "true" : "false"},
      {"pad_id", std::to_string(kPadId)},
      {"unk_id", std::to_string(kUnkId)},
      {"bos_id", std::to_string(kBosId)},
      {"eos_id", std::to_string(kEosId)},
      {"hard_vocab_limit", "false"},
      {"num_threads", std::to_string(std::max(1, p.num_threads))},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(p.max_sentence_length)},
      {"split_digits", "true"},
      {"minloglevel", "2"},
  };
  if (!p.special_tokens.empty()) kw["user_defined_symbols"] = join(p.special_tokens);
  VectorIterator it(use);
  std::string proto;
  auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &proto);
  if (!st.ok())
    throw std::runtime_error("tokenizer training failed: " +
                             sentencepiece_message_in_config_keys(st.ToString(), p.config_prefix));
  return from_serialized(std::move(proto));
}

Tokenizer Tokenizer::train_from_file(const std::filesystem::path& text_file,
                                     const TokenizerTrainParams& p) {
  std::ifstream in(text_file);
  if (!in) throw std::runtime_error("cannot read tokenizer corpus " + text_file.string());
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(std::move(line));
  return train(lines, p);
}

Tokenizer Tokenizer::from_serialized(std::string proto) {
  Tokenizer t;
  t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = t.sp_->LoadFromSerializedProto(proto);
  if (!st.ok()) throw std::runtime_error("cannot load SentencePiece model: " + st.ToString());
  t.sha_ = sha256_hex(proto);
  t.proto_ = std::move(proto);
  return t;
}

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  std::string proto;
  try {
    proto = read_file(model_file);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read tokenizer model " + model_file.string() + ": " +
                             e.what());
  }
  Tokenizer t = from_serialized(std::move(proto));
  auto side = model_file;
  side += ".sha256";
  if (std::filesystem::exists(side)) {
    std::string want = read_file(side);
    while (!want.empty() && (want.back() == '\n' || want.back() == ' ')) want.pop_back();
    want = want.substr(0, want.find(' '));
    if (want != t.sha_)
      throw std::runtime_error("tokenizer model " + model_file.string() +
                               " does not match its sha256 file " + side.string() +
                               " (expected " + want + ", got " + t.sha_ + ")");
  }
  return t;
}

void Tokenizer::save(const std::filesystem::path& model_file) const {
  if (!sp_) throw std::logic_error("Tokenizer::save on an empty tokenizer");
  write_file_atomic(model_file, proto_);
  auto side = model_file;
  side += ".sha256";
  write_file_atomic(side, sha_ + "  " + model_file.filename().string() + "\n");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto st = sp_->Encode(text, &ids);
  if (!st.ok()) throw std::runtime_error("SentencePiece encode failed: " + st.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          int threads) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min<int>(threads, int(std::max<size_t>(1, texts.size() / 64)));
  if (threads <= 1) {
    for (size_t i = 0; i < texts.size(); ++i) out[i] = encode(texts[i]);
    return out;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errs(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        for (size_t i = size_t(t); i < texts.size(); i += size_t(threads)) out[i] = encode(texts[i]);
      } catch (...) {
        errs[size_t(t)] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errs)
    if (e) std::rethrow_exception(e);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<int> v(ids.begin(), ids.end());
  std::string out;
  auto st = sp_->Decode(v, &out);
  if (!st.ok()) throw std::runtime_error("SentencePiece decode failed: " + st.ToString());
  return out;
}

int Tokenizer::vocab_size() const { return sp_ ? sp_->GetPieceSize() : 0; }
int32_t Tokenizer::piece_to_id(std::string_view piece) const { return sp_->PieceToId(piece); }
std::string Tokenizer::id_to_piece(int32_t id) const { return sp_->IdToPiece(id); }

}  // namespace portrait::tok
