// Shared vocabulary of the data pipeline: canonical event types and the reasons a row can be
// rejected. `portrait synth` injects faults by these names and `portrait prep` reports them
// under the same names, so the two summaries can be compared key by key.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace portrait::data {

/// Canonical event types. Token ids in shards: 0 = padding, then these values.
enum class EventType : uint8_t { kView = 1, kClick = 2, kCart = 3, kPurchase = 4, kReview = 5 };
inline constexpr int kNumEventTypes = 5;
inline constexpr std::array<std::string_view, kNumEventTypes> kEventTypeNames = {
    "view", "click", "cart", "purchase", "review"};
inline std::string_view event_type_name(EventType t) { return kEventTypeNames[int(t) - 1]; }
inline std::optional<EventType> canonical_event_type(std::string_view s) {
  for (int i = 0; i < kNumEventTypes; ++i)
    if (kEventTypeNames[size_t(i)] == s) return EventType(i + 1);
  return std::nullopt;
}

/// Why a row (or a user's rows) went to quarantine. Checked in this order; the first
/// failing check names the row's reason, so each bad row is counted exactly once.
enum class Reject : uint8_t {
  kInvalidUtf8 = 0,       ///< the record is not valid UTF-8 (checked before parsing)
  kMalformedRow,          ///< CSV field count / unterminated quote, JSON syntax, not an object,
                          ///< a key twice in one JSON object
  kBadValue,              ///< a field holds a control byte (NUL...) in an id, a NUL anywhere, or
                          ///< (JSON) an object/array/boolean, or a non-integer number as an id
  kFieldTooLong,          ///< a field exceeds data.clean.max_field_length bytes
  kMissingField,          ///< user, timestamp, event type or item empty/absent
  kBadTimestamp,          ///< not unix s/ms nor ISO-8601
  kTimestampOutOfRange,   ///< outside [data.clean.min_time, data.clean.max_time)
  kUnknownEventType,      ///< not a canonical type nor mapped by data.event_types
  kBadPrice,              ///< not a number, negative, or above data.clean.max_price
  kBadRating,             ///< not a number or outside [rating_min, rating_max]
  kDuplicate,             ///< exact duplicate of an earlier event (first one kept)
  kBotUser,               ///< user exceeds data.clean.max_events_per_user (all rows)
  kTooFewEvents,          ///< user below data.privacy.min_events_per_user (all rows)
  kCount
};
inline constexpr std::array<std::string_view, size_t(Reject::kCount)> kRejectNames = {
    "invalid_utf8",   "malformed_row",        "bad_value",      "field_too_long", "missing_field",
    "bad_timestamp",  "timestamp_out_of_range", "unknown_event_type", "bad_price",
    "bad_rating",     "duplicate",           "bot_user",       "too_few_events"};
inline std::string_view reject_name(Reject r) { return kRejectNames[size_t(r)]; }

}  // namespace portrait::data
