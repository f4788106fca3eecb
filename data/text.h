// Small text utilities for the data pipeline: timestamps, UTF-8 validation, number parsing,
// and PII masking of review text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portrait::data {

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d);

/// Parses a timestamp into unix milliseconds. Accepts unix seconds ("1700000000", also with a
/// fraction "1700000000.25"), unix milliseconds (>= 12 digits), and ISO-8601
/// "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HHMM]" (space instead of T allowed).
/// Returns false on anything else (including impossible dates like 2024-02-30).
bool parse_timestamp_ms(std::string_view s, int64_t& ms);
/// "2024-03-01T12:34:56Z" from unix seconds.
std::string format_iso8601(int64_t unix_s);

/// Strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF).
bool valid_utf8(std::string_view s);

/// Parses a finite decimal number (no leading/trailing spaces). False on failure.
bool parse_double(std::string_view s, double& out);

struct PiiMaskCounts {
  int64_t email = 0, url = 0, phone = 0, digits = 0;
};

/// Replaces personal data in free text with placeholders, in this order:
///   emails -> "<email>", URLs (http://, https://, www.) -> "<url>",
///   phone numbers (7-15 digits with optional +, spaces, dashes, dots, parentheses, at least
///   one separator or a leading +) -> "<phone>", any other run of >= `min_digit_run` digits
///   (card/ID numbers, separators ' ' and '-' allowed inside) -> "<num>".
/// Adds what it replaced to `counts` when given.
std::string mask_pii(std::string_view text, int min_digit_run = 9, PiiMaskCounts* counts = nullptr);

}  // namespace portrait::data
