// Fuzz target: the row parser of `portrait prep` (data/io.h, data/text.h): the input file as
// RecordReader reads it (plain or gzip by content; CSV/TSV quote-aware record joining, JSON
// Lines by line), each record split as prep splits it (split_csv / parse_json_record), and
// every field through the validators prep runs on it (UTF-8, timestamp, number, PII masking,
// snippets for messages).
//
// Input: byte 0 picks the format (bits 0-1: csv, tsv, jsonl) and RecordReader's open-quote
// limit (bits 2-4: 1..8 lines); the rest is the file's content.
// Properties checked besides "no crash": a split CSV record re-encoded with append_csv_field
// splits back into the same fields; masked text of valid UTF-8 stays valid UTF-8; a parsed
// ISO timestamp re-formatted (whole seconds) parses back to the same second; line numbers
// increase.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "data/io.h"
#include "data/text.h"
#include "fuzz/fuzz_util.h"

using namespace portrait;

namespace {

void check_field(std::string_view v) {
  const bool utf8 = data::valid_utf8(v);
  (void)data::snippet(v);
  (void)data::snippet(v, 16);
  int64_t ms = 0;
  if (data::parse_timestamp_ms(v, ms) && ms >= 0 && ms < 253402300800000LL) {  // year < 10000
    const std::string iso = data::format_iso8601(ms / 1000);
    int64_t back = -1;
    if (!data::parse_timestamp_ms(iso, back) || back != ms / 1000 * 1000)
      fuzz::property_failed("format_iso8601 of a parsed timestamp does not parse back");
  }
  double x = 0;
  (void)data::parse_double(v, x);
  data::PiiMaskCounts counts;
  const std::string masked = data::mask_pii(v, 9, &counts);
  if (utf8 && !data::valid_utf8(masked)) fuzz::property_failed("mask_pii broke valid UTF-8");
  (void)data::mask_pii(v, 1, nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int format = data[0] & 3;  // 0 csv, 1 tsv, 2 jsonl, 3 csv
  const int max_lines = 1 + ((data[0] >> 2) & 7);
  const bool is_json = format == 2;
  const char sep = format == 1 ? '\t' : ',';
  const auto path = fuzz::scratch_dir() / "rows.txt";
  fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));

  fuzz::expect_clean_errors([&] {
    data::RecordReader rr(path, !is_json, max_lines);
    std::string_view rec;
    int64_t line = 0, last_line = 0;
    std::vector<std::string_view> fields, again;
    std::vector<std::string> scratch, scratch2;
    std::string encoded;
    while (rr.next(rec, line)) {
      if (line <= last_line) fuzz::property_failed("RecordReader line numbers do not increase");
      last_line = line;
      (void)rr.bytes_read();
      if (is_json) {
        nlohmann::json j;
        const std::string why = data::parse_json_record(rec, j);
        (void)data::snippet(why);
        if (j.is_object())
          for (auto& [k, val] : j.items()) {
            check_field(k);
            if (val.is_string()) check_field(val.get_ref<const std::string&>());
            else check_field(val.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
          }
        continue;
      }
      check_field(rec);
      if (!data::split_csv(rec, sep, fields, scratch)) continue;
      // Copy: `fields` may point into `scratch`, which the next split reuses.
      std::vector<std::string> copy(fields.begin(), fields.end());
      encoded.clear();
      for (size_t i = 0; i < copy.size(); ++i) {
        if (i) encoded.push_back(sep);
        data::append_csv_field(encoded, copy[i], sep);
      }
      if (!data::split_csv(encoded, sep, again, scratch2) || again.size() != copy.size())
        fuzz::property_failed("a re-encoded CSV record does not split into as many fields");
      for (size_t i = 0; i < copy.size(); ++i) {
        if (again[i] != copy[i]) fuzz::property_failed("a re-encoded CSV field reads back differently");
        check_field(copy[i]);
      }
    }
  });
  return 0;
}
