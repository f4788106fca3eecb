// Per-user activity from the shards: see activity.h.
#include "tags/activity.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "data/shard.h"

namespace portrait::tags {

double bucket_price(int32_t b) { return b >= 1 ? std::exp2((double(b) - 0.5) / 4.0) - 1.0 : 0.0; }

namespace {
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
}  // namespace

int weekday_of(int64_t ts, int offset_minutes) {
  const int64_t days = floor_div(ts + int64_t(offset_minutes) * 60000, 86400000);
  return int(((days + 3) % 7 + 7) % 7);  // 1970-01-01 was a Thursday (Monday = 0)
}

int hour_of(int64_t ts, int offset_minutes) {
  const int64_t h = floor_div(ts + int64_t(offset_minutes) * 60000, 3600000);
  return int((h % 24 + 24) % 24);
}

ActivityTable read_activity(const std::string& shards_dir, const ActivityOptions& o) {
  ActivityTable t;
  int32_t purchase = -1;
  bool first = true;
  for (const auto& file : data::list_shards(shards_dir)) {
    auto c = data::read_shard(file, {"latest"}, first);
    if (first) {
      t.categories = c.categories;
      auto it = std::find(c.event_types.begin(), c.event_types.end(), o.purchase_event);
      if (it == c.event_types.end())
        throw DataError("tags: the shards in " + shards_dir + " have no event type '" + o.purchase_event +
                        "' (tags.purchase_event); their event types are those of /vocab/event_types in " +
                        file.string());
      purchase = int32_t(it - c.event_types.begin());
      first = false;
    }
    t.end_ms = std::max(t.end_ms, c.int_attrs["latest_cutoff_ms"]);
    t.seq_len = c.int_attrs["seq_len"];
    const auto& a = c.splits[data::kLatestSplit];
    std::map<int32_t, int64_t> cats;
    std::map<std::pair<int32_t, int32_t>, int32_t> prices;
    for (size_t r = 0; r < a.size(); ++r) {
      UserActivity u;
      u.user_id = c.user_ids.at(size_t(a.user[r]));
      cats.clear();
      prices.clear();
      for (int64_t k = a.input_offsets[r]; k < a.input_offsets[r + 1]; ++k) {
        const size_t e = size_t(k);
        const int64_t ts = a.input_ts[e];
        const bool buy = a.input_event[e] == purchase;
        const int32_t cat = a.input_category[e], pb = a.input_price[e];
        if (u.events == 0) u.first_ts = u.last_ts = ts;
        u.first_ts = std::min(u.first_ts, ts);
        u.last_ts = std::max(u.last_ts, ts);
        ++u.events;
        ++cats[cat];
        ++u.weekday[size_t(weekday_of(ts, o.utc_offset_minutes))];
        ++u.hour[size_t(hour_of(ts, o.utc_offset_minutes))];
        if (buy) {
          u.last_purchase_ts = u.purchases == 0 ? ts : std::max(u.last_purchase_ts, ts);
          ++u.purchases;
          if (pb >= 1) {
            ++u.priced_purchases;
            u.spend += bucket_price(pb);
          }
        }
        if (pb >= 1 && (buy || !o.price_purchases_only)) ++prices[{cat, pb}];
      }
      u.truncated = t.seq_len > 0 && u.events >= t.seq_len;
      u.category_events.assign(cats.begin(), cats.end());
      for (const auto& [k, n] : prices) u.price_points.push_back({k.first, k.second, n});
      t.priced = t.priced || u.priced_purchases > 0;
      t.users.push_back(std::move(u));
    }
  }
  return t;
}

}  // namespace portrait::tags
