// The per-user tag table: see tags.h.
#include "tags/tags.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "tags/rfm.h"

namespace portrait::tags {

namespace {

constexpr double kDayMs = 86400000.0;
constexpr const char* kWeekdays[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

// Fixed decimals keep the CSV readable; both files hold the same rounded doubles.
double round_to(double v, int decimals) {
  const double s = std::pow(10.0, decimals);
  return std::round(v * s) / s;
}

// Per category: the cumulative distribution of price buckets over every user's priced events,
// so a user's bucket maps to its mid-rank percentile within that category.
class PriceDistribution {
 public:
  explicit PriceDistribution(const ActivityTable& a) {
    for (const auto& u : a.users)
      for (const auto& p : u.price_points) {
        auto& h = hist_[p[0]];
        if (h.size() <= size_t(p[1])) h.resize(size_t(p[1]) + 1, 0);
        h[size_t(p[1])] += p[2];
      }
    for (auto& [c, h] : hist_) {
      auto& below = below_[c];
      below.assign(h.size() + 1, 0);
      for (size_t b = 0; b < h.size(); ++b) below[b + 1] = below[b] + h[b];
    }
  }
  /// Mid-rank percentile in [0, 1] of bucket b in category c.
  double percentile(int32_t c, int32_t b) const {
    const auto& h = hist_.at(c);
    const auto& below = below_.at(c);
    const double total = double(below.back());
    if (total <= 1) return 0.5;
    return (double(below[size_t(b)]) + 0.5 * (double(h[size_t(b)]) - 1.0)) / (total - 1.0);
  }

 private:
  std::unordered_map<int32_t, std::vector<int64_t>> hist_, below_;
};

template <size_t N>
std::pair<int, double> mode_of(const std::array<int64_t, N>& counts) {
  int best = 0;
  int64_t total = 0;
  for (size_t i = 0; i < N; ++i) {
    total += counts[i];
    if (counts[i] > counts[size_t(best)]) best = int(i);
  }
  return {best, total > 0 ? double(counts[size_t(best)]) / double(total) : 0.0};
}

}  // namespace

ActivityOptions activity_options(const TagParams& p) {
  ActivityOptions o;
  o.purchase_event = p.purchase_event;
  o.price_purchases_only = p.price_events == "purchase";
  o.utc_offset_minutes = int(std::lround(p.utc_offset_hours * 60.0));
  return o;
}

std::string lifecycle_stage(const UserActivity& u, int64_t end_ms, const TagParams& p) {
  if (u.events == 0) return "churned";
  const double since_first = double(end_ms - u.first_ts) / kDayMs;
  const double since_last = double(end_ms - u.last_ts) / kDayMs;
  if (since_first <= p.new_days && !u.truncated) return "new";
  if (since_last <= p.active_days) return "active";
  if (since_last <= p.churn_days) return "lapsing";
  return "churned";
}

Table compute_tags(const ActivityTable& a, const TagParams& p) {
  using K = Column::Kind;
  const size_t n = a.users.size();
  Table t;
  t.attrs["monetary_source"] = a.priced ? "estimated_price" : "purchase_count";
  t.attrs["end_ms"] = std::to_string(a.end_ms);
  auto& uid = t.add("user_id", K::kString, "pseudonymous user id (as in the shards and exports)").s;
  auto& events = t.add("events", K::kInt, "events of any type (among the last prep.seq_len the shards keep)").i;
  auto& trunc = t.add("history_truncated", K::kInt, "1: the shards kept only the user's last prep.seq_len events").i;
  auto& purchases = t.add("purchases", K::kInt, "purchase events (RFM frequency)").i;
  auto& monetary = t.add("monetary", K::kFloat,
                         a.priced ? "estimated spend: sum of the purchases' price-bucket midpoints (RFM monetary)"
                                  : "purchase count (the data has no prices; RFM monetary)").f;
  auto& dle = t.add("days_since_last_event", K::kFloat, "days from the last event to the data's end").f;
  auto& dfe = t.add("days_since_first_event", K::kFloat, "days from the first event to the data's end").f;
  auto& dlp = t.add("days_since_last_purchase", K::kFloat, "days from the last purchase to the data's end (RFM recency; -1 = never)").f;
  auto& rs = t.add("r_score", K::kInt, "recency quintile 1..5 among buyers (5 = most recent; 1 without purchases)").i;
  auto& fs_ = t.add("f_score", K::kInt, "frequency quintile 1..5 among buyers (1 without purchases)").i;
  auto& ms = t.add("m_score", K::kInt, "monetary quintile 1..5 among buyers (1 without purchases)").i;
  auto& rname = t.add("rfm_segment", K::kString, "conventional RFM segment name (README: RFM rules)").s;
  auto& life = t.add("lifecycle", K::kString, "new | active | lapsing | churned").s;
  auto& pidx = t.add("price_index", K::kFloat, "mean within-category price percentile of the user's priced events (-1 = none)").f;
  auto& psens = t.add("price_sensitivity", K::kString, "high | medium | low | unknown").s;
  std::vector<std::vector<std::string>*> topc;
  std::vector<std::vector<double>*> tops;
  for (int k = 1; k <= p.top_categories; ++k) {
    topc.push_back(&t.add(fmt::format("top_category_{}", k), K::kString,
                          fmt::format("category with the {}-th most events (\"\" = none)", k)).s);
    tops.push_back(&t.add(fmt::format("top_category_{}_share", k), K::kFloat,
                          fmt::format("share of the user's events in top_category_{}", k)).f);
  }
  auto& wd = t.add("preferred_weekday", K::kString, "weekday with the most events (Mon..Sun, tags.utc_offset_hours)").s;
  auto& wds = t.add("preferred_weekday_share", K::kFloat, "share of the user's events on that weekday").f;
  auto& hr = t.add("preferred_hour", K::kInt, "hour of day with the most events (0..23)").i;
  auto& hrs = t.add("preferred_hour_share", K::kFloat, "share of the user's events in that hour").f;

  // RFM quintiles among buyers only.
  std::vector<size_t> buyers;
  std::vector<double> rv, fv, mv;
  for (size_t i = 0; i < n; ++i) {
    const auto& u = a.users[i];
    if (u.purchases == 0) continue;
    buyers.push_back(i);
    rv.push_back(double(a.end_ms - u.last_purchase_ts));
    fv.push_back(double(u.purchases));
    mv.push_back(a.priced ? u.spend : double(u.purchases));
  }
  const auto r = quintile_scores(rv, false), f = quintile_scores(fv, true), m = quintile_scores(mv, true);
  std::vector<int> R(n, 1), F(n, 1), M(n, 1);
  for (size_t j = 0; j < buyers.size(); ++j) {
    R[buyers[j]] = r[j];
    F[buyers[j]] = f[j];
    M[buyers[j]] = m[j];
  }
  const PriceDistribution prices(a);
  for (size_t i = 0; i < n; ++i) {
    const auto& u = a.users[i];
    uid.push_back(u.user_id);
    events.push_back(u.events);
    trunc.push_back(u.truncated ? 1 : 0);
    purchases.push_back(u.purchases);
    monetary.push_back(round_to(a.priced ? u.spend : double(u.purchases), 2));
    dle.push_back(u.events ? round_to(double(a.end_ms - u.last_ts) / kDayMs, 3) : -1.0);
    dfe.push_back(u.events ? round_to(double(a.end_ms - u.first_ts) / kDayMs, 3) : -1.0);
    dlp.push_back(u.purchases ? round_to(double(a.end_ms - u.last_purchase_ts) / kDayMs, 3) : -1.0);
    rs.push_back(R[i]);
    fs_.push_back(F[i]);
    ms.push_back(M[i]);
    rname.push_back(rfm_name(R[i], F[i], M[i]));
    life.push_back(lifecycle_stage(u, a.end_ms, p));
    double wsum = 0, psum = 0;
    for (const auto& pp : u.price_points) {
      psum += double(pp[2]) * prices.percentile(pp[0], pp[1]);
      wsum += double(pp[2]);
    }
    const double index = wsum > 0 ? round_to(psum / wsum, 4) : -1.0;
    pidx.push_back(index);
    psens.push_back(index < 0 ? "unknown" : index < p.price_low ? "high" : index > p.price_high ? "low" : "medium");
    auto cats = u.category_events;
    std::stable_sort(cats.begin(), cats.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
    for (size_t k = 0; k < topc.size(); ++k) {
      if (k < cats.size()) {
        const int32_t c = cats[k].first;
        topc[k]->push_back(c >= 0 && size_t(c) < a.categories.size() ? a.categories[size_t(c)] : std::to_string(c));
        tops[k]->push_back(round_to(double(cats[k].second) / double(u.events), 4));
      } else {
        topc[k]->push_back("");
        tops[k]->push_back(0.0);
      }
    }
    const auto [w, wshare] = mode_of(u.weekday);
    const auto [h, hshare] = mode_of(u.hour);
    wd.push_back(kWeekdays[w]);
    wds.push_back(round_to(wshare, 4));
    hr.push_back(h);
    hrs.push_back(round_to(hshare, 4));
  }
  return t;
}

}  // namespace portrait::tags
