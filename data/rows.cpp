#include "data/rows.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "core/config/secrets.h"
#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/text.h"

namespace portrait::data {

namespace fs = std::filesystem;
using namespace row;

namespace {

/// When the header came out as one column, the file is most likely separated by another
/// character than data.format says: name it, and the setting that reads it.
std::string delimiter_hint(const std::vector<std::string>& header, char sep) {
  if (header.empty()) return "";
  const std::string& h = header[0];
  if (!h.empty() && h[0] == '{') return "; the file looks like JSON Lines: set data.format=jsonl";
  if (header.size() != 1) return "";
  if (sep != '\t' && h.find('\t') != std::string::npos)
    return "; the header is one column holding tabs: the file looks tab-separated, set data.format=tsv";
  if (sep != ',' && h.find(',') != std::string::npos)
    return "; the header is one column holding commas: the file looks comma-separated, set data.format=csv";
  for (char c : {';', '|'})
    if (h.find(c) != std::string::npos)
      return fmt::format("; the header is one column holding '{}': the file looks '{}'-separated, which "
                         "data.format (csv, tsv or jsonl) does not read; convert it to commas or tabs",
                         c, c);
  return "";
}

/// The header's column names as an error message may list them (bounded).
std::string header_list(const std::vector<std::string>& header) {
  constexpr size_t kMaxNames = 20;
  std::string out;
  for (size_t i = 0; i < header.size() && i < kMaxNames; ++i) out += (i ? ", " : "") + snippet(header[i], 64);
  if (header.size() > kMaxNames) out += fmt::format(", ... ({} columns)", header.size());
  return out;
}

/// The first byte of `v` that an id may not hold (any control byte; a NUL anywhere else),
/// or npos. NUL ends strings in HDF5 and C, so "item\0A" and "item\0B" would become one item.
size_t bad_byte(std::string_view v, bool is_id) {
  if (!is_id) return v.find('\0');
  for (size_t i = 0; i < v.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c == 0x7F) return i;
  }
  return std::string_view::npos;
}

int64_t parse_time_or_throw(const std::string& key, const std::string& v) {
  int64_t ms;
  if (!parse_timestamp_ms(v, ms))
    throw ConfigError("config key '" + key + "' = '" + v +
                      "' is not a timestamp (ISO-8601 like 2024-01-01 or unix seconds)");
  return ms;
}

}  // namespace

std::string input_format(const fs::path& p, const std::string& configured) {
  if (configured != "auto") return configured;
  std::string n = p.filename().string();
  if (n.size() > 3 && n.substr(n.size() - 3) == ".gz") n = n.substr(0, n.size() - 3);
  auto ends = [&](const char* e) {
    size_t l = std::strlen(e);
    return n.size() >= l && n.compare(n.size() - l, l, e) == 0;
  };
  if (ends(".csv")) return "csv";
  if (ends(".tsv") || ends(".tab")) return "tsv";
  if (ends(".jsonl") || ends(".ndjson") || ends(".json")) return "jsonl";
  throw DataError("cannot tell the format of input file '" + p.string() +
                  "' from its name; set data.format to csv, tsv or jsonl");
}

RowRules::RowRules(const DataParams& d) : data(d) {
  for (int i = 0; i < kNumEventTypes; ++i) type_map[std::string(kEventTypeNames[size_t(i)])] = EventType(i + 1);
  for (auto& [k, v] : d.event_types) {
    auto t = canonical_event_type(v);
    if (!t)
      throw ConfigError("config key 'data.event_types." + k + "' = '" + v +
                        "' is not one of view, click, cart, purchase, review");
    type_map[k] = *t;
  }
  if (!d.default_event_type.empty()) {
    default_type = canonical_event_type(d.default_event_type);
    if (!default_type)
      throw ConfigError("config key 'data.default_event_type' = '" + d.default_event_type +
                        "' is not one of view, click, cart, purchase, review");
  }
  for (int k = 0; k < kNumFields; ++k) {
    auto it = d.columns.find(kFieldNames[k]);
    if (it != d.columns.end()) key[k] = it->second;
  }
  for (int k : {kUser, kTs, kItem})
    if (key[k].empty())
      throw ConfigError(std::string("config key 'data.columns.") + kFieldNames[k] + "' must name a column");
  if (!default_type && key[kType].empty())
    throw ConfigError("config key 'data.columns.event_type' is empty: set it or data.default_event_type");
  min_ms = parse_time_or_throw("data.clean.min_time", d.min_time);
  max_ms = parse_time_or_throw("data.clean.max_time", d.max_time);
}

RowReader::RowReader(const fs::path& file, std::string name, const RowRules& rules,
                     std::set<int>* warned_absent)
    : rules_(rules),
      name_(std::move(name)),
      warned_(warned_absent ? warned_absent : &own_warned_),
      rr_(file, input_format(file, rules.data.format) != "jsonl"),
      json_vals_(kNumFields) {
  const std::string fmt_name = input_format(file, rules.data.format);
  is_json_ = fmt_name == "jsonl";
  sep_ = fmt_name == "tsv" ? '\t' : ',';
  col_word_ = is_json_ ? "key" : "column";
  std::fill(std::begin(col_), std::end(col_), -1);
  if (is_json_) return;
  std::string_view rec;
  int64_t line;
  if (!rr_.next(rec, line)) throw DataError("input file '" + name_ + "' is empty (expected a header line)");
  if (!split_csv(rec, sep_, fields_, scratch_))
    throw DataError("input file '" + name_ + "' line 1: cannot parse the header");
  std::vector<std::string> header(fields_.begin(), fields_.end());
  if (!header.empty() && header[0].rfind("\xEF\xBB\xBF", 0) == 0) header[0] = header[0].substr(3);
  ncols_ = header.size();
  const std::string* jkey = rules_.key;
  // A mapped name twice in the header is ambiguous: which column holds the field?
  std::map<std::string_view, std::vector<size_t>> at;
  for (size_t i = 0; i < header.size(); ++i) at[header[i]].push_back(i + 1);
  for (auto& [hname, pos] : at) {
    if (pos.size() < 2) continue;
    const auto mapped = std::find(jkey, jkey + kNumFields, hname);
    if (mapped != jkey + kNumFields)
      throw DataError(fmt::format(
          "input file '{}' line 1: column '{}' (data.columns.{}) appears {} times in the header "
          "(columns {}); rename all but one, or map the field to a column that appears once",
          name_, snippet(hname, 64), kFieldNames[mapped - jkey], pos.size(), fmt::join(pos, ", ")));
    PLOG_WARN("input file '{}' line 1: column '{}' appears {} times in the header (columns {}); "
              "it is not mapped by data.columns, so it is not read",
              name_, snippet(hname, 64), pos.size(), fmt::join(pos, ", "));
  }
  for (int k = 0; k < kNumFields; ++k) {
    if (jkey[k].empty()) continue;
    auto it = std::find(header.begin(), header.end(), jkey[k]);
    if (it != header.end()) {
      col_[k] = int(it - header.begin());
    } else if (rules_.required(k)) {
      std::string hint = cfg::did_you_mean(jkey[k], header);
      throw DataError("input file '" + name_ + "' line 1: no column '" + snippet(jkey[k], 64) +
                      "' for field '" + kFieldNames[k] + "' (data.columns." + kFieldNames[k] +
                      "); header has: " + header_list(header) +
                      (hint.empty() ? "" : "; did you mean '" + snippet(hint, 64) + "'?") +
                      delimiter_hint(header, sep_));
    } else {
      warn_absent(k, "has no column");
    }
  }
}

RowReader::~RowReader() = default;

// An optional field mapped to a column the data lacks is probably a misspelt mapping: say so
// once per field, since every row would silently lose it.
void RowReader::warn_absent(int k, const char* where) {
  if (!warned_->insert(k).second) return;
  PLOG_WARN("input file '{}' {} '{}' for the optional field '{}' (data.columns.{}): the field stays "
            "empty for its rows; set data.columns.{}='' if the data has none",
            name_, where, snippet(rules_.key[k], 64), kFieldNames[k], kFieldNames[k], kFieldNames[k]);
}

void RowReader::finish() {
  if (is_json_)
    for (int k = 0; k < kNumFields; ++k)
      if (!rules_.key[k].empty() && !rules_.required(k) && !key_seen_[k]) warn_absent(k, "has no row with the key");
}

bool RowReader::next(Row& r) {
  std::string_view rec;
  int64_t line;
  for (;;) {
    if (!rr_.next(rec, line)) return false;
    if (rec.empty() || (rec.size() == 1 && rec[0] == '\r')) {
      ++blank_;
      continue;
    }
    break;
  }
  ++rows_;
  const DataParams& d = rules_.data;
  const std::string* jkey = rules_.key;
  r.line = line;
  r.record = rec;
  r.accepted = false;
  r.reason = Reject::kCount;
  r.field = {};
  r.detail.clear();
  r.have_fields = false;
  for (int k = 0; k < kNumFields; ++k) {
    r.v[k] = {};
    r.present[k] = false;
  }
  std::string_view* v = r.v;
  bool* present = r.present;  // the row has the field's column / key
  std::string malformed;      // why the row's shape is wrong ("" = fine)
  int bad_type = -1;          // JSON: a field whose value has the wrong type
  std::string bad_type_detail;
  if (is_json_) {
    nlohmann::json j;
    malformed = parse_json_record(rec, j);
    if (j.is_object()) {
      r.have_fields = true;
      for (int k = 0; k < kNumFields; ++k) {
        std::string& out = json_vals_[size_t(k)];
        out.clear();
        if (jkey[k].empty()) continue;
        auto it = j.find(jkey[k]);
        if (it == j.end()) continue;
        key_seen_[k] = true;
        if (it->is_null()) continue;  // null = absent, as exporters write a missing value
        present[k] = true;
        const bool id = k == kUser || k == kItem || k == kCat || k == kType;
        if (it->is_string()) {
          out = it->get_ref<const std::string&>();
          continue;
        }
        out = it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (it->is_number_integer()) continue;
        if (it->is_number_float() && !id) continue;  // times, prices, ratings
        if (bad_type < 0) {
          bad_type = k;
          bad_type_detail = fmt::format(
              "key '{}' holds a JSON {} ({}); {}", snippet(jkey[k], 64),
              it->is_number_float() ? "non-integer number" : it->type_name(), snippet(out, 64),
              id ? "ids must be strings or integers" : "this field must be a string or a number");
        }
      }
      for (int k = 0; k < kNumFields; ++k) v[k] = json_vals_[size_t(k)];
    }
  } else if (split_csv(rec, sep_, fields_, scratch_)) {
    if (fields_.size() == ncols_) {
      r.have_fields = true;
      for (int k = 0; k < kNumFields; ++k)
        if (col_[k] >= 0) {
          v[k] = fields_[size_t(col_[k])];
          present[k] = true;
        }
    } else {
      malformed = fmt::format("{} fields, header has {}", fields_.size(), ncols_);
    }
  } else {
    malformed = "unbalanced or misplaced quote";
  }

  auto reject = [&](Reject why, std::string_view field, std::string detail) {
    r.reason = why;
    r.field = field;
    r.detail = std::move(detail);
    return true;
  };

  if (!valid_utf8(rec)) return reject(Reject::kInvalidUtf8, "", "row contains bytes that are not valid UTF-8");
  if (!malformed.empty()) return reject(Reject::kMalformedRow, "", malformed);
  if (bad_type >= 0) return reject(Reject::kBadValue, kFieldNames[bad_type], bad_type_detail);
  {
    int bad = -1;
    size_t at = 0;
    for (int k = 0; k < kNumFields && bad < 0; ++k) {
      at = bad_byte(v[k], k == kUser || k == kItem || k == kCat || k == kType);
      if (at != std::string_view::npos) bad = k;
    }
    if (bad >= 0)
      return reject(Reject::kBadValue, kFieldNames[bad],
                    fmt::format("{} '{}' has the control byte 0x{:02x} at byte {} of '{}'; {}", col_word_,
                                snippet(jkey[bad], 64), static_cast<unsigned char>(v[bad][at]), at + 1,
                                snippet(v[bad], 64),
                                bad == kReview || bad == kTs || bad == kPrice || bad == kRating
                                    ? "no field may hold a NUL byte"
                                    : "ids must be printable text"));
  }
  for (int k = 0; k < kNumFields; ++k)
    if (int64_t(v[k].size()) > d.max_field_length)
      return reject(Reject::kFieldTooLong, kFieldNames[k],
                    fmt::format("{} bytes > data.clean.max_field_length = {}", v[k].size(), d.max_field_length));
  {
    int missing = -1;
    for (int k : {kUser, kTs, kItem})
      if (v[k].empty()) {
        missing = k;
        break;
      }
    if (missing < 0 && !rules_.default_type && v[kType].empty()) missing = kType;
    if (missing >= 0) return reject(Reject::kMissingField, kFieldNames[missing], "empty or absent");
  }
  int64_t ts;
  if (!parse_timestamp_ms(v[kTs], ts))
    return reject(Reject::kBadTimestamp, "timestamp",
                  fmt::format("'{}' is not unix s/ms or ISO-8601", snippet(v[kTs])));
  if (ts < rules_.min_ms || ts >= rules_.max_ms)
    return reject(Reject::kTimestampOutOfRange, "timestamp",
                  fmt::format("{} outside [{}, {})", format_iso8601(ts / 1000), d.min_time, d.max_time));
  EventType type;
  if (v[kType].empty()) {
    type = *rules_.default_type;
  } else {
    auto it = rules_.type_map.find(std::string(v[kType]));
    if (it == rules_.type_map.end())
      return reject(Reject::kUnknownEventType, "event_type",
                    fmt::format("'{}' is not view/click/cart/purchase/review nor mapped in data.event_types",
                                snippet(v[kType])));
    type = it->second;
  }
  float price = NAN, rating = NAN;
  if (!v[kPrice].empty()) {
    double x;
    if (!parse_double(v[kPrice], x) || x < 0 || x > d.max_price)
      return reject(Reject::kBadPrice, "price",
                    fmt::format("'{}' is not a number in [0, {}]", snippet(v[kPrice]), d.max_price));
    price = float(x);
  }
  if (!v[kRating].empty()) {
    double x;
    if (!parse_double(v[kRating], x) || x < d.rating_min || x > d.rating_max)
      return reject(Reject::kBadRating, "rating",
                    fmt::format("'{}' is not a number in [{}, {}]", snippet(v[kRating]), d.rating_min, d.rating_max));
    rating = float(x);
  }
  r.accepted = true;
  r.ts_ms = ts;
  r.type = type;
  r.price = price;
  r.rating = rating;
  return true;
}

nlohmann::json row_fields_json(const Row& r, const std::function<std::string(std::string_view)>& user,
                               const std::function<std::string_view(std::string_view, std::string&)>& text) {
  nlohmann::json f = nlohmann::json::object();
  std::string buf;
  for (int k = 0; k < kNumFields; ++k) {
    if (!r.present[k]) continue;
    if (k == kUser) f[kFieldNames[k]] = r.v[k].empty() ? std::string() : user(r.v[k]);
    else if (k == kReview) f[kFieldNames[k]] = std::string(text(r.v[k], buf));
    else f[kFieldNames[k]] = std::string(r.v[k]);
  }
  return f;
}

Catalogue load_catalogue(const std::string& path, const DataParams& d) {
  Catalogue c;
  if (path.empty()) return c;
  RecordReader rr(path, true);
  std::string_view rec;
  int64_t line;
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  const std::string fmt_name = input_format(path, d.catalogue_format);
  if (fmt_name == "jsonl")
    throw DataError("catalogue '" + path + "': JSON Lines catalogues are not supported; use CSV or TSV "
                    "(data.catalogue.format)");
  const char sep = fmt_name == "tsv" ? '\t' : ',';
  if (!rr.next(rec, line) || !split_csv(rec, sep, f, scratch))
    throw DataError("catalogue '" + path + "' line 1: cannot read the header");
  std::vector<std::string> header(f.begin(), f.end());
  auto col = [&](const char* k, bool required) -> int {
    auto it = d.catalogue_columns.find(k);
    if (it == d.catalogue_columns.end() || it->second.empty()) {
      if (required) throw ConfigError(std::string("data.catalogue.columns.") + k + " must be set");
      return -1;
    }
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == it->second) return int(i);
    if (required)
      throw DataError("catalogue '" + path + "' line 1: no column '" + it->second +
                      "' (data.catalogue.columns." + k + ")");
    return -1;
  };
  int ci = col("item", true), cc = col("category", false), cp = col("price", false);
  int64_t bad = 0;
  while (rr.next(rec, line)) {
    if (rec.empty()) continue;
    if (!split_csv(rec, sep, f, scratch) || f.size() != header.size()) {
      if (++bad <= 5) PLOG_WARN("catalogue '{}' line {}: malformed row skipped", path, line);
      continue;
    }
    std::string cat = cc >= 0 ? std::string(f[size_t(cc)]) : std::string();
    if (!d.catalogue_category_separator.empty()) cat = cat.substr(0, cat.find(d.catalogue_category_separator));
    double pr = NAN;
    if (cp >= 0 && !f[size_t(cp)].empty() && !parse_double(f[size_t(cp)], pr)) pr = NAN;
    c.items[std::string(f[size_t(ci)])] = {cat, float(pr)};
  }
  if (bad) PLOG_WARN("catalogue '{}': {} malformed rows skipped", path, bad);
  PLOG_INFO("catalogue: {} items from {}", c.items.size(), path);
  return c;
}

std::string resolve_hash_key(const DataParams& d, const std::string& override_key) {
  if (!override_key.empty()) return override_key;
  std::string key;
  if (!d.key_file.empty()) {
    try {
      key = read_file(d.key_file);
    } catch (const std::exception&) {
      throw ConfigError("cannot read the pseudonymization key file given by "
                        "data.privacy.key_file ('" + d.key_file + "')");
    }
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
  } else if (!d.key_env.empty()) {
    // A value that is no variable name is most likely the key pasted into key_env: say so
    // without echoing it (run records show it as <redacted>, core/config/secrets.h).
    if (cfg::is_secret_value("key_env", d.key_env))
      throw ConfigError("data.privacy.key_env must name an environment variable (UPPER_SNAKE_CASE, "
                        "e.g. PORTRAIT_HASH_KEY), not hold the key itself; its value is not shown. "
                        "Export the key in a variable and name that, or put it in a file and set "
                        "data.privacy.key_file");
    const char* v = std::getenv(d.key_env.c_str());
    if (v) key = v;
  }
  if (key.empty())
    throw ConfigError("no pseudonymization key: set data.privacy.key_file to a file holding a "
                      "secret (e.g. `openssl rand -hex 32 > hash.key`) or export " +
                      (d.key_env.empty() ? std::string("a key variable") : d.key_env));
  if (key.size() < 16)
    throw ConfigError("the pseudonymization key is shorter than 16 bytes; use a longer secret");
  return key;
}

}  // namespace portrait::data
