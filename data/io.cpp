#include "data/io.h"

#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "data/text.h"

namespace portrait::data {

namespace {
// gzerror's text starts with the path gzopen was given; the callers name the file themselves.
std::string zlib_message(const char* msg, const std::string& path, int err) {
  std::string m = msg && *msg ? msg : "zlib error " + std::to_string(err);
  if (m.rfind(path + ": ", 0) == 0) m.erase(0, path.size() + 2);
  return m;
}
}  // namespace

RecordReader::RecordReader(const std::filesystem::path& path, bool quote_aware,
                           int max_record_lines)
    : path_(path.string()), quote_aware_(quote_aware), max_lines_(max_record_lines) {
  gz_ = gzopen(path_.c_str(), "rb");
  if (!gz_) throw DataError("cannot open input file '" + path_ + "': " + std::strerror(errno));
  gzbuffer(gz_, 1 << 18);
  buf_.resize(1 << 20);
}

RecordReader::~RecordReader() {
  if (gz_) gzclose(gz_);
}

int64_t RecordReader::bytes_read() const { return gz_ ? int64_t(gzoffset(gz_)) : 0; }

bool RecordReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
  int n = gzread(gz_, buf_.data() + end_, unsigned(buf_.size() - end_));
  if (n < 0) {
    int err;
    const char* msg = gzerror(gz_, &err);
    throw DataError("input file '" + path_ + "' is truncated or corrupt: " + zlib_message(msg, path_, err));
  }
  if (n == 0) {
    // zlib reports a gzip stream that stops early (a partial copy, a killed writer) as a
    // normal end of input from gzread and only records Z_BUF_ERROR, so the end must be
    // checked here or the rows after the cut would vanish without a trace.
    int err = Z_OK;
    const char* msg = gzerror(gz_, &err);
    if (err != Z_OK) {
      const int64_t lines = line_ + int64_t(std::count(buf_.data() + pos_, buf_.data() + end_, '\n'));
      throw DataError("input file '" + path_ + "' is truncated or corrupt: the gzip stream ends early (" +
                      zlib_message(msg, path_, err) + ") after line " + std::to_string(lines) +
                      "; restore the complete file (`gzip -t` checks one)");
    }
    eof_ = true;
    return false;
  }
  end_ += size_t(n);
  return true;
}

bool RecordReader::next(std::string_view& record, int64_t& line) {
  for (;;) {
    const char* base = buf_.data();
    size_t start = pos_;
    size_t scan = start;
    int lines = 0;
    bool odd = false;  // quote parity of the record so far
    bool complete = false;
    size_t first_nl = std::string::npos;
    size_t rec_end = 0;
    while (true) {
      const void* nlp = std::memchr(base + scan, '\n', end_ - scan);
      if (!nlp) break;
      size_t nl = size_t(static_cast<const char*>(nlp) - base);
      if (first_nl == std::string::npos) first_nl = nl;
      ++lines;
      if (quote_aware_) {
        for (const char* q = base + scan; q < base + nl;) {
          const void* qp = std::memchr(q, '"', size_t(base + nl - q));
          if (!qp) break;
          odd = !odd;
          q = static_cast<const char*>(qp) + 1;
        }
      }
      if (!odd) {
        complete = true;
        rec_end = nl;
        break;
      }
      if (lines >= max_lines_) {  // give up on the open quote: return the first line alone
        complete = true;
        rec_end = first_nl;
        lines = 1;
        break;
      }
      scan = nl + 1;
    }
    if (complete) {
      size_t e = rec_end;
      if (e > start && base[e - 1] == '\r') --e;
      record = std::string_view(base + start, e - start);
      line = line_ + 1;
      // Count the physical lines consumed.
      line_ += lines;
      pos_ = rec_end + 1;
      return true;
    }
    if (!fill()) {
      if (pos_ >= end_) return false;
      // Last record without a trailing newline (or an unterminated quote at EOF).
      size_t e = end_;
      if (e > pos_ && buf_[e - 1] == '\r') --e;
      record = std::string_view(buf_.data() + pos_, e - pos_);
      line = line_ + 1;
      line_ += 1 + int64_t(std::count(record.begin(), record.end(), '\n'));
      pos_ = end_;
      return true;
    }
  }
}

TextWriter::TextWriter(const std::filesystem::path& path, bool gzip, int level)
    : out_(path), gzip_(gzip) {
  std::filesystem::create_directories(out_.final_path().parent_path().empty()
                                          ? std::filesystem::path(".")
                                          : out_.final_path().parent_path());
  if (gzip_) {
    std::string mode = "wb" + std::to_string(std::clamp(level, 1, 9));
    gz_ = gzopen(out_.temp_path().c_str(), mode.c_str());
    if (!gz_) throw std::runtime_error("cannot create '" + out_.temp_path().string() + "'");
  } else {
    f_ = std::fopen(out_.temp_path().c_str(), "wb");
    if (!f_) throw std::runtime_error("cannot create '" + out_.temp_path().string() + "': " +
                                      std::strerror(errno));
  }
  buf_.reserve(1 << 21);
}

TextWriter::~TextWriter() {
  if (f_) std::fclose(f_);
  if (gz_) gzclose(gz_);
}

void TextWriter::flush() {
  if (buf_.empty()) return;
  bool ok;
  if (gzip_) ok = gzwrite(gz_, buf_.data(), unsigned(buf_.size())) == int(buf_.size());
  else ok = std::fwrite(buf_.data(), 1, buf_.size(), f_) == buf_.size();
  if (!ok) throw_write_error("cannot write", out_.temp_path(), errno != 0 ? errno : EIO);
  buf_.clear();
}

void TextWriter::commit() {
  flush();
  if (gzip_) {
    const int rc = gzclose(gz_);
    gz_ = nullptr;
    if (rc != Z_OK) throw_write_error("cannot write", out_.temp_path(), errno != 0 ? errno : EIO);
  } else {
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw_write_error("cannot write", out_.temp_path(), errno != 0 ? errno : EIO);
  }
  out_.commit();
}

void append_csv_field(std::string& out, std::string_view f, char sep) {
  bool quote = false;
  for (char c : f)
    if (c == sep || c == '"' || c == '\n' || c == '\r') { quote = true; break; }
  if (!quote) {
    out.append(f);
    return;
  }
  out.push_back('"');
  for (char c : f) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

namespace {
bool split_csv_fields(std::string_view r, char sep, std::vector<std::string_view>& fields,
                      std::vector<std::string>& scratch, std::vector<size_t>& unescaped) {
  size_t scratch_used = 0;
  size_t i = 0;
  const size_t n = r.size();
  while (true) {
    if (i < n && r[i] == '"') {
      size_t j = i + 1;
      bool escaped = false;
      while (true) {
        const void* q = std::memchr(r.data() + j, '"', n - j);
        if (!q) return false;  // unterminated quote
        j = size_t(static_cast<const char*>(q) - r.data());
        if (j + 1 < n && r[j + 1] == '"') {
          escaped = true;
          j += 2;
          continue;
        }
        break;
      }
      std::string_view raw = r.substr(i + 1, j - i - 1);
      if (escaped) {
        if (scratch_used >= scratch.size()) scratch.emplace_back();
        std::string& s = scratch[scratch_used++];
        s.clear();
        for (size_t k = 0; k < raw.size(); ++k) {
          s.push_back(raw[k]);
          if (raw[k] == '"') ++k;
        }
        unescaped.push_back(fields.size());  // bound to scratch[] once the record is split
        fields.emplace_back();
      } else {
        fields.push_back(raw);
      }
      i = j + 1;
      if (i == n) return true;
      if (r[i] != sep) return false;  // text after the closing quote
      ++i;
      if (i == n) {
        fields.emplace_back();
        return true;
      }
    } else {
      const void* p = std::memchr(r.data() + i, sep, n - i);
      size_t e = p ? size_t(static_cast<const char*>(p) - r.data()) : n;
      std::string_view f = r.substr(i, e - i);
      if (f.find('"') != std::string_view::npos) return false;  // stray quote in bare field
      fields.push_back(f);
      if (e == n) return true;
      i = e + 1;
      if (i == n) {
        fields.emplace_back();
        return true;
      }
    }
  }
}

}  // namespace

bool split_csv(std::string_view r, char sep, std::vector<std::string_view>& fields,
               std::vector<std::string>& scratch) {
  fields.clear();
  // Unescaped fields point into `scratch` only after the whole record is split: growing it
  // moves its strings (a short one keeps its text inside the string object), so a view taken
  // before a later field's emplace_back would dangle.
  std::vector<size_t> unescaped;
  const bool ok = split_csv_fields(r, sep, fields, scratch, unescaped);
  for (size_t k = 0; k < unescaped.size(); ++k) fields[unescaped[k]] = scratch[k];
  return ok;
}

/// Keys at the top level of a JSON object text that parsed (':' at depth 1 outside strings):
/// nlohmann keeps the last of repeated keys without a word, so repeats are found by count.
static size_t count_top_level_keys(std::string_view s) {
  size_t n = 0;
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') ++depth;
    else if (c == '}' || c == ']') --depth;
    else if (c == ':' && depth == 1) ++n;
  }
  return n;
}

std::string parse_json_record(std::string_view rec, nlohmann::json& j) {
  j = nlohmann::json::parse(rec, nullptr, false);
  if (j.is_discarded()) {
    try {  // again, only for a bad row, for the parser's account of what is wrong
      const nlohmann::json strict = nlohmann::json::parse(rec);  // throws: the syntax error
      (void)strict;
    } catch (const nlohmann::json::parse_error& e) {
      std::string m = e.what();  // "[json.exception.parse_error.101] parse error at line 1, column 9: ..."
      if (const size_t c = m.find(": "); c != std::string::npos) m.erase(0, c + 2);
      return fmt::format("JSON syntax error at byte {}: {}", e.byte, snippet(m));
    } catch (const std::exception& e) {
      return "JSON syntax error: " + snippet(e.what());
    }
    return "JSON syntax error";
  }
  if (!j.is_object()) return fmt::format("the line is a JSON {}, not an object", j.type_name());
  if (count_top_level_keys(rec) != j.size()) {
    std::vector<std::string> keys;
    std::string repeated;
    nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& k) {
      if (ev == nlohmann::json::parse_event_t::key && depth == 1 && repeated.empty() && k.is_string()) {
        const auto& name = k.get_ref<const std::string&>();
        if (std::find(keys.begin(), keys.end(), name) != keys.end()) repeated = name;
        else keys.push_back(name);
      }
      return true;
    };
    const nlohmann::json again = nlohmann::json::parse(rec, cb, false);  // for the callback
    (void)again;
    return fmt::format("key '{}' appears more than once in the object, so which value is meant is unknown",
                       snippet(repeated, 64));
  }
  return "";
}

std::vector<std::filesystem::path> expand_inputs(const std::vector<std::string>& patterns) {
  std::vector<std::filesystem::path> out;
  for (const auto& pat : patterns) {
    if (pat.find_first_of("*?[") == std::string::npos) {
      if (!std::filesystem::is_regular_file(pat))
        throw DataError("input file '" + pat + "' does not exist or is not a regular file");
      out.emplace_back(pat);
      continue;
    }
    glob_t g{};
    int rc = ::glob(pat.c_str(), 0, nullptr, &g);
    if (rc != 0 || g.gl_pathc == 0) {
      globfree(&g);
      throw DataError("input pattern '" + pat + "' matches no files");
    }
    for (size_t i = 0; i < g.gl_pathc; ++i)
      if (std::filesystem::is_regular_file(g.gl_pathv[i])) out.emplace_back(g.gl_pathv[i]);
    globfree(&g);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace portrait::data
