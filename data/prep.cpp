#include "data/prep.h"

#include <openssl/hmac.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/io.h"
#include "data/rng.h"
#include "data/schema.h"
#include "data/shard.h"
#include "data/text.h"

namespace portrait::data {

namespace {
// Peak resident set so far, for the phase log lines (memory must not grow with input size).
double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}
}  // namespace


namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Config

namespace {
const char* kFieldNames[] = {"user", "timestamp", "event_type", "item",
                             "category", "price", "rating", "review"};
enum Field { kUser, kTs, kType, kItem, kCat, kPrice, kRating, kReview, kNumFields };

int64_t parse_time_config(const std::string& key, const std::string& v) {
  int64_t ms;
  if (!parse_timestamp_ms(v, ms))
    throw ConfigError("config key '" + key + "' = '" + v +
                      "' is not a timestamp (ISO-8601 like 2024-01-01 or unix seconds)");
  return ms;
}
}  // namespace

void read_data_params(const cfg::Node& root, DataParams& d) {
  cfg::Section s(root, "data");
  s.read("columns", d.columns);
  s.read("event_types", d.event_types);
  s.read("default_event_type", d.default_event_type);
  s.read_enum("format", d.format, {"auto", "csv", "tsv", "jsonl"});
  {
    cfg::Section c = s.sub("clean");
    c.read("min_time", d.min_time);
    c.read("max_time", d.max_time);
    c.read("max_field_length", d.max_field_length, int64_t{1});
    c.read("max_price", d.max_price, 0.0);
    c.read("rating_min", d.rating_min);
    c.read("rating_max", d.rating_max);
    c.read("max_events_per_user", d.max_events_per_user, int64_t{1});
    c.read("max_reject_fraction", d.max_reject_fraction, 0.0, 1.0);
    c.finish();
  }
  {
    cfg::Section c = s.sub("catalogue");
    c.read("columns", d.catalogue_columns);
    c.read("category_separator", d.catalogue_category_separator);
    c.finish();
  }
  {
    cfg::Section c = s.sub("privacy");
    c.read("key_file", d.key_file);
    c.read("key_env", d.key_env);
    c.read("id_map_path", d.id_map_path);
    c.read("mask_pii", d.mask_pii);
    c.read("min_digit_run", d.min_digit_run, 4, 64);
    c.read("min_events_per_user", d.min_events_per_user, int64_t{1});
    c.read("quarantine_raw_lines", d.quarantine_raw_lines);
    c.finish();
  }
  s.finish();
  for (auto& [k, v] : d.columns) {
    if (std::find(std::begin(kFieldNames), std::end(kFieldNames), k) == std::end(kFieldNames))
      throw ConfigError("config key 'data.columns." + k +
                        "' is not a field; fields are user, timestamp, event_type, item, "
                        "category, price, rating, review");
  }
  for (auto& [k, v] : d.event_types)
    if (!canonical_event_type(v))
      throw ConfigError("config key 'data.event_types." + k + "' = '" + v +
                        "' is not one of view, click, cart, purchase, review");
  if (!d.default_event_type.empty() && !canonical_event_type(d.default_event_type))
    throw ConfigError("config key 'data.default_event_type' = '" + d.default_event_type +
                      "' is not one of view, click, cart, purchase, review");
  if (d.rating_min > d.rating_max)
    throw ConfigError("config keys 'data.clean.rating_min' > 'data.clean.rating_max'");
  if (parse_time_config("data.clean.min_time", d.min_time) >=
      parse_time_config("data.clean.max_time", d.max_time))
    throw ConfigError("config key 'data.clean.min_time' must be before 'data.clean.max_time'");
}

PrepParams prep_params_from_config(const cfg::Node& root) {
  PrepParams p;
  read_data_params(root, p.data);
  cfg::Section s(root, "prep");
  s.read("input", p.input);
  s.read("catalogue", p.catalogue);
  s.read("output_dir", p.output_dir);
  if (const cfg::Node* n = s.raw("partitions"); n && n->is_string() && n->as_string() == "auto") {
    p.partitions = 0;
  } else {
    s.read("partitions", p.partitions, 1, 65536);
  }
  int64_t mb = p.partition_bytes >> 20;
  s.read("partition_mb", mb, 1, 1 << 20);
  p.partition_bytes = mb << 20;
  s.read("threads", p.threads, 1, 1024);
  s.read("seq_len", p.seq_len, 1, 1 << 20);
  s.read("text_len", p.text_len, 0, 1 << 20);
  s.read("train_cutoff", p.train_cutoff);
  s.read("val_cutoff", p.val_cutoff);
  s.read("test_cutoff", p.test_cutoff);
  s.read("label_window_days", p.label_window_days, 1e-6, 1e6);
  s.read("target_event_types", p.target_event_types);
  s.read("min_input_events", p.min_input_events, int64_t{1});
  s.read("min_item_count", p.min_item_count, int64_t{1});
  s.read("min_category_count", p.min_category_count, int64_t{1});
  s.read("train_tokenizer", p.train_tokenizer);
  s.read("progress", p.progress);
  {
    cfg::Section t = s.sub("tokenizer");
    tok::read_tokenizer_train_params(t, p.tokenizer);
    t.finish();
  }
  s.finish();
  if (p.input.empty()) throw ConfigError("config key 'prep.input' must list input files or globs");
  if (p.output_dir.empty()) throw ConfigError("config key 'prep.output_dir' must be set");
  for (auto& t : p.target_event_types)
    if (!canonical_event_type(t))
      throw ConfigError("config key 'prep.target_event_types' has '" + t +
                        "'; allowed: view, click, cart, purchase, review");
  for (const char* k : {"train_cutoff", "val_cutoff", "test_cutoff"}) {
    const std::string& v = k[0] == 't' && k[1] == 'r' ? p.train_cutoff
                           : k[0] == 'v'              ? p.val_cutoff
                                                      : p.test_cutoff;
    if (v != "auto") parse_time_config(std::string("prep.") + k, v);
  }
  return p;
}

std::string pseudonymize(std::string_view key, std::string_view raw) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(raw.data()),
       raw.size(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[size_t(2 * i)] = hex[md[i] >> 4];
    out[size_t(2 * i + 1)] = hex[md[i] & 15];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Implementation

namespace {

struct Pseudo {
  uint8_t b[16];
  bool operator<(const Pseudo& o) const { return std::memcmp(b, o.b, 16) < 0; }
  bool operator==(const Pseudo& o) const { return std::memcmp(b, o.b, 16) == 0; }
  uint64_t h() const {
    uint64_t x;
    std::memcpy(&x, b, 8);
    return x;
  }
  std::string hex() const {
    static const char* hx = "0123456789abcdef";
    std::string s(32, '0');
    for (int i = 0; i < 16; ++i) {
      s[size_t(2 * i)] = hx[b[i] >> 4];
      s[size_t(2 * i + 1)] = hx[b[i] & 15];
    }
    return s;
  }
};

Pseudo hmac16(std::string_view key, std::string_view raw) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(raw.data()),
       raw.size(), md, &len);
  Pseudo p;
  std::memcpy(p.b, md, 16);
  return p;
}

struct Rec {
  Pseudo user;
  int64_t ts;
  uint8_t type;
  float price, rating;  // NaN = absent
  uint32_t file;
  int64_t line;
  uint64_t seq;
  std::string item, cat, text;
};

void put_raw(std::string& b, const void* p, size_t n) { b.append(static_cast<const char*>(p), n); }
template <typename T> void put(std::string& b, T v) { put_raw(b, &v, sizeof v); }
void put_str(std::string& b, std::string_view s) {
  put<uint32_t>(b, uint32_t(s.size()));
  b.append(s);
}

void encode_rec(std::string& b, const Pseudo& u, int64_t ts, uint8_t type, float price,
                float rating, uint32_t file, int64_t line, uint64_t seq, std::string_view item,
                std::string_view cat, std::string_view text) {
  put_raw(b, u.b, 16);
  put(b, ts);
  put(b, type);
  put(b, price);
  put(b, rating);
  put(b, file);
  put(b, line);
  put(b, seq);
  put_str(b, item);
  put_str(b, cat);
  put_str(b, text);
}

class SpillFile {
 public:
  explicit SpillFile(fs::path p) : path_(std::move(p)) {
    f_ = std::fopen(path_.c_str(), "wb");
    if (!f_) throw std::runtime_error("cannot create spill file " + path_.string());
  }
  ~SpillFile() {
    if (f_) std::fclose(f_);
  }
  std::string& buf() { return buf_; }
  void maybe_flush() {
    if (buf_.size() >= (1u << 20)) flush();
  }
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
      throw std::runtime_error("write failed for spill file " + path_.string() + " (disk full?)");
    buf_.clear();
  }
  void close() {
    flush();
    std::fclose(f_);
    f_ = nullptr;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  FILE* f_ = nullptr;
  std::string buf_;
};

std::vector<Rec> read_spill(const fs::path& p) {
  std::string data = read_file(p);
  std::vector<Rec> out;
  size_t i = 0;
  auto get = [&](void* dst, size_t n) {
    std::memcpy(dst, data.data() + i, n);
    i += n;
  };
  auto gets = [&](std::string& s) {
    uint32_t n;
    get(&n, 4);
    s.assign(data.data() + i, n);
    i += n;
  };
  while (i < data.size()) {
    Rec r;
    get(r.user.b, 16);
    get(&r.ts, 8);
    get(&r.type, 1);
    get(&r.price, 4);
    get(&r.rating, 4);
    get(&r.file, 4);
    get(&r.line, 8);
    get(&r.seq, 8);
    gets(r.item);
    gets(r.cat);
    gets(r.text);
    out.push_back(std::move(r));
  }
  return out;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

std::string format_of(const fs::path& p, const std::string& configured) {
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

struct Quarantine {
  TextWriter out;
  std::map<std::string, int64_t> counts;
  int64_t total = 0;
  explicit Quarantine(const fs::path& p) : out(p, false) {
    for (auto n : kRejectNames) counts[std::string(n)] = 0;
  }
  void add(Reject r, const std::string& file, int64_t line, std::string_view field,
           std::string_view detail, std::string_view record) {
    nlohmann::json j;
    j["file"] = file;
    j["line"] = line;
    j["reason"] = reject_name(r);
    if (!field.empty()) j["field"] = field;
    if (!detail.empty()) j["detail"] = detail;
    j["record"] = record;
    out.write(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    out.put('\n');
    ++counts[std::string(reject_name(r))];
    ++total;
  }
};

std::string resolve_key(const PrepParams& p) {
  if (!p.hash_key.empty()) return p.hash_key;
  std::string key;
  if (!p.data.key_file.empty()) {
    try {
      key = read_file(p.data.key_file);
    } catch (const std::exception&) {
      throw ConfigError("cannot read the pseudonymization key file given by "
                        "data.privacy.key_file ('" + p.data.key_file + "')");
    }
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
  } else if (!p.data.key_env.empty()) {
    const char* v = std::getenv(p.data.key_env.c_str());
    if (v) key = v;
  }
  if (key.empty())
    throw ConfigError("no pseudonymization key: set data.privacy.key_file to a file holding a "
                      "secret (e.g. `openssl rand -hex 32 > hash.key`) or export " +
                      (p.data.key_env.empty() ? std::string("a key variable") : p.data.key_env));
  if (key.size() < 16)
    throw ConfigError("the pseudonymization key is shorter than 16 bytes; use a longer secret");
  return key;
}

inline int32_t gap_bucket(int64_t gap_ms, bool first) {
  if (first) return 0;
  double s = double(std::max<int64_t>(gap_ms, 0)) / 1000.0;
  return 1 + std::min(30, int(std::floor(std::log2(1.0 + s))));
}
inline int32_t price_bucket(float price) {
  if (std::isnan(price)) return 0;
  return 1 + std::min(62, int(std::floor(4.0 * std::log2(1.0 + double(price)))));
}

struct Catalogue {
  std::unordered_map<std::string, std::pair<std::string, float>> items;  // cat, price
};

Catalogue load_catalogue(const std::string& path, const DataParams& d) {
  Catalogue c;
  if (path.empty()) return c;
  RecordReader rr(path, true);
  std::string_view rec;
  int64_t line;
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  if (!rr.next(rec, line) || !split_csv(rec, ',', f, scratch))
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
    if (!split_csv(rec, ',', f, scratch) || f.size() != header.size()) {
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

}  // namespace

PrepSummary run_prep(const PrepParams& p) {
  const auto t0 = std::chrono::steady_clock::now();
  const DataParams& d = p.data;
  const std::string key = resolve_key(p);
  const fs::path out_dir(p.output_dir);
  fs::create_directories(out_dir);
  const fs::path spill_dir = out_dir / (".spill." + std::to_string(::getpid()));
  fs::remove_all(spill_dir);
  fs::create_directories(spill_dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{spill_dir};

  const int64_t min_ms = parse_time_config("data.clean.min_time", d.min_time);
  const int64_t max_ms = parse_time_config("data.clean.max_time", d.max_time);
  const auto files = expand_inputs(p.input);
  if (files.empty()) throw DataError("prep.input matched no files");
  Catalogue catalogue = load_catalogue(p.catalogue, d);

  PrepSummary sum;
  Quarantine quar(out_dir / "quarantine.jsonl");
  PiiMaskCounts pii;
  std::vector<std::string> file_names;
  for (auto& f : files) file_names.push_back(f.string());

  // ---- Phase 1: read, validate, mask, pseudonymize, spill ------------------------------------
  uint64_t total_bytes = 0;
  for (auto& f : files) total_bytes += uint64_t(fs::file_size(f));
  // gzip inputs expand about 5x: size partitions by the expected plain bytes.
  uint64_t plain_bytes = 0;
  for (auto& f : files) plain_bytes += uint64_t(fs::file_size(f)) * (f.extension() == ".gz" ? 5 : 1);
  const int P = p.partitions > 0
                    ? p.partitions
                    : int(std::clamp<uint64_t>((plain_bytes + uint64_t(p.partition_bytes) - 1) /
                                                   uint64_t(p.partition_bytes),
                                               1, 65536));
  PLOG_INFO("prep: {} partitions ({})", P, p.partitions > 0 ? "prep.partitions" : "auto from input size");
  std::vector<std::unique_ptr<SpillFile>> spills;
  for (int i = 0; i < P; ++i)
    spills.push_back(std::make_unique<SpillFile>(spill_dir / fmt::format("raw_{:05d}.bin", i)));
  ProgressParams pp;
  pp.enabled = p.progress;
  Progress bar("prep read", total_bytes, "B", pp);

  std::unordered_map<std::string, Pseudo> id_cache;
  std::string last_raw;
  Pseudo last_pseudo{};
  bool have_last = false;
  std::unordered_map<std::string, std::string> id_map;
  auto pseudo_of = [&](std::string_view raw) -> Pseudo {
    if (have_last && raw == last_raw) return last_pseudo;
    auto it = id_cache.find(std::string(raw));
    Pseudo ps;
    if (it != id_cache.end()) {
      ps = it->second;
    } else {
      ps = hmac16(key, raw);
      if (id_cache.size() > 2000000) id_cache.clear();
      id_cache.emplace(std::string(raw), ps);
      if (!d.id_map_path.empty()) id_map.emplace(std::string(raw), ps.hex());
    }
    last_raw.assign(raw);
    last_pseudo = ps;
    have_last = true;
    return ps;
  };

  std::vector<uint8_t> target_types(kNumEventTypes + 1, 0);
  for (auto& t : p.target_event_types) target_types[size_t(*canonical_event_type(t))] = 1;
  std::unordered_map<std::string, EventType> type_map;
  for (int i = 0; i < kNumEventTypes; ++i) type_map[std::string(kEventTypeNames[size_t(i)])] = EventType(i + 1);
  for (auto& [k, v] : d.event_types) type_map[k] = *canonical_event_type(v);
  std::optional<EventType> default_type;
  if (!d.default_event_type.empty()) default_type = canonical_event_type(d.default_event_type);

  uint64_t seq = 0;
  int64_t blank_lines = 0;
  std::vector<std::string_view> fields;
  std::vector<std::string> scratch, json_vals(kNumFields);
  std::string text_buf, redacted;
  uint64_t bytes_done_before = 0;

  for (uint32_t fi = 0; fi < files.size(); ++fi) {
    const std::string& fname = file_names[fi];
    const std::string fmt_name = format_of(files[fi], d.format);
    const bool is_json = fmt_name == "jsonl";
    const char sep = fmt_name == "tsv" ? '\t' : ',';
    RecordReader rr(files[fi], !is_json);
    std::string_view rec;
    int64_t line;
    int col[kNumFields];
    std::fill(std::begin(col), std::end(col), -1);
    size_t ncols = 0;
    std::vector<std::string> header;
    std::string jkey[kNumFields];
    for (int k = 0; k < kNumFields; ++k) {
      auto it = d.columns.find(kFieldNames[k]);
      if (it != d.columns.end()) jkey[k] = it->second;
    }
    const bool need_type_col = !default_type.has_value();
    for (int k : {kUser, kTs, kItem})
      if (jkey[k].empty())
        throw ConfigError(std::string("config key 'data.columns.") + kFieldNames[k] + "' must name a column");
    if (need_type_col && jkey[kType].empty())
      throw ConfigError("config key 'data.columns.event_type' is empty: set it or data.default_event_type");
    if (!is_json) {
      if (!rr.next(rec, line))
        throw DataError("input file '" + fname + "' is empty (expected a header line)");
      if (!split_csv(rec, sep, fields, scratch))
        throw DataError("input file '" + fname + "' line 1: cannot parse the header");
      header.assign(fields.begin(), fields.end());
      if (!header.empty() && header[0].rfind("\xEF\xBB\xBF", 0) == 0) header[0] = header[0].substr(3);
      ncols = header.size();
      for (int k = 0; k < kNumFields; ++k) {
        if (jkey[k].empty()) continue;
        auto it = std::find(header.begin(), header.end(), jkey[k]);
        if (it != header.end()) {
          col[k] = int(it - header.begin());
        } else if (k == kUser || k == kTs || k == kItem || (k == kType && need_type_col)) {
          std::string hint = cfg::did_you_mean(jkey[k], header);
          throw DataError("input file '" + fname + "' line 1: no column '" + jkey[k] +
                          "' for field '" + kFieldNames[k] + "' (data.columns." + kFieldNames[k] +
                          "); header has: " + fmt::format("{}", fmt::join(header, ", ")) +
                          (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
        }
      }
    }

    while (rr.next(rec, line)) {
      if (rec.empty() || (rec.size() == 1 && rec[0] == '\r')) {
        ++blank_lines;
        continue;
      }
      ++sum.rows;
      ++seq;
      if ((sum.rows & 0xffff) == 0) bar.set(bytes_done_before + uint64_t(rr.bytes_read()));

      std::string_view v[kNumFields];
      bool parsed = false;      // fields available (for redaction)
      bool shape_ok = false;
      nlohmann::json j;
      if (is_json) {
        j = nlohmann::json::parse(rec, nullptr, false);
        if (!j.is_discarded() && j.is_object()) {
          parsed = shape_ok = true;
          for (int k = 0; k < kNumFields; ++k) {
            json_vals[size_t(k)].clear();
            if (jkey[k].empty()) continue;
            auto it = j.find(jkey[k]);
            if (it == j.end() || it->is_null()) continue;
            if (it->is_string()) json_vals[size_t(k)] = it->get<std::string>();
            else json_vals[size_t(k)] = it->dump();
          }
          for (int k = 0; k < kNumFields; ++k) v[k] = json_vals[size_t(k)];
        }
      } else if (split_csv(rec, sep, fields, scratch)) {
        parsed = true;
        shape_ok = fields.size() == ncols;
        for (int k = 0; k < kNumFields; ++k)
          if (col[k] >= 0 && size_t(col[k]) < fields.size()) v[k] = fields[size_t(col[k])];
      }

      auto redact = [&]() -> std::string {
        // The record with the raw user id replaced by its pseudonym.
        if (parsed && !v[kUser].empty() && valid_utf8(v[kUser])) {
          std::string ps = "u:" + pseudo_of(v[kUser]).hex();
          if (is_json) {
            j[jkey[kUser]] = ps;
            return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
          }
          std::string out;
          for (size_t i = 0; i < fields.size(); ++i) {
            if (i) out.push_back(sep);
            append_csv_field(out, int(i) == col[kUser] ? std::string_view(ps) : fields[i], sep);
          }
          return out;
        }
        if (d.quarantine_raw_lines) return std::string(rec);
        return "<withheld: the user id could not be located to pseudonymize it; set "
               "data.privacy.quarantine_raw_lines=true to keep raw rows>";
      };
      auto reject = [&](Reject r, std::string_view field, std::string detail) {
        quar.add(r, fname, line, field, detail, redact());
      };

      if (!valid_utf8(rec)) {
        reject(Reject::kInvalidUtf8, "", "row contains bytes that are not valid UTF-8");
        continue;
      }
      if (!shape_ok) {
        if (is_json) reject(Reject::kMalformedRow, "", "not a JSON object");
        else if (!parsed) reject(Reject::kMalformedRow, "", "unbalanced or misplaced quote");
        else reject(Reject::kMalformedRow, "", fmt::format("{} fields, header has {}", fields.size(), ncols));
        continue;
      }
      int too_long = -1;
      for (int k = 0; k < kNumFields; ++k)
        if (int64_t(v[k].size()) > d.max_field_length) { too_long = k; break; }
      if (too_long >= 0) {
        reject(Reject::kFieldTooLong, kFieldNames[too_long],
               fmt::format("{} bytes > data.clean.max_field_length = {}", v[too_long].size(), d.max_field_length));
        continue;
      }
      int missing = -1;
      for (int k : {kUser, kTs, kItem})
        if (v[k].empty()) { missing = k; break; }
      if (missing < 0 && need_type_col && v[kType].empty()) missing = kType;
      if (missing >= 0) {
        reject(Reject::kMissingField, kFieldNames[missing], "empty or absent");
        continue;
      }
      int64_t ts;
      if (!parse_timestamp_ms(v[kTs], ts)) {
        reject(Reject::kBadTimestamp, "timestamp", fmt::format("'{}' is not unix s/ms or ISO-8601", v[kTs]));
        continue;
      }
      if (ts < min_ms || ts >= max_ms) {
        reject(Reject::kTimestampOutOfRange, "timestamp",
               fmt::format("{} outside [{}, {})", format_iso8601(ts / 1000), d.min_time, d.max_time));
        continue;
      }
      EventType type;
      if (v[kType].empty()) {
        type = *default_type;
      } else {
        auto it = type_map.find(std::string(v[kType]));
        if (it == type_map.end()) {
          reject(Reject::kUnknownEventType, "event_type",
                 fmt::format("'{}' is not view/click/cart/purchase/review nor mapped in data.event_types", v[kType]));
          continue;
        }
        type = it->second;
      }
      float price = NAN, rating = NAN;
      if (!v[kPrice].empty()) {
        double x;
        if (!parse_double(v[kPrice], x) || x < 0 || x > d.max_price) {
          reject(Reject::kBadPrice, "price", fmt::format("'{}' is not a number in [0, {}]", v[kPrice], d.max_price));
          continue;
        }
        price = float(x);
      }
      if (!v[kRating].empty()) {
        double x;
        if (!parse_double(v[kRating], x) || x < d.rating_min || x > d.rating_max) {
          reject(Reject::kBadRating, "rating",
                 fmt::format("'{}' is not a number in [{}, {}]", v[kRating], d.rating_min, d.rating_max));
          continue;
        }
        rating = float(x);
      }
      // Accepted.
      std::string_view cat = v[kCat];
      if ((cat.empty() || std::isnan(price)) && !catalogue.items.empty()) {
        auto it = catalogue.items.find(std::string(v[kItem]));
        if (it != catalogue.items.end()) {
          if (cat.empty()) cat = it->second.first;
          if (std::isnan(price)) price = it->second.second;
        }
      }
      std::string_view text = v[kReview];
      if (!text.empty() && d.mask_pii) {
        text_buf = mask_pii(text, d.min_digit_run, &pii);
        text = text_buf;
      }
      Pseudo ps = pseudo_of(v[kUser]);
      SpillFile& sf = *spills[ps.h() % uint64_t(P)];
      encode_rec(sf.buf(), ps, ts, uint8_t(type), price, rating, fi, line, seq, v[kItem], cat, text);
      sf.maybe_flush();
    }
    bytes_done_before += uint64_t(fs::file_size(files[fi]));
    bar.set(bytes_done_before);
  }
  for (auto& s : spills) s->close();
  bar.finish();
  sum.read_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sum.pii_masked = pii.email + pii.url + pii.phone + pii.digits;
  PLOG_INFO("read {} rows from {} files: {} rejected so far, {} PII spans masked", sum.rows,
            files.size(), quar.total, sum.pii_masked);
  if (blank_lines) PLOG_INFO("skipped {} blank lines", blank_lines);
  auto check_fraction = [&]() {
    if (sum.rows > 0 && double(quar.total) > d.max_reject_fraction * double(sum.rows)) {
      quar.out.commit();
      std::string reasons;
      for (auto& [k, n] : quar.counts)
        if (n) reasons += fmt::format(" {}={}", k, n);
      throw DataError(fmt::format(
          "{} of {} rows ({:.2f}%) were rejected, above data.clean.max_reject_fraction = {}:{}. "
          "See {} for every rejected row with its file, line and reason.",
          quar.total, sum.rows, 100.0 * double(quar.total) / double(sum.rows),
          d.max_reject_fraction, reasons, (out_dir / "quarantine.jsonl").string()));
    }
  };
  check_fraction();

  PLOG_INFO("prep: phase 1 done, peak RSS {:.0f} MB", peak_rss_mb());
  // ---- Phase 2: per partition order, de-dup, bots, minimum; vocab counts ---------------------
  std::unordered_map<std::string, int64_t> item_counts, cat_counts;
  int64_t max_ts = INT64_MIN;
  TextWriter reviews(out_dir / "reviews.txt", false);
  int64_t review_lines = 0;
  auto quarantine_rec = [&](Reject r, const Rec& e, std::string_view detail) {
    std::string s = "u:" + e.user.hex() + "," + std::to_string(e.ts) + "," +
                    std::string(event_type_name(EventType(e.type))) + ",";
    append_csv_field(s, e.item);
    s += ",";
    append_csv_field(s, e.cat);
    quar.add(r, file_names[e.file], e.line, "", detail, s);
  };
  Progress bar2("prep clean", uint64_t(P), "partitions", pp);
  for (int part = 0; part < P; ++part) {
    std::vector<Rec> recs = read_spill(spills[size_t(part)]->path());
    fs::remove(spills[size_t(part)]->path());
    std::sort(recs.begin(), recs.end(), [](const Rec& a, const Rec& b) {
      int c = std::memcmp(a.user.b, b.user.b, 16);
      if (c != 0) return c < 0;
      if (a.ts != b.ts) return a.ts < b.ts;
      return a.seq < b.seq;
    });
    SpillFile clean(spill_dir / fmt::format("clean_{:05d}.bin", part));
    std::vector<size_t> kept;
    for (size_t a = 0; a < recs.size();) {
      size_t b = a;
      while (b < recs.size() && recs[b].user == recs[a].user) ++b;
      kept.clear();
      size_t group_start = 0;  // index into kept of the first event with the current ts
      for (size_t i = a; i < b; ++i) {
        const Rec& e = recs[i];
        if (!kept.empty() && recs[kept.back()].ts != e.ts) group_start = kept.size();
        bool dup = false;
        for (size_t k = group_start; k < kept.size() && !dup; ++k) {
          const Rec& o = recs[kept[k]];
          dup = o.ts == e.ts && o.type == e.type && o.item == e.item && o.cat == e.cat &&
                same_bits(o.price, e.price) && same_bits(o.rating, e.rating) && o.text == e.text;
          if (dup)
            quarantine_rec(Reject::kDuplicate, e,
                           fmt::format("same as {} line {}", file_names[o.file], o.line));
        }
        if (!dup) kept.push_back(i);
      }
      if (int64_t(kept.size()) > d.max_events_per_user) {
        std::string detail = fmt::format("user has {} events > data.clean.max_events_per_user = {}",
                                         kept.size(), d.max_events_per_user);
        for (size_t i : kept) quarantine_rec(Reject::kBotUser, recs[i], detail);
      } else if (int64_t(kept.size()) < d.min_events_per_user) {
        std::string detail = fmt::format("user has {} events < data.privacy.min_events_per_user = {}",
                                         kept.size(), d.min_events_per_user);
        for (size_t i : kept) quarantine_rec(Reject::kTooFewEvents, recs[i], detail);
      } else {
        ++sum.users;
        for (size_t i : kept) {
          const Rec& e = recs[i];
          encode_rec(clean.buf(), e.user, e.ts, e.type, e.price, e.rating, e.file, e.line, e.seq,
                     e.item, e.cat, e.text);
          ++item_counts[e.item];
          if (!e.cat.empty()) ++cat_counts[e.cat];
          max_ts = std::max(max_ts, e.ts);
          if (!e.text.empty()) {
            std::string t = e.text;
            std::replace(t.begin(), t.end(), '\n', ' ');
            std::replace(t.begin(), t.end(), '\r', ' ');
            reviews.write(t);
            reviews.put('\n');
            ++review_lines;
          }
        }
        sum.accepted_events += int64_t(kept.size());
        clean.maybe_flush();
      }
      a = b;
    }
    clean.close();
    bar2.add(1);
  }
  bar2.finish();
  reviews.commit();
  sum.rejects = quar.counts;
  sum.quarantined = quar.total;
  check_fraction();
  quar.out.commit();
  if (!d.id_map_path.empty()) {
    TextWriter m(d.id_map_path, false);
    m.write("raw_user_id,pseudonym\n");
    std::vector<std::pair<std::string, std::string>> rows(id_map.begin(), id_map.end());
    std::sort(rows.begin(), rows.end());
    for (auto& [r, ps] : rows) {
      std::string l;
      append_csv_field(l, r);
      m.write(l + "," + ps + "\n");
    }
    m.commit();
    PLOG_INFO("wrote the raw-id map ({} users) to {} as configured by data.privacy.id_map_path",
              rows.size(), d.id_map_path);
  }
  if (sum.users == 0) throw DataError("no users left after cleaning; see the quarantine file " +
                                      (out_dir / "quarantine.jsonl").string());

  PLOG_INFO("prep: phase 2 done, peak RSS {:.0f} MB", peak_rss_mb());
  // ---- Phase 3: tokenizer, vocabularies, sequences, shards -----------------------------------
  tok::Tokenizer tokenizer;
  if (p.train_tokenizer && p.text_len > 0 && review_lines > 0) {
    tokenizer = tok::Tokenizer::train_from_file(out_dir / "reviews.txt", p.tokenizer);
    tokenizer.save(out_dir / "tokenizer.model");
    sum.tokenizer_sha256 = tokenizer.sha256();
    PLOG_INFO("tokenizer: vocab {} sha256 {}, peak RSS {:.0f} MB", tokenizer.vocab_size(),
              sum.tokenizer_sha256, peak_rss_mb());
  }
  auto build_vocab = [](const std::unordered_map<std::string, int64_t>& counts, int64_t min_count,
                        std::vector<std::string>& names, std::vector<int64_t>& cnt,
                        std::unordered_map<std::string, int32_t>& ids) {
    std::vector<std::pair<std::string, int64_t>> v(counts.begin(), counts.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    names = {"<pad>", "<oov>"};
    cnt = {0, 0};
    for (auto& [n, c] : v) {
      if (c >= min_count) {
        ids[n] = int32_t(names.size());
        names.push_back(n);
        cnt.push_back(c);
      } else {
        cnt[1] += c;
      }
    }
  };
  ShardContents base;
  std::unordered_map<std::string, int32_t> item_ids, cat_ids;
  build_vocab(item_counts, p.min_item_count, base.items, base.item_counts, item_ids);
  build_vocab(cat_counts, p.min_category_count, base.categories, base.category_counts, cat_ids);
  item_counts.clear();
  cat_counts.clear();
  base.event_types = {"<pad>"};
  for (auto n : kEventTypeNames) base.event_types.emplace_back(n);
  sum.items = int64_t(base.items.size());
  sum.categories = int64_t(base.categories.size());

  const int64_t window_ms = int64_t(std::llround(p.label_window_days * 86400000.0));
  int64_t cut[3];
  cut[2] = p.test_cutoff == "auto" ? max_ts + 1 - window_ms : parse_time_config("prep.test_cutoff", p.test_cutoff);
  cut[1] = p.val_cutoff == "auto" ? cut[2] - window_ms : parse_time_config("prep.val_cutoff", p.val_cutoff);
  cut[0] = p.train_cutoff == "auto" ? cut[1] - window_ms : parse_time_config("prep.train_cutoff", p.train_cutoff);
  if (!(cut[0] <= cut[1] && cut[1] <= cut[2]))
    throw ConfigError("cut-offs must satisfy prep.train_cutoff <= prep.val_cutoff <= prep.test_cutoff");
  for (int s = 0; s < 3; ++s) sum.cutoff_ms[s] = cut[s];
  PLOG_INFO("cut-offs: train {} val {} test {}, label window {} days", format_iso8601(cut[0] / 1000),
            format_iso8601(cut[1] / 1000), format_iso8601(cut[2] / 1000), p.label_window_days);

  base.str_attrs["tokenizer_sha256"] = sum.tokenizer_sha256;
  base.str_attrs["prep_config"] = p.config_yaml;
  base.int_attrs["seq_len"] = p.seq_len;
  base.int_attrs["text_len"] = p.text_len;
  base.int_attrs["label_window_ms"] = window_ms;
  base.int_attrs["num_shards"] = P;
  for (int s = 0; s < 3; ++s) base.int_attrs[std::string(kSplitNames[s]) + "_cutoff_ms"] = cut[s];

  Progress bar3("prep shards", uint64_t(P), "shards", pp);
  for (int part = 0; part < P; ++part) {
    if (part % p.world != p.rank) continue;
    std::vector<Rec> recs = read_spill(spill_dir / fmt::format("clean_{:05d}.bin", part));
    // Encode all review texts of the partition at once (multithreaded).
    std::vector<std::string> texts;
    std::vector<int64_t> text_of(recs.size(), -1);
    if (tokenizer.loaded()) {
      for (size_t i = 0; i < recs.size(); ++i)
        if (!recs[i].text.empty()) {
          text_of[i] = int64_t(texts.size());
          texts.push_back(recs[i].text);
        }
    }
    auto encoded = tokenizer.loaded() ? tokenizer.encode_batch(texts, p.threads)
                                      : std::vector<std::vector<int32_t>>{};
    ShardContents sc;
    sc.str_attrs = base.str_attrs;
    sc.int_attrs = base.int_attrs;
    sc.int_attrs["shard_index"] = part;
    sc.items = base.items;
    sc.item_counts = base.item_counts;
    sc.categories = base.categories;
    sc.category_counts = base.category_counts;
    sc.event_types = base.event_types;
    std::vector<int32_t> ei(recs.size()), ec(recs.size());
    for (size_t i = 0; i < recs.size(); ++i) {
      auto it = item_ids.find(recs[i].item);
      ei[i] = it == item_ids.end() ? kOovToken : it->second;
      auto ct = cat_ids.find(recs[i].cat);
      ec[i] = ct == cat_ids.end() ? kOovToken : ct->second;
    }
    std::vector<int32_t> tbuf;
    for (size_t a = 0; a < recs.size();) {
      size_t b = a;
      while (b < recs.size() && recs[b].user == recs[a].user) ++b;
      const int32_t uidx = int32_t(sc.user_ids.size());
      sc.user_ids.push_back(recs[a].user.hex());
      for (int s = 0; s < 3; ++s) {
        SplitArrays& A = sc.splits[s];
        // Events are sorted by ts: k = first event at/after the cut-off.
        size_t k = a;
        while (k < b && recs[k].ts < cut[s]) ++k;
        if (int64_t(k - a) < p.min_input_events) continue;
        A.user.push_back(uidx);
        size_t from = k - std::min<size_t>(k - a, size_t(p.seq_len));
        for (size_t i = from; i < k; ++i) {
          const Rec& e = recs[i];
          A.input_item.push_back(ei[i]);
          A.input_category.push_back(ec[i]);
          A.input_event.push_back(e.type);
          A.input_gap.push_back(gap_bucket(i > a ? e.ts - recs[i - 1].ts : 0, i == a));
          A.input_price.push_back(price_bucket(e.price));
          A.input_ts.push_back(e.ts);
        }
        A.input_offsets.push_back(int64_t(A.input_item.size()));
        // Text: most recent reviews before the cut-off, newest kept when over budget.
        tbuf.clear();
        if (tokenizer.loaded()) {
          for (size_t i = k; i-- > a && int(tbuf.size()) < p.text_len;) {
            if (text_of[i] < 0) continue;
            const auto& ids = encoded[size_t(text_of[i])];
            std::vector<int32_t> piece(ids.begin(), ids.end());
            piece.push_back(tok::kEosId);
            tbuf.insert(tbuf.begin(), piece.begin(), piece.end());
          }
          if (int(tbuf.size()) > p.text_len) tbuf.erase(tbuf.begin(), tbuf.end() - p.text_len);
        }
        A.text_tokens.insert(A.text_tokens.end(), tbuf.begin(), tbuf.end());
        A.text_offsets.push_back(int64_t(A.text_tokens.size()));
        // Targets within [cut, cut + window).
        std::set<int32_t> bought;
        for (size_t i = k; i < b && recs[i].ts < cut[s] + window_ms; ++i) {
          const Rec& e = recs[i];
          if (target_types[e.type]) {
            A.target_item.push_back(ei[i]);
            A.target_category.push_back(ec[i]);
            A.target_event.push_back(e.type);
            A.target_ts.push_back(e.ts);
          }
          if (EventType(e.type) == EventType::kPurchase) bought.insert(ec[i]);
        }
        A.target_offsets.push_back(int64_t(A.target_item.size()));
        A.purchase_category.insert(A.purchase_category.end(), bought.begin(), bought.end());
        A.purchase_offsets.push_back(int64_t(A.purchase_category.size()));
      }
      a = b;
    }
    for (int s = 0; s < 3; ++s) sum.users_per_split[s] += int64_t(sc.splits[s].size());
    sc.int_attrs["num_users"] = int64_t(sc.user_ids.size());
    fs::path shard = out_dir / fmt::format("shard_{:05d}.h5", part);
    write_shard(shard, sc);
    sum.shards.push_back(shard.string());
    bar3.add(1);
  }
  bar3.finish();

  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json js;
  js["rows"] = sum.rows;
  js["accepted_events"] = sum.accepted_events;
  js["quarantined"] = sum.quarantined;
  js["rejects"] = sum.rejects;
  js["blank_lines"] = blank_lines;
  js["users"] = sum.users;
  js["users_per_split"] = {{"train", sum.users_per_split[0]}, {"val", sum.users_per_split[1]},
                           {"test", sum.users_per_split[2]}};
  js["cutoff_ms"] = {{"train", cut[0]}, {"val", cut[1]}, {"test", cut[2]}};
  js["label_window_ms"] = window_ms;
  js["vocab"] = {{"items", sum.items}, {"categories", sum.categories}};
  js["pii_masked"] = {{"email", pii.email}, {"url", pii.url}, {"phone", pii.phone}, {"digits", pii.digits}};
  js["tokenizer_sha256"] = sum.tokenizer_sha256;
  js["shards"] = sum.shards;
  js["seconds"] = sum.seconds;
  js["read_seconds"] = sum.read_seconds;
  js["input_files"] = file_names;
  write_file_atomic(out_dir / "prep_summary.json", js.dump(2) + "\n");
  std::string table;
  for (auto& [k, n] : sum.rejects) table += fmt::format("\n  {:<24} {:>12}", k, n);
  PLOG_INFO("prep done in {:.1f}s: {} rows, {} events kept, {} users, {} quarantined ({:.3f}%):{}",
            sum.seconds, sum.rows, sum.accepted_events, sum.users, sum.quarantined,
            sum.rows ? 100.0 * double(sum.quarantined) / double(sum.rows) : 0.0, table);
  return sum;
}

}  // namespace portrait::data
