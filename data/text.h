// Small text utilities for the data pipeline: timestamps, UTF-8 validation, number parsing,
// and PII masking of review text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace portrait::data {

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d);

/// Parses a timestamp into unix milliseconds. Accepts unix seconds ("1700000000") and unix
/// milliseconds (>= 12 integer digits), both also as decimal numbers with a fraction or an
/// exponent ("1700000000.25", "1700000000000.0", "1.7e12": what float columns and JSON
/// encoders write); the unit is chosen by the integer digits of the value and any fraction of
/// a millisecond is dropped (floor). And ISO-8601 "YYYY-MM-DD",
/// "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HHMM]" (space instead of T allowed).
/// Returns false on anything else (including impossible dates like 2024-02-30, signs, nan).
bool parse_timestamp_ms(std::string_view s, int64_t& ms);
/// "2024-03-01T12:34:56Z" from unix seconds.
std::string format_iso8601(int64_t unix_s);

/// Strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF): core/utf8.h.
using portrait::valid_utf8;

/// Parses a finite decimal number (no leading/trailing spaces). False on failure.
bool parse_double(std::string_view s, double& out);

/// Bound on the bytes of input that an error message, log line or quarantine reason quotes.
inline constexpr size_t kSnippetBytes = 200;

/// `s` as an error message or log line may quote it: at most `max_bytes` of it (cut at a
/// UTF-8 character boundary) followed by "...[N bytes in all]" when longer, with control bytes
/// shown as \xNN. A 100 MB line must not become a 100 MB log line, and raw control bytes must
/// not reach a terminal.
std::string snippet(std::string_view s, size_t max_bytes = kSnippetBytes);

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
