#include "data/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/config/section.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/io.h"
#include "core/rng.h"
#include "data/schema.h"
#include "data/text.h"

namespace portrait::data {

SynthParams synth_params_from_config(const cfg::Node& root) {
  SynthParams p;
  cfg::Section s(root, "synth");
  s.read("output_dir", p.output_dir);
  int64_t seed = int64_t(p.seed);
  s.read("seed", seed, int64_t{0});
  p.seed = uint64_t(seed);
  s.read("users", p.users, int64_t{1});
  s.read("segments", p.segments, 1, 1000);
  s.read("categories", p.categories, 2, 100000);
  s.read("items", p.items, int64_t{2});
  s.read("zipf_exponent", p.zipf_exponent, 0.0, 5.0);
  s.read("start", p.start);
  s.read("days", p.days, 1, 100000);
  s.read("sessions_per_day", p.sessions_per_day, 0.0, 100.0);
  s.read("purchase_rate", p.purchase_rate, 0.0, 100.0);
  s.read("repeat_prob", p.repeat_prob, 0.0, 1.0);
  s.read("copurchase_prob", p.copurchase_prob, 0.0, 1.0);
  s.read("favourite_prob", p.favourite_prob, 0.0, 1.0);
  s.read("favourites", p.favourites, 1, 100000);
  s.read("review_prob", p.review_prob, 0.0, 1.0);
  s.read("pii_fraction", p.pii_fraction, 0.0, 1.0);
  s.read("label_window_days", p.label_window_days, 0.001, 1e5);
  s.read("max_user_events", p.max_user_events, 10, 100000000);
  s.read_enum("format", p.format, {"csv", "tsv", "jsonl"});
  s.read("gzip", p.gzip);
  s.read("files", p.files, 1, 10000);
  s.read("alias_event_names", p.alias_event_names);
  s.read("fault_fraction", p.fault_fraction, 0.0, 1.0);
  s.read("bot_users", p.bot_users, int64_t{0});
  s.read("bot_events", p.bot_events, int64_t{1});
  s.read("max_field_length", p.max_field_length, int64_t{16});
  s.read("rating_max", p.rating_max);
  s.finish();
  if (p.output_dir.empty()) throw ConfigError("config key 'synth.output_dir' must be set");
  if (p.items < p.categories)
    throw ConfigError("config key 'synth.items' must be >= synth.categories");
  int64_t ms;
  if (!parse_timestamp_ms(p.start, ms))
    throw ConfigError("config key 'synth.start' = '" + p.start + "' is not an ISO-8601 date");
  return p;
}

namespace {

const char* kCatEn[] = {"phones", "laptops", "shoes",  "dresses", "books",    "toys",    "kitchen",
                        "beauty", "sports",  "garden", "grocery", "pets",     "music",   "games",
                        "watches", "bags",   "furniture", "cameras", "baby",  "tools"};
const char* kCatZh[] = {"手机", "笔记本", "鞋子", "连衣裙", "图书", "玩具", "厨具",
                        "美妆", "运动",   "园艺", "食品",   "宠物", "音乐", "游戏",
                        "手表", "包包",   "家具", "相机",   "母婴", "工具"};
const char* kSentEn[5][3] = {{"terrible", "awful", "broken on arrival"},
                             {"disappointing", "not great", "poor quality"},
                             {"okay", "average", "decent enough"},
                             {"good", "nice", "solid"},
                             {"excellent", "love this", "amazing"}};
const char* kSentZh[5][3] = {{"太差了", "质量很差", "收到就坏了"},
                             {"不太满意", "有点失望", "做工一般般"},
                             {"一般", "还行", "凑合用"},
                             {"不错", "挺好的", "满意"},
                             {"非常满意", "太喜欢了", "强烈推荐"}};
const char* kSegEn[] = {"fast delivery", "good value", "premium feel", "cheap but works",
                        "gift for my kid", "for the office", "great for travel", "eco friendly"};
const char* kSegZh[] = {"发货很快", "性价比高", "质感高级", "便宜好用",
                        "送给孩子的礼物", "办公用", "出差旅行很方便", "环保"};
const char* kPii[] = {" contact me at jane.doe{}@example.com", " call me 138-{}-5678",
                      " card 4111 1111 1111 {}", " see https://shop.example.com/r/{}",
                      " 我的电话 +86 139 {} 0000"};

struct Segment {
  std::vector<double> pref;  // per category, sums to 1
  double price_sensitivity, activity, zh_prob;
};

struct Ev {
  int64_t ts;  // unix seconds
  EventType type;
  int64_t item;
  int rating;  // 0 = none
  std::string text;
};

std::string cat_name(int c) {
  std::string s = kCatEn[c % 20];
  if (c >= 20) s += "_" + std::to_string(c / 20);
  return s;
}

std::string item_name(int64_t i) {
  char b[24];
  std::snprintf(b, sizeof b, "I%07lld", (long long)i);
  return b;
}

std::string user_name(int64_t u, bool bot) {
  char b[24];
  std::snprintf(b, sizeof b, bot ? "U9%07lld" : "U%08lld", (long long)u);
  return b;
}

std::string fmt_price(double p) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", p);
  return b;
}

void json_str(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

const char* kCols[] = {"user_id", "timestamp", "event_type", "item_id",
                       "category", "price",    "rating",     "review_text"};
enum Col { kUser, kTs, kType, kItem, kCat, kPrice, kRating, kText };

class Generator {
 public:
  explicit Generator(const SynthParams& p) : p_(p) {
    int64_t ms;
    parse_timestamp_ms(p.start, ms);
    start_ = ms / 1000;
    end_ = start_ + int64_t(p.days) * 86400;
    sep_ = p.format == "tsv" ? '\t' : ',';
    Rng r(mix64(p.seed, 1));
    for (int k = 0; k < p.segments; ++k) {
      Segment s;
      s.pref.assign(size_t(p.categories), 0.1 / p.categories);
      double w[] = {0.5, 0.25, 0.15};
      for (double wi : w) s.pref[r.below(uint64_t(p.categories))] += wi;
      double tot = 0;
      for (double x : s.pref) tot += x;
      for (double& x : s.pref) x /= tot;
      s.price_sensitivity = r.uniform(0.0, 2.0);
      s.activity = r.uniform(0.5, 2.0);
      s.zh_prob = r.uniform(0.0, 1.0);
      segs_.push_back(s);
    }
    ipc_ = p.items / p.categories;
    zipf_cdf_.resize(size_t(ipc_));
    double acc = 0;
    for (int64_t i = 0; i < ipc_; ++i) zipf_cdf_[size_t(i)] = acc += 1.0 / std::pow(double(i + 1), p.zipf_exponent);
    for (int c = 0; c < p.categories; ++c) cat_price_.push_back(std::exp(r.uniform(2.0, 6.0)));
  }

  int64_t n_items() const { return ipc_ * p_.categories; }
  int item_cat(int64_t i) const { return int(i / ipc_); }
  double item_price(int64_t i) const {
    Rng r(mix64(p_.seed ^ 0xabcdefULL, uint64_t(i)));
    return std::round(cat_price_[size_t(item_cat(i))] * std::exp(0.5 * r.normal()) * 100) / 100 + 0.01;
  }
  double item_quality(int64_t i) const {
    Rng r(mix64(p_.seed ^ 0x5151ULL, uint64_t(i)));
    return r.uniform();
  }
  int64_t complement(int64_t i) const {
    int c = (item_cat(i) + 1) % p_.categories;
    return int64_t(c) * ipc_ + int64_t(mix64(p_.seed, uint64_t(i)) % uint64_t(std::min<int64_t>(ipc_, 20)));
  }
  int64_t pick_item(Rng& r, int c, double beta) const {
    int64_t it = 0;
    for (int t = 0; t < 5; ++t) {
      it = int64_t(c) * ipc_ + int64_t(r.pick_cdf(zipf_cdf_));
      double ratio = cat_price_[size_t(c)] / item_price(it);
      if (r.uniform() < std::min(1.0, std::pow(ratio, beta))) break;
    }
    return it;
  }

  struct User {
    int seg;
    bool zh;
    double act;
    std::vector<double> lambda;  // purchases per day per category
    std::vector<int64_t> favs;   // [categories * favourites]: the user's favourite items
  };

  User make_user(int64_t u) const {
    Rng r(mix64(p_.seed, uint64_t(u) * 2 + 1));
    User us;
    us.seg = int(r.below(uint64_t(p_.segments)));
    const Segment& s = segs_[size_t(us.seg)];
    us.zh = r.bernoulli(s.zh_prob);
    us.act = s.activity * std::exp(0.5 * r.normal() - 0.125);
    for (int c = 0; c < p_.categories; ++c)
      us.lambda.push_back(p_.purchase_rate * us.act * s.pref[size_t(c)]);
    if (p_.favourite_prob > 0) {  // own stream: the draws above stay as they were
      Rng rf(mix64(p_.seed ^ 0xfa40b17eULL, uint64_t(u)));
      for (int c = 0; c < p_.categories; ++c)
        for (int k = 0; k < p_.favourites; ++k) us.favs.push_back(pick_item(rf, c, s.price_sensitivity));
    }
    return us;
  }

  std::string review_text(Rng& r, const User& us, int c, int rating) {
    int seg = us.seg % 8;
    std::string t;
    const char* sent = (us.zh ? kSentZh : kSentEn)[rating - 1][r.below(3)];
    if (us.zh) {
      t = std::string(kCatZh[c % 20]) + sent + "，" + kSegZh[seg];
      if (r.bernoulli(0.3)) t += std::string("。") + kSentZh[rating - 1][r.below(3)];
    } else {
      t = std::string(sent) + " " + kCatEn[c % 20] + ", " + kSegEn[seg];
      if (r.bernoulli(0.3)) t += ". " + std::string(kSentEn[rating - 1][r.below(3)]) + "!";
      if (r.bernoulli(0.02)) t += " the \"best\" so far";
      if (r.bernoulli(0.002)) t += "\nsecond line";
    }
    if (r.bernoulli(p_.pii_fraction)) {
      std::string pii = kPii[r.below(5)];
      std::string num = std::to_string(1000 + r.below(9000));
      pii.replace(pii.find("{}"), 2, num);
      t += pii;
    }
    return t;
  }

  // An item of category c for user us: a favourite with probability favourite_prob.
  int64_t pick_for(Rng& r, const User& us, int c) const {
    if (p_.favourite_prob > 0 && r.bernoulli(p_.favourite_prob))
      return us.favs[size_t(c) * size_t(p_.favourites) + r.below(uint64_t(p_.favourites))];
    return pick_item(r, c, segs_[size_t(us.seg)].price_sensitivity);
  }

  std::vector<Ev> user_events(int64_t u, const User& us) {
    Rng r(mix64(p_.seed, uint64_t(u) * 2 + 2));
    const Segment& s = segs_[size_t(us.seg)];
    std::vector<Ev> ev;
    std::vector<double> pref_cdf;
    double acc = 0;
    for (double x : s.pref) pref_cdf.push_back(acc += x);
    double span = double(end_ - start_);
    std::vector<std::vector<int64_t>> bought(size_t(p_.categories));
    auto funnel = [&](int64_t t, int64_t item, bool buy) {
      ev.push_back({t - 240, EventType::kView, item, 0, {}});
      ev.push_back({t - 180, EventType::kClick, item, 0, {}});
      ev.push_back({t - 60, EventType::kCart, item, 0, {}});
      if (buy) ev.push_back({t, EventType::kPurchase, item, 0, {}});
    };
    // Purchases: Poisson per category.
    for (int c = 0; c < p_.categories; ++c) {
      double lam = us.lambda[size_t(c)] / 86400.0;
      if (lam <= 0) continue;
      for (double t = double(start_) + r.exponential(lam); t < double(end_); t += r.exponential(lam)) {
        int64_t ts = int64_t(t);
        int64_t item;
        auto& prev = bought[size_t(c)];
        if (!prev.empty() && r.bernoulli(p_.repeat_prob)) item = prev[r.below(prev.size())];
        else item = pick_for(r, us, c);
        prev.push_back(item);
        funnel(ts, item, true);
        if (r.bernoulli(p_.copurchase_prob)) {
          int64_t comp = complement(item);
          ev.push_back({ts + 30, EventType::kView, comp, 0, {}});
          ev.push_back({ts + 60, EventType::kPurchase, comp, 0, {}});
        }
        if (r.bernoulli(p_.review_prob)) {
          int64_t rt = ts + 86400 + int64_t(r.below(9 * 86400));
          double q = item_quality(item);
          int rating = std::clamp(int(std::lround(1 + 4 * q + 0.8 * r.normal())), 1, 5);
          ev.push_back({rt, EventType::kReview, item, rating, review_text(r, us, c, rating)});
        }
      }
    }
    // Browse sessions.
    double srate = p_.sessions_per_day * us.act / 86400.0;
    for (double t = double(start_) + r.exponential(srate); t < double(end_); t += r.exponential(srate)) {
      int n = 1 + int(r.below(6));
      int64_t ts = int64_t(t);
      for (int k = 0; k < n; ++k) {
        int c = int(r.pick_cdf(pref_cdf));
        int64_t item = pick_for(r, us, c);
        ev.push_back({ts, EventType::kView, item, 0, {}});
        ts += 20 + int64_t(r.below(120));
        if (r.bernoulli(0.3)) {
          ev.push_back({ts, EventType::kClick, item, 0, {}});
          ts += 10 + int64_t(r.below(60));
          if (r.bernoulli(0.2)) {  // abandoned cart
            ev.push_back({ts, EventType::kCart, item, 0, {}});
            ts += 10;
          }
        }
      }
    }
    (void)span;
    std::stable_sort(ev.begin(), ev.end(), [](const Ev& a, const Ev& b) { return a.ts < b.ts; });
    std::vector<Ev> out;
    out.reserve(ev.size());
    int64_t last = INT64_MIN;
    for (auto& e : ev) {
      if (e.ts <= last) e.ts = last + 1;  // strictly increasing: no natural duplicates
      if (e.ts < start_ || e.ts >= end_) continue;
      last = e.ts;
      out.push_back(std::move(e));
      if (int(out.size()) >= p_.max_user_events) break;
    }
    return out;
  }

  // Fields of one row as text.
  std::array<std::string, 8> fields(const std::string& user, const Ev& e, Rng& r) {
    std::array<std::string, 8> f;
    f[kUser] = user;
    double x = r.uniform();
    if (x < 0.7) f[kTs] = std::to_string(e.ts);
    else if (x < 0.9) f[kTs] = std::to_string(e.ts * 1000 + int64_t(r.below(1000)));
    else f[kTs] = format_iso8601(e.ts);
    std::string_view tn = event_type_name(e.type);
    if (p_.alias_event_names && r.bernoulli(0.1)) {
      if (e.type == EventType::kView) tn = "pv";
      else if (e.type == EventType::kCart) tn = "add_to_cart";
      else if (e.type == EventType::kPurchase) tn = "buy";
    }
    f[kType] = tn;
    f[kItem] = item_name(e.item);
    if (!r.bernoulli(0.1)) f[kCat] = cat_name(item_cat(e.item));  // else: from the catalogue
    f[kPrice] = fmt_price(item_price(e.item));
    if (e.rating) f[kRating] = std::to_string(e.rating);
    f[kText] = e.text;
    return f;
  }

  std::string row(const std::array<std::string, 8>& f, int drop = -1) {
    std::string out;
    if (p_.format == "jsonl") {
      out.push_back('{');
      bool first = true;
      for (int i = 0; i < 8; ++i) {
        if (i == drop) continue;
        if (!first) out.push_back(',');
        first = false;
        json_str(out, kCols[i]);
        out.push_back(':');
        bool numeric = (i == kTs || i == kPrice || i == kRating) && !f[size_t(i)].empty() &&
                       f[size_t(i)].find_first_not_of("0123456789.") == std::string::npos;
        if (numeric) out += f[size_t(i)];
        else if ((i == kRating) && f[size_t(i)].empty()) out += "null";
        else json_str(out, f[size_t(i)]);
      }
      out += "}\n";
      return out;
    }
    bool first = true;
    for (int i = 0; i < 8; ++i) {
      if (i == drop) continue;
      if (!first) out.push_back(sep_);
      first = false;
      append_csv_field(out, f[size_t(i)], sep_);
    }
    out.push_back('\n');
    return out;
  }

  std::string header() const {
    if (p_.format == "jsonl") return {};
    std::string h;
    for (int i = 0; i < 8; ++i) {
      if (i) h.push_back(sep_);
      h += kCols[i];
    }
    return h + "\n";
  }

  // One row with exactly one defect of kind `k`.
  std::string fault_row(Reject k, std::array<std::string, 8> f, Rng& r) {
    switch (k) {
      case Reject::kInvalidUtf8: f[kText] = "bad bytes \xff\xfe here"; break;
      case Reject::kMalformedRow:
        if (p_.format == "jsonl") {
          std::string s = row(f);
          return s.substr(0, s.size() / 2) + "\n";
        }
        return row(f, kCat);
      case Reject::kFieldTooLong: f[kText] = std::string(size_t(p_.max_field_length) + 1 + r.below(100), 'z'); break;
      case Reject::kMissingField: f[kItem].clear(); break;
      case Reject::kBadTimestamp: f[kTs] = r.bernoulli(0.5) ? "2024-13-45T10:00:00Z" : "yesterday"; break;
      case Reject::kTimestampOutOfRange: f[kTs] = r.bernoulli(0.5) ? "86400" : "4102444800"; break;
      case Reject::kUnknownEventType: f[kType] = "wishlist_add"; break;
      case Reject::kBadPrice: f[kPrice] = r.bernoulli(0.5) ? "-3.50" : "12,5x"; break;
      case Reject::kBadRating: f[kRating] = std::to_string(int(p_.rating_max) + 1 + int(r.below(5))); break;
      default: break;
    }
    return row(f);
  }

  const SynthParams& p_;
  int64_t start_, end_;
  char sep_;
  std::vector<Segment> segs_;
  int64_t ipc_;
  std::vector<double> zipf_cdf_, cat_price_;
};

}  // namespace

SynthSummary run_synth(const SynthParams& p) {
  namespace fs = std::filesystem;
  fs::create_directories(p.output_dir);
  Generator g(p);
  SynthSummary sum;
  sum.output_dir = p.output_dir;
  for (auto n : kRejectNames) sum.injected[std::string(n)] = 0;

  std::string ext = p.format == "jsonl" ? ".jsonl" : (p.format == "tsv" ? ".tsv" : ".csv");
  if (p.gzip) ext += ".gz";
  std::vector<std::unique_ptr<TextWriter>> files;
  for (int f = 0; f < p.files; ++f) {
    char name[64];
    std::snprintf(name, sizeof name, "events_%05d%s", f, ext.c_str());
    files.push_back(std::make_unique<TextWriter>(fs::path(p.output_dir) / name, p.gzip));
    files.back()->write(g.header());
  }
  // Truth file header.
  TextWriter truth(fs::path(p.output_dir) / "truth.csv", false);
  std::string th = "user_id,segment,language,activity";
  for (int c = 0; c < p.categories; ++c) th += ",p_" + cat_name(c);
  truth.write(th + "\n");

  const Reject kinds[] = {Reject::kInvalidUtf8, Reject::kMalformedRow, Reject::kFieldTooLong,
                          Reject::kMissingField, Reject::kBadTimestamp,
                          Reject::kTimestampOutOfRange, Reject::kUnknownEventType,
                          Reject::kBadPrice, Reject::kBadRating, Reject::kDuplicate};
  const int nkinds = int(std::size(kinds));
  Rng fr(mix64(p.seed, 7));  // fault stream
  int64_t kind_rr = 0;
  const double W = p.label_window_days;
  Progress bar("synth", uint64_t(p.users + p.bot_users), "users");
  std::string line;
  for (int64_t u = 0; u < p.users; ++u) {
    auto us = g.make_user(u);
    auto evs = g.user_events(u, us);
    std::string uid = user_name(u, false);
    TextWriter& out = *files[size_t(u % p.files)];
    Rng rr(mix64(p.seed, uint64_t(u) * 2 + 3));
    if (!evs.empty()) ++sum.active_users;
    for (const auto& e : evs) {
      auto f = g.fields(uid, e, rr);
      line = g.row(f);
      out.write(line);
      ++sum.valid_events;
      ++sum.rows;
      if (p.fault_fraction > 0 && fr.bernoulli(p.fault_fraction)) {
        Reject k = kinds[kind_rr++ % nkinds];
        if (k == Reject::kDuplicate) out.write(line);
        else out.write(g.fault_row(k, f, fr));
        ++sum.injected[std::string(reject_name(k))];
        ++sum.rows;
      }
    }
    // Truth: oracle probability of >= 1 purchase of category c within W days.
    std::string t = uid + "," + std::to_string(us.seg) + "," + (us.zh ? "zh" : "en") + ",";
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", us.act);
    t += b;
    for (int c = 0; c < p.categories; ++c) {
      int pc = (c + p.categories - 1) % p.categories;
      double rate = us.lambda[size_t(c)] + p.copurchase_prob * us.lambda[size_t(pc)];
      std::snprintf(b, sizeof b, ",%.6f", 1.0 - std::exp(-W * rate));
      t += b;
    }
    truth.write(t + "\n");
    bar.add(1);
  }
  // Bots: rapid-fire views far beyond any human activity.
  for (int64_t b = 0; b < p.bot_users; ++b) {
    std::string uid = user_name(b, true);
    TextWriter& out = *files[size_t(b % p.files)];
    Rng rr(mix64(p.seed ^ 0xb07ULL, uint64_t(b)));
    int64_t ts = g.start_ + int64_t(rr.below(86400));
    for (int64_t k = 0; k < p.bot_events; ++k) {
      Ev e{ts, EventType::kView, int64_t(rr.below(uint64_t(g.n_items()))), 0, {}};
      ts += 2;
      out.write(g.row(g.fields(uid, e, rr)));
      ++sum.rows;
    }
    sum.injected["bot_user"] += p.bot_events;
    bar.add(1);
  }
  for (auto& f : files) f->commit();
  truth.commit();
  bar.finish();

  // Catalogue.
  {
    TextWriter cat(fs::path(p.output_dir) / "catalogue.csv", false);
    cat.write("item_id,category,title,price\n");
    std::string l;
    for (int64_t i = 0; i < g.n_items(); ++i) {
      l.clear();
      int c = g.item_cat(i);
      l += item_name(i) + "," + cat_name(c) + ",";
      append_csv_field(l, std::string(kCatZh[c % 20]) + " " + kCatEn[c % 20] + " model " + std::to_string(i), ',');
      l += "," + fmt_price(g.item_price(i)) + "\n";
      cat.write(l);
    }
    cat.commit();
  }
  sum.users = p.users;
  nlohmann::json tj;
  tj["seed"] = p.seed;
  tj["label_window_days"] = p.label_window_days;
  tj["start"] = p.start;
  tj["days"] = p.days;
  tj["categories"] = nlohmann::json::array();
  for (int c = 0; c < p.categories; ++c) tj["categories"].push_back(cat_name(c));
  for (const auto& s : g.segs_)
    tj["segments"].push_back({{"category_preference", s.pref},
                              {"price_sensitivity", s.price_sensitivity},
                              {"activity", s.activity},
                              {"chinese_probability", s.zh_prob}});
  tj["copurchase_category_offset"] = 1;
  tj["repeat_prob"] = p.repeat_prob;
  tj["copurchase_prob"] = p.copurchase_prob;
  tj["favourite_prob"] = p.favourite_prob;
  tj["favourites"] = p.favourites;
  write_file_atomic(fs::path(p.output_dir) / "truth.json", tj.dump(2) + "\n");
  nlohmann::json fj;
  fj["injected"] = sum.injected;
  fj["rows"] = sum.rows;
  fj["valid_events"] = sum.valid_events;
  fj["users"] = p.users;
  fj["active_users"] = sum.active_users;
  fj["bot_users"] = p.bot_users;
  write_file_atomic(fs::path(p.output_dir) / "faults.json", fj.dump(2) + "\n");
  PLOG_INFO("synth: {} users, {} rows ({} valid events) in {}", p.users, sum.rows,
            sum.valid_events, p.output_dir);
  return sum;
}

}  // namespace portrait::data
