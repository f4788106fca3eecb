#include "data/prep.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <unordered_map>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/io.h"
#include "data/manifest.h"
#include "data/rows.h"
#include "core/rng.h"
#include "data/schema.h"
#include "data/shard.h"
#include "data/text.h"

namespace portrait::data {

namespace {
// Peak resident set so far, for the phase log lines (memory must not grow with input size).
// Hands freed heap pages back to the system between partitions, so each partition starts
// from the same footprint (glibc keeps freed memory otherwise, and fragments it).
void release_free_memory() { malloc_trim(0); }

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
using namespace row;  // the canonical fields of a row: data/rows.h

int64_t parse_time_config(const std::string& key, const std::string& v) {
  int64_t ms;
  if (!parse_timestamp_ms(v, ms))
    throw ConfigError("config key '" + key + "' = '" + v +
                      "' is not a timestamp (ISO-8601 like 2024-01-01 or unix seconds)");
  return ms;
}

// Cut-offs given in the config, and the automatic ones they fix (val = test - window, train
// = val - window), must be in order. Checked before any input is read, so a typo does not
// cost a pass over the whole input; automatic cut-offs that follow from the data's end are
// checked again once it is known.
void check_cutoff_order(const PrepParams& p) {
  if (p.protocol != "temporal") return;
  const int64_t window_ms = int64_t(std::llround(p.label_window_days * 86400000.0));
  struct Cut {
    const char* key;
    const std::string& value;
    std::optional<int64_t> ms;
    bool derived = false;
  } c[3] = {{"prep.train_cutoff", p.train_cutoff, {}},
            {"prep.val_cutoff", p.val_cutoff, {}},
            {"prep.test_cutoff", p.test_cutoff, {}}};
  for (int s = 2; s >= 0; --s) {
    if (c[s].value != "auto") {
      c[s].ms = parse_time_config(c[s].key, c[s].value);
    } else if (s < 2 && c[s + 1].ms) {
      c[s].ms = *c[s + 1].ms - window_ms;
      c[s].derived = true;
    }
  }
  auto show = [&](int s) {
    if (!c[s].derived) return fmt::format("{} = {}", c[s].key, c[s].value);
    return fmt::format("{} = auto = {} ({} - prep.label_window_days)", c[s].key,
                       format_iso8601(*c[s].ms / 1000), c[s + 1].key);
  };
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      if (c[a].ms && c[b].ms && *c[a].ms > *c[b].ms)
        throw ConfigError(fmt::format("cut-offs out of order: {} is after {}; they must satisfy "
                                      "prep.train_cutoff <= prep.val_cutoff <= prep.test_cutoff",
                                      show(a), show(b)));
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
    c.read_enum("format", d.catalogue_format, {"auto", "csv", "tsv"});
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
  s.read_enum("protocol", p.protocol, {"temporal", "leave_last_out"});
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
  if (p.target_event_types.empty())
    throw ConfigError("config key 'prep.target_event_types' is empty: list the events that count as targets, "
                      "e.g. [click, cart, purchase]");
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
  check_cutoff_order(p);
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



// HMAC-SHA256 with the key set once (EVP_MAC re-initialised with a NULL key reuses the
// prepared inner/outer pads), behind a fixed-size direct-mapped cache of recent raw ids. The
// cache only saves work, so its size bounds memory whatever the number of users (a miss is
// recomputed; rows of one user are usually close together in an export).
class Pseudonymizer {
 public:
  explicit Pseudonymizer(std::string_view key) : slots_(kSlots) {
    mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = mac_ ? EVP_MAC_CTX_new(mac_) : nullptr;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
    if (!ctx_ || !EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params))
      throw std::runtime_error("OpenSSL: cannot set up HMAC-SHA256");
  }
  ~Pseudonymizer() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }
  Pseudonymizer(const Pseudonymizer&) = delete;
  Pseudonymizer& operator=(const Pseudonymizer&) = delete;

  /// The pseudonym of `raw`; `fresh` is set when it was computed rather than cached.
  Pseudo get(std::string_view raw, bool* fresh = nullptr) {
    if (fresh) *fresh = false;
    if (last_ < kSlots && slots_[last_].used && slots_[last_].raw == raw) return slots_[last_].ps;
    const size_t i = std::hash<std::string_view>{}(raw) & (kSlots - 1);
    Slot& s = slots_[i];
    last_ = i;
    if (s.used && s.raw == raw) return s.ps;
    unsigned char md[32];
    size_t n = 0;
    if (!EVP_MAC_init(ctx_, nullptr, 0, nullptr) ||
        !EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(raw.data()), raw.size()) ||
        !EVP_MAC_final(ctx_, md, &n, sizeof md) || n != 32)
      throw std::runtime_error("OpenSSL: HMAC-SHA256 failed");
    s.raw.assign(raw);
    std::memcpy(s.ps.b, md, 16);
    s.used = true;
    if (fresh) *fresh = true;
    return s.ps;
  }

 private:
  static constexpr size_t kSlots = size_t(1) << 16;
  struct Slot {
    std::string raw;
    Pseudo ps{};
    bool used = false;
  };
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
  std::vector<Slot> slots_;
  size_t last_ = SIZE_MAX;
};

// One accepted event. The strings view into the spill file's bytes, which the caller keeps
// alive: a partition in memory costs its spill bytes plus sizeof(Ev) per event, no per-event
// heap allocations (so memory does not fragment from one partition to the next).
struct Ev {
  Pseudo user;
  int64_t ts;
  uint8_t type;
  float price, rating;  // NaN = absent
  uint32_t file;        // index into the sorted input files
  int64_t line;         // (file, line) is unique per row and orders ties as the input did
  std::string_view item, cat, text;
};

void put_raw(std::string& b, const void* p, size_t n) { b.append(static_cast<const char*>(p), n); }
template <typename T> void put(std::string& b, T v) { put_raw(b, &v, sizeof v); }
void put_str(std::string& b, std::string_view s) {
  put<uint32_t>(b, uint32_t(s.size()));
  b.append(s);
}

void encode_ev(std::string& b, const Pseudo& u, int64_t ts, uint8_t type, float price, float rating,
               uint32_t file, int64_t line, std::string_view item, std::string_view cat,
               std::string_view text) {
  put_raw(b, u.b, 16);
  put(b, ts);
  put(b, type);
  put(b, price);
  put(b, rating);
  put(b, file);
  put(b, line);
  put_str(b, item);
  put_str(b, cat);
  put_str(b, text);
}
void encode_ev(std::string& b, const Ev& e) {
  encode_ev(b, e.user, e.ts, e.type, e.price, e.rating, e.file, e.line, e.item, e.cat, e.text);
}

/// A whole work file, read with one allocation of its exact size (core's read_file grows a
/// string through istreambuf_iterator: slow, and up to twice the file in memory).
std::string read_whole(const fs::path& p) {
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot read work file " + p.string());
  std::string s;
  if (std::fseek(f, 0, SEEK_END) == 0) {
    const long n = std::ftell(f);
    std::rewind(f);
    if (n > 0) {
      s.resize(size_t(n));
      if (std::fread(s.data(), 1, size_t(n), f) != size_t(n)) {
        std::fclose(f);
        throw std::runtime_error("short read of work file " + p.string());
      }
    }
  }
  std::fclose(f);
  return s;
}

/// Number of events encoded in `data` (to reserve exactly: a doubling vector would hold up to
/// twice the partition).
size_t count_evs(const std::string& data) {
  constexpr size_t kFixed = 16 + 8 + 1 + 4 + 4 + 4 + 8;
  size_t n = 0;
  for (size_t i = 0; i < data.size(); ++n) {
    i += kFixed;
    for (int k = 0; k < 3; ++k) {
      uint32_t len;
      std::memcpy(&len, data.data() + i, 4);
      i += 4 + len;
    }
  }
  return n;
}

/// Appends the events encoded in `data` to `out` (views into `data`).
void decode_evs(const std::string& data, std::vector<Ev>& out) {
  size_t i = 0;
  auto get = [&](void* dst, size_t n) {
    std::memcpy(dst, data.data() + i, n);
    i += n;
  };
  auto gets = [&](std::string_view& s) {
    uint32_t n;
    get(&n, 4);
    s = std::string_view(data.data() + i, n);
    i += n;
  };
  while (i < data.size()) {
    Ev e;
    get(e.user.b, 16);
    get(&e.ts, 8);
    get(&e.type, 1);
    get(&e.price, 4);
    get(&e.rating, 4);
    get(&e.file, 4);
    get(&e.line, 8);
    gets(e.item);
    gets(e.cat);
    gets(e.text);
    out.push_back(e);
  }
}

/// An append-only binary file written through a buffer of `flush_bytes`.
class SpillFile {
 public:
  SpillFile(fs::path p, size_t flush_bytes) : path_(std::move(p)), flush_bytes_(flush_bytes) {
    f_ = std::fopen(path_.c_str(), "wb");
    if (!f_) throw std::runtime_error("cannot create spill file " + path_.string());
  }
  ~SpillFile() {
    if (f_) std::fclose(f_);
  }
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  std::string& buf() { return buf_; }
  void maybe_flush() {
    if (buf_.size() >= flush_bytes_) flush();
  }
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
      throw_write_error("cannot write spill file", path_, errno != 0 ? errno : EIO);
    buf_.clear();
  }
  void close() {
    flush();
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw_write_error("cannot write spill file", path_, errno != 0 ? errno : EIO);
    std::string().swap(buf_);
  }

 private:
  fs::path path_;
  size_t flush_bytes_;
  FILE* f_ = nullptr;
  std::string buf_;
};

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

/// Rejected rows of one input file (phase 1) or one partition (phase 2): a segment of
/// quarantine.jsonl, written by whichever rank handles it and concatenated in a fixed order.
/// A row's content is stored as `fields` (canonical field -> value, as OutputMasker lets it
/// out) or, when the row cannot be split into fields, as `record` (withheld, or the raw line
/// under data.privacy.quarantine_raw_lines).
struct QuarantineSegment {
  TextWriter out;
  std::map<std::string, int64_t>& counts;
  QuarantineSegment(const fs::path& p, std::map<std::string, int64_t>& c) : out(p, false), counts(c) {}
  void add(Reject r, const std::string& file, int64_t line, std::string_view field,
           std::string_view detail, const char* content_key, nlohmann::json content) {
    nlohmann::json j;
    j["file"] = file;
    j["line"] = line;
    j["reason"] = reject_name(r);
    if (!field.empty()) j["field"] = field;
    if (!detail.empty()) j["detail"] = detail;
    j[content_key] = std::move(content);
    out.write(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    out.put('\n');
    ++counts[std::string(reject_name(r))];
  }
};

/// The one way a row's values leave prep, for accepted and rejected rows alike (shards,
/// reviews.txt, quarantine.jsonl): the user id becomes its keyed pseudonym, review text is
/// PII-masked under data.privacy.mask_pii, the other mapped fields pass as they are, and
/// unmapped columns never leave. Every writer goes through here, so a rule holds for all.
class OutputMasker {
 public:
  OutputMasker(const DataParams& d, std::function<Pseudo(std::string_view)> pseudo)
      : d_(d), pseudo_(std::move(pseudo)) {}
  Pseudo user(std::string_view raw) const { return pseudo_(raw); }
  /// The review text as it may be stored; a view of `raw` or of `buf`.
  std::string_view text(std::string_view raw, std::string& buf, PiiMaskCounts* counts) const {
    if (raw.empty() || !d_.mask_pii) return raw;
    buf = mask_pii(raw, d_.min_digit_run, counts);
    return buf;
  }
  /// A rejected row's mapped fields for quarantine.jsonl.
  nlohmann::json fields(const Row& r) const {
    return row_fields_json(
        r, [&](std::string_view raw) { return "u:" + user(raw).hex(); },
        [&](std::string_view raw, std::string& buf) { return text(raw, buf, nullptr); });
  }
  /// An event rejected after phase 1: its values already came through user() and text().
  static nlohmann::json fields(const Ev& e) {
    nlohmann::json f = nlohmann::json::object();
    f[kFieldNames[kUser]] = "u:" + e.user.hex();
    f[kFieldNames[kTs]] = e.ts;
    f[kFieldNames[kType]] = event_type_name(EventType(e.type));
    f[kFieldNames[kItem]] = e.item;
    if (!e.cat.empty()) f[kFieldNames[kCat]] = e.cat;
    if (!std::isnan(e.price)) f[kFieldNames[kPrice]] = e.price;
    if (!std::isnan(e.rating)) f[kFieldNames[kRating]] = e.rating;
    if (!e.text.empty()) f[kFieldNames[kReview]] = e.text;
    return f;
  }

 private:
  const DataParams& d_;
  std::function<Pseudo(std::string_view)> pseudo_;
};

std::map<std::string, int64_t> zero_reject_counts() {
  std::map<std::string, int64_t> m;
  for (auto n : kRejectNames) m[std::string(n)] = 0;
  return m;
}

std::string resolve_key(const PrepParams& p) { return resolve_hash_key(p.data, p.hash_key); }

inline int32_t gap_bucket(int64_t gap_ms, bool first) {
  if (first) return 0;
  double s = double(std::max<int64_t>(gap_ms, 0)) / 1000.0;
  return 1 + std::min(30, int(std::floor(std::log2(1.0 + s))));
}
inline int32_t price_bucket(float price) {
  if (std::isnan(price)) return 0;
  return 1 + std::min(62, int(std::floor(4.0 * std::log2(1.0 + double(price)))));
}

size_t user_end(const std::vector<Ev>& evs, size_t a) {
  size_t b = a;
  while (b < evs.size() && evs[b].user == evs[a].user) ++b;
  return b;
}

/// Where each split's inputs end and its targets lie, for one user's events [a, b) (sorted by
/// time, ties in input order). Split s has inputs [a, end) (prep keeps the last seq_len) and
/// targets = the target-type events of [end, target_end).
///   temporal:       end = first event at or after the split's cut-off, target_end = first
///                   event at or after cut-off + label window; latest: end = target_end = b.
///   leave_last_out: test: end = the user's last target-type event, target_end = end + 1;
///                   val: the same before test's end; train: the same before val's end. A
///                   user with too few target-type events gets end = the previous split's
///                   end and no target. latest as above.
/// So every split's inputs are a prefix of the next split's, and the vocabulary, counted on
/// train inputs, never sees a held-out event under either protocol.
class SplitCutter {
 public:
  struct Cut {
    size_t end = 0, target_end = 0;
  };
  using Cuts = std::array<Cut, kNumSplits>;
  SplitCutter(bool leave_last_out, const int64_t* cut, int64_t window_ms, std::vector<uint8_t> target_types)
      : llo_(leave_last_out), window_ms_(window_ms), target_(std::move(target_types)) {
    std::copy(cut, cut + kNumSplits, cut_);
  }
  void cut(const std::vector<Ev>& evs, size_t a, size_t b, Cuts& out) const {
    out[kLatestSplit] = {b, b};
    if (llo_) {
      size_t end = b;
      for (int s = 2; s >= 0; --s) {
        size_t j = end;
        while (j > a && !target_[evs[j - 1].type]) --j;
        if (j > a) {
          out[size_t(s)] = {j - 1, j};
          end = j - 1;
        } else {
          out[size_t(s)] = {end, end};
        }
      }
      return;
    }
    for (int s = 0; s < 3; ++s) {
      size_t k = a;
      while (k < b && evs[k].ts < cut_[s]) ++k;
      size_t t = k;
      while (t < b && evs[t].ts < cut_[s] + window_ms_) ++t;
      out[size_t(s)] = {k, t};
    }
  }

 private:
  bool llo_;
  int64_t cut_[kNumSplits];
  int64_t window_ms_;
  std::vector<uint8_t> target_;
};


// Hashing that lets string_view keys find std::string entries without a copy.
struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using CountMap = std::unordered_map<std::string, int64_t, SvHash, std::equal_to<>>;
using IdOf = std::unordered_map<std::string, int32_t, SvHash, std::equal_to<>>;

void count_add(CountMap& m, std::string_view k, int64_t n) {
  auto it = m.find(k);
  if (it == m.end()) m.emplace(std::string(k), n);
  else it->second += n;
}

/// Binary name -> count table (counts files, vocab file): u64 n, then n x (u32 len, bytes, i64).
void put_table(std::string& b, const std::vector<std::pair<std::string_view, int64_t>>& rows) {
  put<uint64_t>(b, rows.size());
  for (auto& [k, v] : rows) {
    put_str(b, k);
    put(b, v);
  }
}
template <typename F> size_t get_table(const std::string& b, size_t i, F&& each) {
  uint64_t n;
  std::memcpy(&n, b.data() + i, 8);
  i += 8;
  for (uint64_t r = 0; r < n; ++r) {
    uint32_t len;
    std::memcpy(&len, b.data() + i, 4);
    i += 4;
    std::string_view k(b.data() + i, len);
    i += len;
    int64_t v;
    std::memcpy(&v, b.data() + i, 8);
    i += 8;
    each(k, v);
  }
  return i;
}
std::vector<std::pair<std::string_view, int64_t>> rows_of(const CountMap& m) {
  std::vector<std::pair<std::string_view, int64_t>> v(m.begin(), m.end());
  std::sort(v.begin(), v.end());
  return v;
}

/// Vocabulary: "<pad>", "<oov>", then names with count >= min_count by count desc, name asc;
/// rarer names add their counts to the OOV bucket.
void build_vocab(const CountMap& counts, int64_t min_count, std::vector<std::string>& names,
                 std::vector<int64_t>& cnt) {
  std::vector<std::pair<std::string_view, int64_t>> v(counts.begin(), counts.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  names = {"<pad>", "<oov>"};
  cnt = {0, 0};
  for (auto& [n, c] : v) {
    if (c >= min_count) {
      names.emplace_back(n);
      cnt.push_back(c);
    } else {
      cnt[1] += c;
    }
  }
}

/// Appends a file to `w` in 1 MiB pieces (missing file = nothing).
void append_file(TextWriter& w, const fs::path& src) {
  FILE* f = std::fopen(src.c_str(), "rb");
  if (!f) return;
  std::string buf(1 << 20, '\0');
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) w.write(std::string_view(buf.data(), n));
  std::fclose(f);
}

/// The tokenizer's training sample, kept bounded while streaming: the `k` sentences with the
/// smallest seeded hash of their index (Tokenizer::train's own rule, so the model is the one
/// training on the whole corpus would give), in corpus order.
class SentenceSample {
 public:
  SentenceSample(int64_t k, uint64_t seed, size_t max_len) : k_(k), seed_(seed), max_len_(max_len) {}
  void add(std::string_view s) {
    if (s.empty()) return;
    const uint64_t key = mix64(seed_ ^ mix64(uint64_t(n_)));
    const size_t idx = size_t(n_++);
    if (k_ <= 0 || int64_t(heap_.size()) < k_) {
      heap_.push_back({key, idx, std::string(s.substr(0, max_len_))});
      std::push_heap(heap_.begin(), heap_.end());
    } else if (key < heap_.front().key) {
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.back() = {key, idx, std::string(s.substr(0, max_len_))};
      std::push_heap(heap_.begin(), heap_.end());
    }
  }
  int64_t seen() const { return n_; }
  std::vector<std::string> take() {
    std::sort(heap_.begin(), heap_.end(), [](auto& a, auto& b) { return a.idx < b.idx; });
    std::vector<std::string> out;
    out.reserve(heap_.size());
    for (auto& e : heap_) out.push_back(std::move(e.text));
    heap_.clear();
    return out;
  }

 private:
  struct E {
    uint64_t key;
    size_t idx;
    std::string text;
    bool operator<(const E& o) const { return key < o.key; }
  };
  int64_t k_;
  uint64_t seed_;
  size_t max_len_;
  int64_t n_ = 0;
  std::vector<E> heap_;
};

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(read_file(p)); }

}  // namespace

PrepSummary run_prep(const PrepParams& p) {
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  const DataParams& d = p.data;
  const int rank = p.rank, world = p.world;
  if (world < 1 || rank < 0 || rank >= world)
    throw ConfigError(fmt::format("prep: rank {} is not in [0, world size {})", rank, world));
  if (world > 1 && (!p.barrier || !p.broadcast))
    throw std::logic_error("run_prep: world size > 1 needs PrepParams::barrier and ::broadcast");
  check_cutoff_order(p);  // PrepParams may come from code, not only from the config
  auto barrier = [&](const std::string& name) {
    if (world > 1) p.barrier(name);
  };
  const std::string key = resolve_key(p);
  const fs::path out_dir(p.output_dir);
  fs::create_directories(out_dir);
  // Rank 0 holds the directory for the whole run (the other ranks are its helpers): a second
  // prep into the same directory would interleave its shards with ours.
  std::optional<DirLock> lock;
  if (rank == 0) {
    lock.emplace(out_dir, "prep.output_dir");
    // Unseal before anything is replaced: from here until the new manifest is written, the
    // directory holds no finished run, so a kill leaves nothing a reader accepts.
    remove_prep_manifest(out_dir);
  }
  // Work directory shared by the ranks (spills, per-rank statistics, output segments).
  // Named like every temporary (".tmp.<pid>@<host>"), so the next run in this directory removes
  // it when this process was killed before its cleanup ran.
  std::string work_name = fmt::format(".prep.{}{}", std::chrono::steady_clock::now().time_since_epoch().count(),
                                      temp_suffix());
  if (rank == 0) {
    sweep_stale_temps(out_dir);
    fs::remove_all(out_dir / work_name);
    fs::create_directories(out_dir / work_name);
  }
  if (world > 1) work_name = p.broadcast("prep-work-dir", work_name);
  const fs::path work = out_dir / work_name;
  if (!fs::is_directory(work))
    throw ConfigError("prep.output_dir '" + out_dir.string() + "' is not shared: rank " + std::to_string(rank) +
                      " cannot see rank 0's work directory " + work.string() +
                      ". Under torchrun every rank must see prep.output_dir (a shared file system).");
  if (rank == 0)
    for (auto& e : fs::directory_iterator(out_dir))
      if (e.is_directory() && e.path().filename().string().rfind(".prep.", 0) == 0 && e.path() != work)
        PLOG_WARN("{} is left from an interrupted prep run (safe to delete when no prep is running)",
                  e.path().string());
  struct Cleanup {
    fs::path d;
    bool own;
    ~Cleanup() {
      std::error_code ec;
      if (own) fs::remove_all(d, ec);
    }
  } cleanup{work, rank == 0};
  auto wpath = [&](const char* stem, int64_t a, const char* ext) {
    return work / fmt::format("{}_{:05d}{}", stem, a, ext);
  };
  auto wpath2 = [&](const char* stem, int64_t a, int64_t b) {
    return work / fmt::format("{}_{:05d}_{:05d}.bin", stem, a, b);
  };
  const bool mine_all = world == 1;
  auto mine = [&](int part) { return mine_all || part % world == rank; };

  const RowRules rules(d);  // the column mapping and time bounds of every input row (data/rows.h)
  const auto files = expand_inputs(p.input);
  if (files.empty()) throw DataError("prep.input matched no files");
  {
    std::vector<NamedInput> inputs;
    for (auto& f : files) inputs.push_back({"prep.input", f});
    if (!p.catalogue.empty()) inputs.push_back({"prep.catalogue", p.catalogue});
    for (const char* name : {"quarantine.jsonl", "prep_summary.json", "reviews.txt", "tokenizer.model",
                             "tokenizer.model.sha256", kManifestFile})
      check_output_not_input(out_dir / name, std::string("prep.output_dir's ") + name, inputs);
    if (!d.id_map_path.empty()) check_output_not_input(d.id_map_path, "data.privacy.id_map_path", inputs);
    for (auto& f : files)
      if (f.filename().string().rfind("shard_", 0) == 0 && f.extension() == ".h5")
        check_output_not_input(out_dir / f.filename(), "prep.output_dir's shards", inputs);
  }
  std::vector<std::string> file_names;
  std::vector<uint64_t> file_bytes;
  for (auto& f : files) {
    file_names.push_back(f.string());
    file_bytes.push_back(uint64_t(fs::file_size(f)));
  }

  PrepSummary sum;
  ProgressParams pp;
  pp.enabled = p.progress;

  // ---- Phase 1 (this rank's input files): read, validate, mask, pseudonymize, spill ---------
  // gzip inputs expand about 5x: size partitions by the expected plain bytes.
  uint64_t plain_bytes = 0;
  for (size_t i = 0; i < files.size(); ++i)
    plain_bytes += file_bytes[i] * (files[i].extension() == ".gz" ? 5 : 1);
  const int P = p.partitions > 0
                    ? p.partitions
                    : int(std::clamp<uint64_t>((plain_bytes + uint64_t(p.partition_bytes) - 1) /
                                                   uint64_t(p.partition_bytes),
                                               1, 65536));
  // Input files go to ranks by size (largest first to the least loaded rank): deterministic.
  std::vector<int> owner(files.size(), 0);
  {
    std::vector<size_t> ord(files.size());
    std::iota(ord.begin(), ord.end(), size_t{0});
    std::stable_sort(ord.begin(), ord.end(), [&](size_t a, size_t b) { return file_bytes[a] > file_bytes[b]; });
    std::vector<uint64_t> load(size_t(world), 0);
    for (size_t i : ord) {
      int r = int(std::min_element(load.begin(), load.end()) - load.begin());
      owner[i] = r;
      load[size_t(r)] += file_bytes[i];
    }
  }
  uint64_t my_bytes = 0;
  for (size_t i = 0; i < files.size(); ++i)
    if (owner[i] == rank) my_bytes += file_bytes[i];
  PLOG_INFO("prep: {} partitions ({}), rank {} of {}", P,
            p.partitions > 0 ? "prep.partitions" : "auto from input size", rank, world);
  const bool want_id_map = !d.id_map_path.empty();
  std::map<std::string, int64_t> rejects1 = zero_reject_counts();
  PiiMaskCounts pii;
  int64_t my_rows = 0, my_blank = 0;
  {
    Catalogue catalogue = load_catalogue(p.catalogue, d);
    // Spill buffers share a fixed budget (8 MiB), so their memory does not grow with the
    // number of partitions, i.e. with the input.
    const size_t flush_bytes = std::max<size_t>((size_t(8) << 20) / size_t(P), 64 << 10);
    std::vector<std::unique_ptr<SpillFile>> spills, id_spills;
    for (int i = 0; i < P; ++i) {
      spills.push_back(std::make_unique<SpillFile>(wpath2("raw", i, rank), flush_bytes));
      if (want_id_map)
        id_spills.push_back(std::make_unique<SpillFile>(wpath2("ids", i, rank), flush_bytes / 4));
    }
    Progress bar("prep read", my_bytes, "B", pp);
    Pseudonymizer pz(key);
    auto pseudo_of = [&](std::string_view raw) -> Pseudo {
      bool fresh = false;
      Pseudo ps = pz.get(raw, &fresh);
      if (fresh && want_id_map) {
        SpillFile& s = *id_spills[ps.h() % uint64_t(P)];
        put_str(s.buf(), raw);
        put_raw(s.buf(), ps.b, 16);
        s.maybe_flush();
      }
      return ps;
    };
    const OutputMasker masker(d, pseudo_of);
    std::set<int> warned_absent;  // optional fields already warned about (once per run)

    Row row;
    std::string text_buf;
    uint64_t bytes_done_before = 0;

    for (uint32_t fi = 0; fi < files.size(); ++fi) {
      if (owner[fi] != rank) continue;
      const std::string& fname = file_names[fi];
      QuarantineSegment quar(wpath("q1", fi, ".jsonl"), rejects1);
      RowReader rr(files[fi], fname, rules, &warned_absent);
      while (rr.next(row)) {
        ++my_rows;
        if ((my_rows & 0xffff) == 0) bar.set(bytes_done_before + uint64_t(rr.bytes_read()));
        if (!row.accepted) {
          // Only a row split into its fields can be stored: with the fields unknown, so is
          // the user id, and the row could not be pseudonymized or masked.
          if (row.have_fields) {
            quar.add(row.reason, fname, row.line, row.field, row.detail, "fields", masker.fields(row));
          } else if (d.quarantine_raw_lines) {
            quar.add(row.reason, fname, row.line, row.field, row.detail, "record", std::string(row.record));
          } else {
            quar.add(row.reason, fname, row.line, row.field, row.detail, "record",
                     "<withheld: the row could not be split into its fields, so its user id could not be "
                     "pseudonymized; set data.privacy.quarantine_raw_lines=true to keep raw rows>");
          }
          continue;
        }
        // Accepted.
        const std::string_view* v = row.v;
        float price = row.price;
        std::string_view cat = v[kCat];
        if ((cat.empty() || std::isnan(price)) && !catalogue.items.empty()) {
          auto it = catalogue.items.find(std::string(v[kItem]));
          if (it != catalogue.items.end()) {
            if (cat.empty()) cat = it->second.first;
            if (std::isnan(price)) price = it->second.second;
          }
        }
        const std::string_view text = masker.text(v[kReview], text_buf, &pii);
        const Pseudo ps = masker.user(v[kUser]);
        SpillFile& sf = *spills[ps.h() % uint64_t(P)];
        encode_ev(sf.buf(), ps, row.ts_ms, uint8_t(row.type), price, row.rating, fi, row.line, v[kItem], cat, text);
        sf.maybe_flush();
      }
      rr.finish();
      my_blank += rr.blank_lines();
      quar.out.commit();
      bytes_done_before += file_bytes[fi];
      bar.set(bytes_done_before);
    }
    for (auto& s : spills) s->close();
    for (auto& s : id_spills) s->close();
    bar.finish();
  }
  release_free_memory();
  const double my_read_seconds = since(t0);
  {
    nlohmann::json st;
    st["rows"] = my_rows;
    st["blank_lines"] = my_blank;
    st["rejects"] = rejects1;
    st["pii"] = {pii.email, pii.url, pii.phone, pii.digits};
    st["read_seconds"] = my_read_seconds;
    write_file_atomic(wpath("stats1", rank, ".json"), st.dump());
  }
  barrier("prep-read");
  // Every rank sums the same files, so every rank takes the same decisions below.
  std::map<std::string, int64_t> rejects = zero_reject_counts();
  int64_t blank_lines = 0;
  int64_t pii_kind[4] = {0, 0, 0, 0};
  for (int r = 0; r < world; ++r) {
    auto st = read_json(wpath("stats1", r, ".json"));
    sum.rows += st["rows"].get<int64_t>();
    blank_lines += st["blank_lines"].get<int64_t>();
    for (auto& [k, n] : st["rejects"].items()) rejects[k] += n.get<int64_t>();
    for (int k = 0; k < 4; ++k) pii_kind[k] += st["pii"][size_t(k)].get<int64_t>();
    sum.read_seconds = std::max(sum.read_seconds, st["read_seconds"].get<double>());
  }
  sum.pii_masked = pii_kind[0] + pii_kind[1] + pii_kind[2] + pii_kind[3];
  auto total_rejects = [&] {
    int64_t n = 0;
    for (auto& [k, c] : rejects) n += c;
    return n;
  };
  PLOG_INFO("read {} rows from {} files: {} rejected so far, {} PII spans masked, peak RSS {:.0f} MB",
            sum.rows, files.size(), total_rejects(), sum.pii_masked, peak_rss_mb());
  if (blank_lines) PLOG_INFO("skipped {} blank lines", blank_lines);

  // quarantine.jsonl = phase-1 segments in input-file order, then phase-2 segments in
  // partition order: the same bytes whatever the number of ranks.
  auto assemble_quarantine = [&](bool with_phase2) {
    TextWriter q(out_dir / "quarantine.jsonl", false);
    for (size_t fi = 0; fi < files.size(); ++fi) append_file(q, wpath("q1", int64_t(fi), ".jsonl"));
    if (with_phase2)
      for (int part = 0; part < P; ++part) append_file(q, wpath("q2", part, ".jsonl"));
    q.commit();
  };
  auto abort_run = [&](bool with_phase2, const std::string& msg) {
    barrier("prep-abort");  // every rank has read the statistics before rank 0 cleans up
    if (rank == 0) assemble_quarantine(with_phase2);
    throw DataError(msg);
  };
  auto check_fraction = [&](bool with_phase2) {
    const int64_t q = total_rejects();
    if (sum.rows > 0 && double(q) > d.max_reject_fraction * double(sum.rows)) {
      std::string reasons;
      for (auto& [k, n] : rejects)
        if (n) reasons += fmt::format(" {}={}", k, n);
      abort_run(with_phase2,
                fmt::format("{} of {} rows ({:.2f}%) were rejected, above data.clean.max_reject_fraction "
                            "= {}:{}. See {} for every rejected row with its file, line and reason.",
                            q, sum.rows, 100.0 * double(q) / double(sum.rows), d.max_reject_fraction,
                            reasons, (out_dir / "quarantine.jsonl").string()));
    }
  };
  check_fraction(false);

  // ---- Phase 2 (this rank's partitions): order, de-dup, bots, minimum ----------------------
  std::map<std::string, int64_t> rejects2 = zero_reject_counts();
  {
    int64_t my_users = 0, my_events = 0, my_max_ts = INT64_MIN;
    std::vector<int64_t> my_types(kNumEventTypes + 1, 0);
    Progress bar2("prep clean", uint64_t((P - rank + world - 1) / world), "partitions", pp);
    std::vector<std::string> bufs(static_cast<size_t>(world));
    std::vector<Ev> evs;
    std::vector<size_t> kept;
    for (int part = 0; part < P; ++part) {
      if (!mine(part)) continue;
      std::vector<Ev>().swap(evs);
      size_t n = 0;
      for (int r = 0; r < world; ++r) {
        bufs[size_t(r)] = read_whole(wpath2("raw", part, r));
        fs::remove(wpath2("raw", part, r));
        n += count_evs(bufs[size_t(r)]);
      }
      evs.reserve(n);
      for (int r = 0; r < world; ++r) decode_evs(bufs[size_t(r)], evs);
      std::sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
        int c = std::memcmp(a.user.b, b.user.b, 16);
        if (c != 0) return c < 0;
        if (a.ts != b.ts) return a.ts < b.ts;
        if (a.file != b.file) return a.file < b.file;
        return a.line < b.line;
      });
      QuarantineSegment quar(wpath("q2", part, ".jsonl"), rejects2);
      auto quarantine_ev = [&](Reject r, const Ev& e, std::string_view detail) {
        quar.add(r, file_names[e.file], e.line, "", detail, "fields", OutputMasker::fields(e));
      };
      SpillFile clean(wpath("clean", part, ".bin"), 1 << 20);
      for (size_t a = 0; a < evs.size();) {
        size_t b = a;
        while (b < evs.size() && evs[b].user == evs[a].user) ++b;
        kept.clear();
        size_t group_start = 0;  // index into kept of the first event with the current ts
        for (size_t i = a; i < b; ++i) {
          const Ev& e = evs[i];
          if (!kept.empty() && evs[kept.back()].ts != e.ts) group_start = kept.size();
          bool dup = false;
          for (size_t k = group_start; k < kept.size() && !dup; ++k) {
            const Ev& o = evs[kept[k]];
            dup = o.ts == e.ts && o.type == e.type && o.item == e.item && o.cat == e.cat &&
                  same_bits(o.price, e.price) && same_bits(o.rating, e.rating) && o.text == e.text;
            if (dup)
              quarantine_ev(Reject::kDuplicate, e,
                            fmt::format("same as {} line {}", file_names[o.file], o.line));
          }
          if (!dup) kept.push_back(i);
        }
        if (int64_t(kept.size()) > d.max_events_per_user) {
          std::string detail = fmt::format("user has {} events > data.clean.max_events_per_user = {}",
                                           kept.size(), d.max_events_per_user);
          for (size_t i : kept) quarantine_ev(Reject::kBotUser, evs[i], detail);
        } else if (int64_t(kept.size()) < d.min_events_per_user) {
          std::string detail = fmt::format("user has {} events < data.privacy.min_events_per_user = {}",
                                           kept.size(), d.min_events_per_user);
          for (size_t i : kept) quarantine_ev(Reject::kTooFewEvents, evs[i], detail);
        } else {
          ++my_users;
          for (size_t i : kept) {
            encode_ev(clean.buf(), evs[i]);
            my_max_ts = std::max(my_max_ts, evs[i].ts);
            ++my_types[evs[i].type];
          }
          my_events += int64_t(kept.size());
          clean.maybe_flush();
        }
        a = b;
      }
      clean.close();
      quar.out.commit();
      if (want_id_map) {
        // This partition's raw ids, sorted and unique (the bounded pseudonym cache may have
        // emitted an id more than once).
        std::vector<std::pair<std::string_view, Pseudo>> ids;
        for (int r = 0; r < world; ++r) {
          bufs[size_t(r)] = read_whole(wpath2("ids", part, r));
          fs::remove(wpath2("ids", part, r));
          const std::string& b = bufs[size_t(r)];
          for (size_t i = 0; i < b.size();) {
            uint32_t n;
            std::memcpy(&n, b.data() + i, 4);
            std::pair<std::string_view, Pseudo> e{std::string_view(b.data() + i + 4, n), {}};
            std::memcpy(e.second.b, b.data() + i + 4 + n, 16);
            i += 4 + n + 16;
            ids.push_back(e);
          }
        }
        std::sort(ids.begin(), ids.end(), [](auto& x, auto& y) { return x.first < y.first; });
        ids.erase(std::unique(ids.begin(), ids.end(), [](auto& x, auto& y) { return x.first == y.first; }),
                  ids.end());
        TextWriter m(wpath("ids", part, ".csv"), false);
        std::string l;
        for (auto& [raw, ps] : ids) {
          l.clear();
          append_csv_field(l, raw);
          m.write(l + "," + ps.hex() + "\n");
        }
        m.commit();
      }
      for (auto& b : bufs) std::string().swap(b);
      std::vector<Ev>().swap(evs);
      release_free_memory();
      bar2.add(1);
    }
    std::vector<Ev>().swap(evs);
    bar2.finish();
    nlohmann::json st;
    st["users"] = my_users;
    st["events"] = my_events;
    st["max_ts"] = my_max_ts;
    st["types"] = my_types;
    st["rejects"] = rejects2;
    write_file_atomic(wpath("stats2", rank, ".json"), st.dump());
  }
  barrier("prep-clean");
  int64_t max_ts = INT64_MIN;
  std::vector<int64_t> type_counts(kNumEventTypes + 1, 0);
  for (int r = 0; r < world; ++r) {
    auto st = read_json(wpath("stats2", r, ".json"));
    sum.users += st["users"].get<int64_t>();
    sum.accepted_events += st["events"].get<int64_t>();
    max_ts = std::max(max_ts, st["max_ts"].get<int64_t>());
    for (size_t t = 0; t < type_counts.size(); ++t) type_counts[t] += st["types"][t].get<int64_t>();
    for (auto& [k, n] : st["rejects"].items()) rejects[k] += n.get<int64_t>();
  }
  sum.rejects = rejects;
  sum.quarantined = total_rejects();
  check_fraction(true);
  if (sum.users == 0)
    abort_run(true, "no users left after cleaning; see the quarantine file " +
                        (out_dir / "quarantine.jsonl").string());
  PLOG_INFO("prep: phase 2 done ({} users, {} events), peak RSS {:.0f} MB", sum.users,
            sum.accepted_events, peak_rss_mb());

  // A target type that never occurs leaves every split without targets and the dense loss
  // without positives: say so now, before anything is written.
  std::vector<uint8_t> target_types(kNumEventTypes + 1, 0);
  for (auto& t : p.target_event_types) target_types[size_t(*canonical_event_type(t))] = 1;
  {
    int64_t n_targets = 0;
    std::string present;
    for (int t = 1; t <= kNumEventTypes; ++t) {
      if (target_types[size_t(t)]) n_targets += type_counts[size_t(t)];
      if (type_counts[size_t(t)] > 0)
        present += fmt::format("{}{} {}", present.empty() ? "" : ", ", event_type_name(EventType(t)),
                               type_counts[size_t(t)]);
    }
    if (n_targets == 0)
      PLOG_WARN(
          "prep.target_event_types = [{}] matches no event of the cleaned data (its events: {}): the splits get "
          "no targets and training no positives. Add the types your data has, e.g. "
          "prep.target_event_types=[{}]",
          fmt::join(p.target_event_types, ", "), present.empty() ? "none" : present,
          present.substr(0, present.find(' ')));
  }

  // ---- Cut-offs --------------------------------------------------------------------------
  const int64_t window_ms = int64_t(std::llround(p.label_window_days * 86400000.0));
  int64_t cut[kNumSplits];
  cut[kLatestSplit] = max_ts + 1;
  if (p.protocol == "temporal") {
    cut[2] = p.test_cutoff == "auto" ? max_ts + 1 - window_ms : parse_time_config("prep.test_cutoff", p.test_cutoff);
    cut[1] = p.val_cutoff == "auto" ? cut[2] - window_ms : parse_time_config("prep.val_cutoff", p.val_cutoff);
    cut[0] = p.train_cutoff == "auto" ? cut[1] - window_ms : parse_time_config("prep.train_cutoff", p.train_cutoff);
    // Only reachable through an automatic cut-off that follows from the data's end (the
    // others were checked before reading); say which values came out.
    if (!(cut[0] <= cut[1] && cut[1] <= cut[2]))
      throw ConfigError(fmt::format(
          "cut-offs must satisfy prep.train_cutoff <= prep.val_cutoff <= prep.test_cutoff; with the data's last "
          "event at {} they are train {} ({}), val {} ({}), test {} ({})",
          format_iso8601(max_ts / 1000), format_iso8601(cut[0] / 1000), p.train_cutoff,
          format_iso8601(cut[1] / 1000), p.val_cutoff, format_iso8601(cut[2] / 1000), p.test_cutoff));
    PLOG_INFO("cut-offs: train {} val {} test {}, label window {} days", format_iso8601(cut[0] / 1000),
              format_iso8601(cut[1] / 1000), format_iso8601(cut[2] / 1000), p.label_window_days);
  } else {
    // Per-user cuts; the end of the log is every split's reference time (recency in reports).
    for (int s = 0; s < 3; ++s) cut[s] = max_ts + 1;
    PLOG_INFO("protocol leave_last_out: per user, test target = the last of [{}] events, val = the one "
              "before, train = the one before that",
              fmt::join(p.target_event_types, ", "));
  }
  for (int s = 0; s < 3; ++s) sum.cutoff_ms[s] = cut[s];
  const SplitCutter cutter(p.protocol == "leave_last_out", cut, window_ms, target_types);

  // ---- Phase 3a: vocabulary counts and tokenizer text, from training inputs only ----------
  // Only the train split's inputs count (temporal: events strictly before the train cut-off;
  // leave_last_out: events before each user's train target): item/category frequencies (the
  // popularity baseline, logQ correction) and the tokenizer's corpus never see a label,
  // validation or test event. An item first seen later is out of vocabulary.
  {
    CountMap item_counts, cat_counts;
    std::vector<Ev> evs;
    for (int part = 0; part < P; ++part) {
      if (!mine(part)) continue;
      const std::string data = read_whole(wpath("clean", part, ".bin"));
      std::vector<Ev>().swap(evs);
      evs.reserve(count_evs(data));
      decode_evs(data, evs);
      TextWriter rv(wpath("reviews", part, ".txt"), false);
      std::string t;
      SplitCutter::Cuts cuts;
      for (size_t a = 0, b = 0; a < evs.size(); a = b) {
        b = user_end(evs, a);
        cutter.cut(evs, a, b, cuts);
        for (size_t i = a; i < cuts[0].end; ++i) {
          const Ev& e = evs[i];
          count_add(item_counts, e.item, 1);
          if (!e.cat.empty()) count_add(cat_counts, e.cat, 1);
          if (!e.text.empty()) {
            t.assign(e.text);
            std::replace(t.begin(), t.end(), '\n', ' ');
            std::replace(t.begin(), t.end(), '\r', ' ');
            t.push_back('\n');
            rv.write(t);
          }
        }
      }
      rv.commit();
      std::vector<Ev>().swap(evs);
      release_free_memory();
    }
    std::string b;
    put_table(b, rows_of(item_counts));
    put_table(b, rows_of(cat_counts));
    write_file_atomic(wpath("counts", rank, ".bin"), b);
  }
  barrier("prep-counts");
  if (rank == 0) {
    CountMap item_counts, cat_counts;
    for (int r = 0; r < world; ++r) {
      const std::string b = read_whole(wpath("counts", r, ".bin"));
      size_t i = get_table(b, 0, [&](std::string_view k, int64_t v) { count_add(item_counts, k, v); });
      get_table(b, i, [&](std::string_view k, int64_t v) { count_add(cat_counts, k, v); });
    }
    std::vector<std::string> names;
    std::vector<int64_t> cnt;
    std::string vb;
    auto put_vocab = [&](const CountMap& m, int64_t min_count) {
      build_vocab(m, min_count, names, cnt);
      std::vector<std::pair<std::string_view, int64_t>> rows;
      for (size_t i = 0; i < names.size(); ++i) rows.emplace_back(names[i], cnt[i]);
      put_table(vb, rows);
    };
    put_vocab(item_counts, p.min_item_count);
    put_vocab(cat_counts, p.min_category_count);
    // reviews.txt (the tokenizer corpus) in partition order; the training sample stays bounded.
    SentenceSample sample(p.tokenizer.max_sentences, p.tokenizer.seed, size_t(p.tokenizer.max_sentence_length));
    {
      TextWriter reviews(out_dir / "reviews.txt", false);
      for (int part = 0; part < P; ++part) {
        const std::string seg = read_whole(wpath("reviews", part, ".txt"));
        reviews.write(seg);
        for (size_t a = 0; a < seg.size();) {
          size_t e = seg.find('\n', a);
          if (e == std::string::npos) e = seg.size();
          sample.add(std::string_view(seg).substr(a, e - a));
          a = e + 1;
        }
      }
      reviews.commit();
    }
    std::string sha;
    if (p.train_tokenizer && p.text_len > 0 && sample.seen() > 0) {
      const int64_t seen = sample.seen();
      tok::Tokenizer t = tok::Tokenizer::train(sample.take(), p.tokenizer);
      t.save(out_dir / "tokenizer.model");
      sha = t.sha256();
      PLOG_INFO("tokenizer: vocab {} from {} review lines before the train cut-off, sha256 {}, "
                "peak RSS {:.0f} MB", t.vocab_size(), seen, sha, peak_rss_mb());
    }
    put_str(vb, sha);
    write_file_atomic(work / "vocab.bin", vb);
  }
  barrier("prep-vocab");

  ShardContents base;
  IdOf item_ids, cat_ids;
  tok::Tokenizer tokenizer;
  {
    const std::string vb = read_whole(work / "vocab.bin");
    size_t i = get_table(vb, 0, [&](std::string_view k, int64_t v) {
      if (base.items.size() >= 2) item_ids.emplace(std::string(k), int32_t(base.items.size()));
      base.items.emplace_back(k);
      base.item_counts.push_back(v);
    });
    i = get_table(vb, i, [&](std::string_view k, int64_t v) {
      if (base.categories.size() >= 2) cat_ids.emplace(std::string(k), int32_t(base.categories.size()));
      base.categories.emplace_back(k);
      base.category_counts.push_back(v);
    });
    uint32_t n;
    std::memcpy(&n, vb.data() + i, 4);
    sum.tokenizer_sha256.assign(vb.data() + i + 4, n);
  }
  if (!sum.tokenizer_sha256.empty()) {
    tokenizer = tok::Tokenizer::load(out_dir / "tokenizer.model");
    if (tokenizer.sha256() != sum.tokenizer_sha256)
      throw DataError("tokenizer.model in " + out_dir.string() + " changed while prep was running");
  }
  base.event_types = {"<pad>"};
  for (auto n : kEventTypeNames) base.event_types.emplace_back(n);
  sum.items = int64_t(base.items.size());
  sum.categories = int64_t(base.categories.size());
  base.str_attrs["tokenizer_sha256"] = sum.tokenizer_sha256;
  base.str_attrs["prep_config"] = p.config_yaml;
  base.int_attrs["seq_len"] = p.seq_len;
  base.int_attrs["text_len"] = p.text_len;
  base.int_attrs["label_window_ms"] = window_ms;
  base.int_attrs["num_shards"] = P;
  const std::string vocab_fp = vocab_fingerprint(base.items, base.categories, base.event_types, sum.tokenizer_sha256);
  base.str_attrs["vocab_fingerprint"] = vocab_fp;
  {
    // Everything that decides the shards' bytes, and nothing that does not (no time, pid or
    // world size): an identical rerun gets the same id and the same bytes.
    std::string what = "portrait-prep-run-1\n" + p.config_yaml + "\n" + std::to_string(P) + "\n" + vocab_fp + "\n" +
                       std::to_string(p.seq_len) + "," + std::to_string(p.text_len) + "," + p.protocol + "\n";
    for (size_t i = 0; i < files.size(); ++i) what += file_names[i] + "\t" + std::to_string(file_bytes[i]) + "\n";
    for (int s = 0; s < kNumSplits; ++s) what += std::to_string(cut[s]) + ",";
    base.str_attrs["prep_run_id"] = sha256_hex(what).substr(0, 32);
  }
  for (int s = 0; s < kNumSplits; ++s) base.int_attrs[std::string(kSplitNames[s]) + "_cutoff_ms"] = cut[s];
  base.str_attrs["protocol"] = p.protocol;
  {
    std::string names;
    for (int t = 1; t <= kNumEventTypes; ++t)
      if (target_types[size_t(t)]) names += (names.empty() ? "" : ",") + std::string(event_type_name(EventType(t)));
    base.str_attrs["target_event_types"] = names;
  }

  // ---- Phase 3b (this rank's partitions): sequences, labels, shards -----------------------
  {
    int64_t my_split_users[kNumSplits] = {0, 0, 0, 0};
    int64_t shards_written = 0;
    Progress bar3("prep shards", uint64_t((P - rank + world - 1) / world), "shards", pp);
    std::vector<Ev> evs;
    for (int part = 0; part < P; ++part) {
      if (!mine(part)) continue;
      const std::string data = read_whole(wpath("clean", part, ".bin"));
      fs::remove(wpath("clean", part, ".bin"));
      std::vector<Ev>().swap(evs);
      evs.reserve(count_evs(data));
      decode_evs(data, evs);
      // Encode all review texts of the partition at once (multithreaded).
      std::vector<std::string> texts;
      std::vector<int64_t> text_of(evs.size(), -1);
      if (tokenizer.loaded()) {
        for (size_t i = 0; i < evs.size(); ++i)
          if (!evs[i].text.empty()) {
            text_of[i] = int64_t(texts.size());
            texts.emplace_back(evs[i].text);
          }
      }
      auto encoded = tokenizer.loaded() ? tokenizer.encode_batch(texts, p.threads)
                                        : std::vector<std::vector<int32_t>>{};
      std::vector<std::string>().swap(texts);
      ShardContents sc;  // header: attributes, vocabularies, user ids; splits written one by one
      sc.str_attrs = base.str_attrs;
      sc.int_attrs = base.int_attrs;
      sc.int_attrs["shard_index"] = part;
      sc.items = base.items;
      sc.item_counts = base.item_counts;
      sc.categories = base.categories;
      sc.category_counts = base.category_counts;
      sc.event_types = base.event_types;
      std::vector<int32_t> ei(evs.size()), ec(evs.size());
      for (size_t i = 0; i < evs.size(); ++i) {
        auto it = item_ids.find(evs[i].item);
        ei[i] = it == item_ids.end() ? kOovToken : it->second;
        auto ct = cat_ids.find(evs[i].cat);
        ec[i] = ct == cat_ids.end() ? kOovToken : ct->second;
      }
      std::vector<size_t> first;  // first event of each user; first.back() = end
      for (size_t a = 0; a < evs.size();) {
        size_t b = a;
        while (b < evs.size() && evs[b].user == evs[a].user) ++b;
        first.push_back(a);
        sc.user_ids.push_back(evs[a].user.hex());
        a = b;
      }
      first.push_back(evs.size());
      sc.int_attrs["num_users"] = int64_t(sc.user_ids.size());
      ShardWriter writer(out_dir / fmt::format("shard_{:05d}.h5", part), sc);
      sc = ShardContents{};
      std::vector<int32_t> tbuf;
      std::vector<SplitCutter::Cuts> user_cuts(first.size() - 1);
      for (size_t u = 0; u + 1 < first.size(); ++u) cutter.cut(evs, first[u], first[u + 1], user_cuts[u]);
      for (int s = 0; s < kNumSplits; ++s) {
        // One split at a time, sized exactly: the shard's memory is one split's arrays.
        size_t n_rows = 0, n_in = 0, n_tgt = 0;
        for (size_t u = 0; u + 1 < first.size(); ++u) {
          const size_t a = first[u], k = user_cuts[u][size_t(s)].end;
          if (int64_t(k - a) < p.min_input_events) continue;
          ++n_rows;
          n_in += std::min<size_t>(k - a, size_t(p.seq_len));
          for (size_t i = k; i < user_cuts[u][size_t(s)].target_end; ++i) n_tgt += target_types[evs[i].type];
        }
        SplitArrays A;
        A.user.reserve(n_rows);
        for (auto* v : {&A.input_offsets, &A.text_offsets, &A.target_offsets, &A.purchase_offsets})
          v->reserve(n_rows + 1);
        for (auto* v : {&A.input_item, &A.input_category, &A.input_event, &A.input_gap, &A.input_price})
          v->reserve(n_in);
        A.input_ts.reserve(n_in);
        for (auto* v : {&A.target_item, &A.target_category, &A.target_event}) v->reserve(n_tgt);
        A.target_ts.reserve(n_tgt);
        for (size_t u = 0; u + 1 < first.size(); ++u) {
          const size_t a = first[u], k = user_cuts[u][size_t(s)].end, tend = user_cuts[u][size_t(s)].target_end;
          if (int64_t(k - a) < p.min_input_events) continue;
          A.user.push_back(int32_t(u));
          size_t from = k - std::min<size_t>(k - a, size_t(p.seq_len));
          for (size_t i = from; i < k; ++i) {
            const Ev& e = evs[i];
            A.input_item.push_back(ei[i]);
            A.input_category.push_back(ec[i]);
            A.input_event.push_back(e.type);
            A.input_gap.push_back(gap_bucket(i > a ? e.ts - evs[i - 1].ts : 0, i == a));
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
          // Targets: the target-type events of [k, tend) (the label window, or the one
          // held-out event).
          std::set<int32_t> bought;
          for (size_t i = k; i < tend; ++i) {
            const Ev& e = evs[i];
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
        my_split_users[s] += int64_t(A.size());
        writer.write_split(s, A);
      }
      writer.commit();
      std::vector<Ev>().swap(evs);
      release_free_memory();
      bar3.add(1);
      if (p.debug_max_shards >= 0 && ++shards_written >= p.debug_max_shards) {
        PLOG_WARN("prep: stopping after {} shard(s) (debug_max_shards): the output is left unsealed",
                  shards_written);
        return sum;
      }
    }
    bar3.finish();
    nlohmann::json st;
    st["users_per_split"] = my_split_users;
    write_file_atomic(wpath("stats3", rank, ".json"), st.dump());
  }
  barrier("prep-shards");
  for (int r = 0; r < world; ++r) {
    auto st = read_json(wpath("stats3", r, ".json"));
    for (int s = 0; s < kNumSplits; ++s) sum.users_per_split[s] += st["users_per_split"][size_t(s)].get<int64_t>();
  }
  for (int part = 0; part < P; ++part)
    sum.shards.push_back((out_dir / fmt::format("shard_{:05d}.h5", part)).string());
  barrier("prep-done");  // every rank has read the statistics; rank 0 may clean up
  sum.seconds = since(t0);
  if (rank != 0) return sum;

  assemble_quarantine(true);
  if (want_id_map) {
    TextWriter m(d.id_map_path, false);
    m.write("raw_user_id,pseudonym\n");
    for (int part = 0; part < P; ++part) append_file(m, wpath("ids", part, ".csv"));
    m.commit();
    PLOG_INFO("wrote the raw-id map to {} as configured by data.privacy.id_map_path", d.id_map_path);
  }
  // Shards of an earlier run with more partitions would be read as part of this one.
  for (auto& f : list_shard_files(out_dir))
    if (std::find(sum.shards.begin(), sum.shards.end(), f.string()) == sum.shards.end()) {
      PLOG_WARN("removing {}: left by an earlier prep run with more partitions", f.string());
      fs::remove(f);
    }
  nlohmann::json js;
  js["rows"] = sum.rows;
  js["accepted_events"] = sum.accepted_events;
  js["quarantined"] = sum.quarantined;
  js["rejects"] = sum.rejects;
  js["blank_lines"] = blank_lines;
  js["users"] = sum.users;
  js["users_per_split"] = {{"train", sum.users_per_split[0]}, {"val", sum.users_per_split[1]},
                           {"test", sum.users_per_split[2]}, {"latest", sum.users_per_split[3]}};
  js["cutoff_ms"] = {{"train", cut[0]}, {"val", cut[1]}, {"test", cut[2]}, {"latest", cut[3]}};
  js["protocol"] = p.protocol;
  js["target_event_types"] = p.target_event_types;
  js["label_window_ms"] = window_ms;
  js["vocab"] = {{"items", sum.items}, {"categories", sum.categories},
                 {"counted_before_ms", p.protocol == "temporal" ? cut[0] : 0},
                 {"counted_from", "the train split's inputs"}};
  js["pii_masked"] = {{"email", pii_kind[0]}, {"url", pii_kind[1]}, {"phone", pii_kind[2]},
                      {"digits", pii_kind[3]}};
  js["tokenizer_sha256"] = sum.tokenizer_sha256;
  js["shards"] = sum.shards;
  js["world_size"] = world;
  js["seconds"] = sum.seconds;
  js["read_seconds"] = sum.read_seconds;
  js["input_files"] = file_names;
  write_file_atomic(out_dir / "prep_summary.json", js.dump(2) + "\n");
  {
    std::vector<fs::path> shard_files(sum.shards.begin(), sum.shards.end());
    write_prep_manifest(out_dir, base.str_attrs["prep_run_id"], vocab_fp, sum.tokenizer_sha256, shard_files);
  }
  std::string table;
  for (auto& [k, n] : sum.rejects) table += fmt::format("\n  {:<24} {:>12}", k, n);
  PLOG_INFO("prep done in {:.1f}s: {} rows, {} events kept, {} users, {} quarantined ({:.3f}%), "
            "peak RSS {:.0f} MB:{}",
            sum.seconds, sum.rows, sum.accepted_events, sum.users, sum.quarantined,
            sum.rows ? 100.0 * double(sum.quarantined) / double(sum.rows) : 0.0, peak_rss_mb(), table);
  return sum;
}

}  // namespace portrait::data
