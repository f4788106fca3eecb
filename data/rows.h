// One event row of a raw log, read and validated exactly as `portrait prep` does it: the
// column mapping of the `data` group (data.columns, data.event_types, data.default_event_type),
// CSV/TSV (quote-aware, RFC 4180) or JSON Lines, gzip by content, and the checks of
// data/schema.h in their order, so a row is rejected for the same reason whichever command
// reads it. `portrait prep` and `portrait campaign evaluate` both read their logs through
// RowReader; what they do with an accepted or rejected row (spill, quarantine) is theirs.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/io.h"
#include "data/prep.h"
#include "data/schema.h"

namespace portrait::data {

/// Canonical fields of an event row (data.columns keys), in the order checks visit them.
namespace row {
enum Field : int { kUser, kTs, kType, kItem, kCat, kPrice, kRating, kReview, kNumFields };
inline constexpr const char* kFieldNames[kNumFields] = {"user", "timestamp", "event_type", "item",
                                                        "category", "price", "rating", "review"};
}  // namespace row

/// "csv" | "tsv" | "jsonl" of an input file: `configured` unless it is "auto", else from the
/// file name (.csv, .tsv/.tab, .jsonl/.ndjson/.json, each optionally .gz); DataError when the
/// name does not tell.
std::string input_format(const std::filesystem::path& file, const std::string& configured);

/// What a whole run needs to validate rows: the field -> column mapping, the event-type map and
/// the time bounds of data.clean. Built once from DataParams; throws ConfigError when a
/// required field (user, timestamp, item, and event_type unless data.default_event_type is
/// set) is not mapped.
struct RowRules {
  explicit RowRules(const DataParams& d);
  const DataParams& data;
  std::string key[row::kNumFields];  ///< column name / JSON key of each field ("" = unmapped)
  std::unordered_map<std::string, EventType> type_map;
  std::optional<EventType> default_type;
  int64_t min_ms = 0, max_ms = 0;
  bool required(int k) const {
    return k == row::kUser || k == row::kTs || k == row::kItem || (k == row::kType && !default_type);
  }
};

/// One data row (blank lines are skipped) after validation.
struct Row {
  int64_t line = 0;         ///< 1-based first physical line of the record
  std::string_view record;  ///< the raw record (valid until the next read)
  bool accepted = false;
  // Rejected rows: the first failing check (data/schema.h order), its field and why.
  Reject reason = Reject::kCount;
  std::string_view field;   ///< canonical field name ("" when the row as a whole is wrong)
  std::string detail;
  // The mapped fields, when the record could be split into them (have_fields): v[k] is the
  // text of field k, present[k] whether the row has its column / key.
  bool have_fields = false;
  std::string_view v[row::kNumFields];
  bool present[row::kNumFields] = {};
  // Accepted rows: the parsed values (price / rating NaN when empty).
  int64_t ts_ms = 0;
  EventType type = EventType::kView;
  float price = 0, rating = 0;
};

/// Reads and validates the rows of one input file. The header (CSV/TSV) is checked on
/// construction: a missing required column, a mapped column named twice, an empty file throw
/// DataError with prep's messages. Not thread-safe.
class RowReader {
 public:
  /// `name`: how messages name the file. `warned_absent`: optional fields already warned about
  /// as absent (shared across the files of a run, so each is warned about once).
  RowReader(const std::filesystem::path& file, std::string name, const RowRules& rules,
            std::set<int>* warned_absent);
  ~RowReader();
  RowReader(const RowReader&) = delete;
  RowReader& operator=(const RowReader&) = delete;

  /// Next data row (accepted or not); false at end of file.
  bool next(Row& r);
  /// Call after the last row: warns about optional JSON keys no row had.
  void finish();
  int64_t rows() const { return rows_; }           ///< data rows so far (blank lines excluded)
  int64_t blank_lines() const { return blank_; }
  int64_t bytes_read() const { return rr_.bytes_read(); }
  bool is_json() const { return is_json_; }
  const std::string& name() const { return name_; }

 private:
  void warn_absent(int k, const char* where);
  const RowRules& rules_;
  std::string name_;
  std::set<int>* warned_;
  std::set<int> own_warned_;
  RecordReader rr_;
  bool is_json_ = false;
  char sep_ = ',';
  const char* col_word_ = "column";
  int col_[row::kNumFields];
  size_t ncols_ = 0;
  bool key_seen_[row::kNumFields] = {};
  int64_t rows_ = 0, blank_ = 0;
  std::vector<std::string_view> fields_;
  std::vector<std::string> scratch_, json_vals_;
};

/// A rejected row's mapped fields as quarantine.jsonl stores them: `user` maps the raw user
/// id (e.g. to "u:<pseudonym>"), `text` the review text (PII masking; `buf` is scratch space
/// the returned view may point into); unmapped columns are left out.
nlohmann::json row_fields_json(const Row& r, const std::function<std::string(std::string_view)>& user,
                               const std::function<std::string_view(std::string_view, std::string&)>& text);

/// Item catalogue (prep.catalogue): item -> (category, price), filling rows that lack them.
struct Catalogue {
  std::unordered_map<std::string, std::pair<std::string, float>> items;  // cat, price
};
/// Loads a CSV/TSV catalogue under data.catalogue ("" = empty catalogue).
Catalogue load_catalogue(const std::string& path, const DataParams& d);

/// The pseudonymization key of data.privacy (key_file, else the key_env variable), or
/// `override_key` when not empty. ConfigError when there is none or it is shorter than 16
/// bytes.
std::string resolve_hash_key(const DataParams& d, const std::string& override_key = "");

}  // namespace portrait::data
