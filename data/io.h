// Streaming file I/O for the data pipeline. Readers transparently handle gzip (by content,
// not by name) through zlib; writers go to a temporary name and are renamed into place on
// commit(), so an interrupted run never leaves a complete-looking file.
#pragma once

#include <zlib.h>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/fs.h"

namespace portrait::data {

/// Reads logical records: physical lines, or for CSV/TSV (quote-aware) lines joined while a
/// quoted field is open (RFC 4180 embedded newlines). A quote left open for more than
/// `max_record_lines` lines is given up: the first line is returned alone (it will fail to
/// parse and be quarantined) and reading resumes at the next line, so one stray quote cannot
/// swallow a file.
class RecordReader {
 public:
  explicit RecordReader(const std::filesystem::path& path, bool quote_aware,
                        int max_record_lines = 64);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  /// Next record without its line terminator ("\n" or "\r\n"); `line` = 1-based number of its
  /// first physical line. The view stays valid until the next call. False at end of file.
  bool next(std::string_view& record, int64_t& line);
  /// Compressed (on-disk) bytes consumed so far, for progress.
  int64_t bytes_read() const;

 private:
  bool fill();
  gzFile gz_ = nullptr;
  std::string path_;
  std::string buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false, quote_aware_;
  int max_lines_;
  int64_t line_ = 0;
};

/// A text output file, optionally gzip-compressed, written under a temporary name and moved
/// into place by commit(). Buffered; not thread-safe.
class TextWriter {
 public:
  TextWriter(const std::filesystem::path& path, bool gzip, int gzip_level = 1);
  ~TextWriter();
  void write(std::string_view s) {
    buf_.append(s);
    if (buf_.size() >= (1u << 20)) flush();
  }
  void put(char c) { buf_.push_back(c); }
  void commit();
  const std::filesystem::path& path() const { return out_.final_path(); }

 private:
  void flush();
  AtomicOutput out_;
  bool gzip_;
  FILE* f_ = nullptr;
  gzFile gz_ = nullptr;
  std::string buf_;
};

/// Appends `field` to `out` as an RFC 4180 CSV field (quoted when it contains the separator,
/// a quote, CR or LF; quotes doubled).
void append_csv_field(std::string& out, std::string_view field, char sep = ',');

/// Splits one CSV/TSV record into fields (RFC 4180: quoted fields, doubled quotes, separators
/// and newlines inside quotes). Views point into `record` unless the field contained a doubled
/// quote, in which case the unescaped text is stored in `scratch` (stable until the next
/// call). Returns false on a malformed record (text after a closing quote, unterminated quote).
bool split_csv(std::string_view record, char sep, std::vector<std::string_view>& fields,
               std::vector<std::string>& scratch);

/// Parses one JSON Lines record into `j`: "" for an object with distinct keys, else what is
/// wrong (a syntax error with its 1-based byte offset, another JSON type, a repeated key). `j`
/// stays the object when only a key repeats, so the row's fields can still be quarantined.
std::string parse_json_record(std::string_view rec, nlohmann::json& j);

/// Expands a list of paths / glob patterns ("logs/*.csv.gz") into sorted, de-duplicated
/// existing files. A pattern matching nothing is an error naming the pattern.
std::vector<std::filesystem::path> expand_inputs(const std::vector<std::string>& patterns);

}  // namespace portrait::data
