// Per-user activity summaries, the input of every tag: read from the `latest` split of a prep
// shard directory, or built by hand in tests. The shards keep each user's last prep.seq_len
// events (256 by default), so counts are over those: a user with seq_len events is marked
// `truncated` (older events exist), which keeps heavy users out of the `new` lifecycle stage.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace portrait::tags {

/// What the tags need to know about one user's events.
struct UserActivity {
  std::string user_id;                 ///< pseudonymous id, as in the shards ("u:<hex>")
  int64_t events = 0;                  ///< events of any type (in the shards: the last prep.seq_len)
  bool truncated = false;              ///< the shards kept only the user's last seq_len events
  int64_t purchases = 0;               ///< purchase events
  int64_t first_ts = 0, last_ts = 0;   ///< unix ms of the first / last event (events > 0)
  int64_t last_purchase_ts = 0;        ///< unix ms of the last purchase (purchases > 0)
  double spend = 0;                    ///< estimated price paid over priced purchases
  int64_t priced_purchases = 0;        ///< purchases with a price (bucket >= 1)
  /// (category token id, events in it), sorted by category id.
  std::vector<std::pair<int32_t, int64_t>> category_events;
  std::array<int64_t, 7> weekday{};    ///< events per weekday, Monday = 0 (after the UTC offset)
  std::array<int64_t, 24> hour{};      ///< events per hour of day
  /// (category id, price bucket, events) of the priced events that count for price
  /// sensitivity, sorted by (category, bucket).
  std::vector<std::array<int32_t, 3>> price_points;
};

struct ActivityTable {
  std::vector<std::string> categories;  ///< category names by token id (/vocab/categories)
  int64_t end_ms = 0;                   ///< end of the data: the latest split's cut-off (last event + 1 ms)
  bool priced = false;                  ///< some purchase has a price (else monetary = purchase count)
  int64_t seq_len = 0;                  ///< events per user the shards keep (prep.seq_len; 0 = unknown)
  std::vector<UserActivity> users;      ///< shard order (shard index, then row)
};

struct ActivityOptions {
  std::string purchase_event = "purchase";  ///< event type that counts as a purchase
  bool price_purchases_only = false;        ///< price sensitivity from purchases only (else every priced event)
  int utc_offset_minutes = 0;               ///< local time of the weekday / hour tags
};

/// The estimated price of price bucket `b` >= 1: the geometric midpoint of the bucket prep
/// assigns (bucket = 1 + floor(4 log2(1 + price))), i.e. 2^((b - 0.5) / 4) - 1.
double bucket_price(int32_t b);

/// Weekday (Monday = 0) and hour of unix ms `ts` shifted by `offset_minutes`.
int weekday_of(int64_t ts, int offset_minutes);
int hour_of(int64_t ts, int offset_minutes);

/// Reads every user of the `latest` split of the prep output `shards_dir` (list_shards:
/// refuses an unsealed or mixed directory). Throws DataError naming the directory when the
/// shards lack the purchase event type.
ActivityTable read_activity(const std::string& shards_dir, const ActivityOptions& o);

}  // namespace portrait::tags
