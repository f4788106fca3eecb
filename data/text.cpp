#include "data/text.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <vector>

namespace portrait::data {

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = unsigned(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + int64_t(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = unsigned(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = int64_t(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

namespace {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool take_digits(std::string_view s, size_t& i, size_t n, int64_t& v) {
  if (i + n > s.size()) return false;
  v = 0;
  for (size_t k = 0; k < n; ++k) {
    char c = s[i + k];
    if (!is_digit(c)) return false;
    v = v * 10 + (c - '0');
  }
  i += n;
  return true;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dm[m - 1];
}

bool parse_iso(std::string_view s, int64_t& ms) {
  size_t i = 0;
  int64_t y, mo, d, h = 0, mi = 0, se = 0, frac_ms = 0;
  if (!take_digits(s, i, 4, y) || i >= s.size() || s[i++] != '-') return false;
  if (!take_digits(s, i, 2, mo) || i >= s.size() || s[i++] != '-') return false;
  if (!take_digits(s, i, 2, d)) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > int64_t(days_in_month(y, unsigned(mo)))) return false;
  int64_t offset_min = 0;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != ' ') return false;
    ++i;
    if (!take_digits(s, i, 2, h) || i >= s.size() || s[i++] != ':') return false;
    if (!take_digits(s, i, 2, mi)) return false;
    if (i < s.size() && s[i] == ':') {
      ++i;
      if (!take_digits(s, i, 2, se)) return false;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        ++i;
        size_t start = i;
        int64_t scale = 100;
        while (i < s.size() && is_digit(s[i])) {
          if (scale > 0) frac_ms += (s[i] - '0') * scale;
          scale /= 10;
          ++i;
        }
        if (i == start) return false;
      }
    }
    if (h > 23 || mi > 59 || se > 60) return false;
    if (i < s.size()) {
      char c = s[i];
      if (c == 'Z' || c == 'z') {
        ++i;
      } else if (c == '+' || c == '-') {
        ++i;
        int64_t oh, om = 0;
        if (!take_digits(s, i, 2, oh)) return false;
        if (i < s.size() && s[i] == ':') ++i;
        if (i < s.size() && !take_digits(s, i, 2, om)) return false;
        if (oh > 23 || om > 59) return false;
        offset_min = (c == '+' ? 1 : -1) * (oh * 60 + om);
      } else {
        return false;
      }
    }
    if (i != s.size()) return false;
  }
  int64_t days = days_from_civil(y, unsigned(mo), unsigned(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
  ms = secs * 1000 + frac_ms;
  return true;
}

}  // namespace

namespace {

// A plain decimal number "D[.D][e[+-]D]" (no sign, at least one integer digit) as unix time:
// seconds below 12 integer digits, milliseconds from 12 on, as for integers. Exact decimal
// arithmetic on the digits (no binary float), so the same text always gives the same ms.
bool parse_unix_decimal(std::string_view s, int64_t& ms) {
  std::string digits;  // all mantissa digits
  size_t i = 0, int_digits = 0;
  while (i < s.size() && is_digit(s[i])) digits.push_back(s[i++]);
  int_digits = digits.size();
  if (int_digits == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    const size_t b = i;
    while (i < s.size() && is_digit(s[i])) digits.push_back(s[i++]);
    if (i == b) return false;  // "1700000000." is more likely a cut value than a time
  }
  int64_t exp = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    const size_t b = i;
    while (i < s.size() && is_digit(s[i])) {
      exp = exp * 10 + (s[i++] - '0');
      if (exp > 40) return false;  // far outside any plausible time
    }
    if (i == b) return false;
    if (neg) exp = -exp;
  }
  if (i != s.size()) return false;
  // Move the decimal point by the exponent: value = digits[0, point) . digits[point, ...).
  const int64_t point = int64_t(int_digits) + exp;
  if (point < 0) return false;
  if (size_t(point) > digits.size()) digits.append(size_t(point) - digits.size(), '0');
  const std::string_view whole = std::string_view(digits).substr(0, size_t(point));
  const std::string_view frac = std::string_view(digits).substr(size_t(point));
  if (whole.size() > 18) return false;
  int64_t v = 0;
  for (char c : whole) v = v * 10 + (c - '0');
  if (whole.size() >= 12) {
    ms = v;  // milliseconds; a fraction of one is dropped
    return true;
  }
  int64_t f = 0;
  for (size_t k = 0; k < 3; ++k) f = f * 10 + (k < frac.size() ? frac[k] - '0' : 0);
  ms = v * 1000 + f;
  return true;
}

}  // namespace

bool parse_timestamp_ms(std::string_view s, int64_t& ms) {
  if (s.empty()) return false;
  size_t ndig = 0;
  while (ndig < s.size() && is_digit(s[ndig])) ++ndig;
  if (ndig == s.size()) {
    if (ndig > 18) return false;
    int64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    ms = ndig >= 12 ? v : v * 1000;
    return true;
  }
  if (ndig == 4 && s[4] == '-') return parse_iso(s, ms);
  if (ndig > 0 && (s[ndig] == '.' || s[ndig] == 'e' || s[ndig] == 'E')) return parse_unix_decimal(s, ms);
  return false;
}

std::string format_iso8601(int64_t t) {
  int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  int64_t rem = t - days * 86400;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", (long long)y, m, d,
                (long long)(rem / 3600), (long long)(rem / 60 % 60), (long long)(rem % 60));
  return buf;
}

std::string snippet(std::string_view s, size_t max_bytes) {
  size_t n = s.size();
  if (n > max_bytes) {
    n = max_bytes;
    // Back up over continuation bytes so a multi-byte character is kept whole or dropped.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  }
  std::string out;
  out.reserve(n + 32);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(char(c));
    }
  }
  if (n < s.size()) out += "...[" + std::to_string(s.size()) + " bytes in all]";
  return out;
}

bool parse_double(std::string_view s, double& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e && std::isfinite(out);
}

namespace {

inline bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool email_local(char c) {
  return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
inline bool email_domain(char c) { return is_alnum(c) || c == '.' || c == '-'; }

bool starts_with_ci(std::string_view s, size_t i, std::string_view pre) {
  if (i + pre.size() > s.size()) return false;
  for (size_t k = 0; k < pre.size(); ++k) {
    char c = s[i + k];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (c != pre[k]) return false;
  }
  return true;
}

struct Span {
  size_t b, e;
  const char* repl;
  int kind;
};

}  // namespace

std::string mask_pii(std::string_view s, int min_digit_run, PiiMaskCounts* counts) {
  // Fast exit: nothing that could start PII.
  bool maybe = false;
  for (char c : s)
    if (c == '@' || is_digit(c) || c == 'w' || c == 'W' || c == 'h' || c == 'H') { maybe = true; break; }
  if (!maybe) return std::string(s);

  std::vector<Span> spans;
  auto overlaps = [&](size_t b, size_t e) {
    for (auto& sp : spans)
      if (b < sp.e && sp.b < e) return true;
    return false;
  };
  // Emails.
  for (size_t at = s.find('@'); at != std::string_view::npos; at = s.find('@', at + 1)) {
    size_t l = at;
    while (l > 0 && email_local(s[l - 1])) --l;
    size_t r = at + 1;
    while (r < s.size() && email_domain(s[r])) ++r;
    while (r > at + 1 && (s[r - 1] == '.' || s[r - 1] == '-')) --r;  // trailing punctuation
    if (l == at || r == at + 1) continue;
    std::string_view dom = s.substr(at + 1, r - at - 1);
    size_t dot = dom.rfind('.');
    if (dot == std::string_view::npos || dot == 0 || dom.size() - dot - 1 < 2) continue;
    spans.push_back({l, r, "<email>", 0});
  }
  // URLs.
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && is_alnum(s[i - 1])) continue;
    if (starts_with_ci(s, i, "http://") || starts_with_ci(s, i, "https://") ||
        starts_with_ci(s, i, "www.")) {
      size_t r = i;
      while (r < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[r]);
        if (c <= ' ' || c >= 0x80 || c == '"' || c == '<' || c == '>' || c == '\'') break;
        ++r;
      }
      while (r > i && (s[r - 1] == '.' || s[r - 1] == ',' || s[r - 1] == ')' || s[r - 1] == '!' ||
                       s[r - 1] == '?'))
        --r;
      if (!overlaps(i, r)) spans.push_back({i, r, "<url>", 1});
      i = r;
    }
  }
  // Phone numbers and long digit runs.
  for (size_t i = 0; i < s.size();) {
    bool plus = s[i] == '+' && i + 1 < s.size() && is_digit(s[i + 1]);
    bool paren = s[i] == '(' && i + 1 < s.size() && is_digit(s[i + 1]);
    if (!(is_digit(s[i]) || plus || paren) || (i > 0 && is_alnum(s[i - 1]))) { ++i; continue; }
    size_t b = i, r = i + ((plus || paren) ? 1 : 0), last_digit_end = r;
    int digits = 0;
    bool sep = paren;
    while (r < s.size()) {
      char c = s[r];
      if (is_digit(c)) {
        ++digits;
        ++r;
        last_digit_end = r;
      } else if ((c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && r + 1 < s.size() &&
                 (is_digit(s[r + 1]) || (c == ')' && s[r + 1] == ' ' && r + 2 < s.size() &&
                                         is_digit(s[r + 2])))) {
        sep = true;
        ++r;
      } else {
        break;
      }
    }
    size_t e = last_digit_end;
    bool alnum_after = e < s.size() && is_alnum(s[e]);
    if (!alnum_after && !overlaps(b, e)) {
      bool phone = digits >= 7 && digits <= 15 && (plus || ((sep || digits == 10 || digits == 11) && digits >= 9));
      if (phone) spans.push_back({b, e, "<phone>", 2});
      else if (digits >= min_digit_run) spans.push_back({b, e, "<num>", 3});
    }
    i = std::max(e, i + 1);
  }
  if (spans.empty()) return std::string(s);
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.b < b.b; });
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (auto& sp : spans) {
    out.append(s.substr(pos, sp.b - pos));
    out += sp.repl;
    pos = sp.e;
    if (counts) {
      if (sp.kind == 0) ++counts->email;
      else if (sp.kind == 1) ++counts->url;
      else if (sp.kind == 2) ++counts->phone;
      else ++counts->digits;
    }
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace portrait::data
