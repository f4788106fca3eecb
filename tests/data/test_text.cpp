#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/io.h"
#include "core/rng.h"
#include "data/text.h"

using namespace portrait::data;
using portrait::Rng;
namespace fs = std::filesystem;

TEST(Timestamp, UnixSecondsMillisAndIsoAgree) {
  int64_t a, b, c, d, e;
  ASSERT_TRUE(parse_timestamp_ms("1700000000", a));
  ASSERT_TRUE(parse_timestamp_ms("1700000000000", b));
  ASSERT_TRUE(parse_timestamp_ms("2023-11-14T22:13:20Z", c));
  ASSERT_TRUE(parse_timestamp_ms("2023-11-15T06:13:20+08:00", d));
  ASSERT_TRUE(parse_timestamp_ms("2023-11-14 22:13:20.000", e));
  EXPECT_EQ(a, 1700000000000);
  EXPECT_EQ(b, a);
  EXPECT_EQ(c, a);
  EXPECT_EQ(d, a);
  EXPECT_EQ(e, a);
  int64_t f;
  ASSERT_TRUE(parse_timestamp_ms("1700000000.25", f));
  EXPECT_EQ(f, 1700000000250);
  ASSERT_TRUE(parse_timestamp_ms("2024-02-29", f));
  EXPECT_EQ(format_iso8601(f / 1000), "2024-02-29T00:00:00Z");
}

TEST(Timestamp, ImpossibleDatesAndGarbageAreRejected) {
  int64_t v;
  for (const char* s : {"", "yesterday", "2024-13-01", "2023-02-29", "2024-01-01T25:00:00",
                        "2024-01-01T10:00:00X", "12ab", "1700000000.", "2024-1-1"})
    EXPECT_FALSE(parse_timestamp_ms(s, v)) << s;
}

TEST(Timestamp, DecimalUnixNumbersAreAcceptedWithTheFractionFloored) {
  // Exports that went through a float column (spreadsheets, JSON encoders, pandas) write
  // unix times with a fraction or an exponent; sub-millisecond parts are dropped, never
  // rounded up, so a time never moves past a cut-off.
  const std::pair<const char*, int64_t> ok[] = {
      {"1700000000000.0", 1700000000000}, {"1700000000000.999", 1700000000000},
      {"1700000000.5", 1700000000500},    {"1700000000.1239", 1700000000123},
      {"1.7e12", 1700000000000},          {"1.7E+9", 1700000000000},
      {"17000000000000e-1", 1700000000000}, {"1.7000000001e12", 1700000000100}};
  for (auto& [s, want] : ok) {
    int64_t v = 0;
    ASSERT_TRUE(parse_timestamp_ms(s, v)) << s;
    EXPECT_EQ(v, want) << s;
  }
  int64_t v;
  for (const char* s : {"nan", "inf", "1e", "1.7e", "-1700000000", "1.2.3", "1700000000.", ".5",
                        "1e400", "1.7e12x", "0x1p40"})
    EXPECT_FALSE(parse_timestamp_ms(s, v)) << s;
}

TEST(Snippet, LongTextIsCutToTheBoundAndSaysItsFullLength) {
  EXPECT_EQ(snippet("short"), "short");
  const std::string s = snippet(std::string(1 << 20, 'x'));
  EXPECT_LT(s.size(), 260u);
  EXPECT_EQ(s.rfind(std::string(200, 'x'), 0), 0u);
  EXPECT_NE(s.find("1048576 bytes"), std::string::npos) << s;
  // Never cuts a UTF-8 character in two.
  std::string zh;
  for (int i = 0; i < 100; ++i) zh += "质";
  EXPECT_TRUE(valid_utf8(snippet(zh, 200)));
  // Control bytes are shown escaped, so a snippet cannot break a log line or a terminal.
  EXPECT_EQ(snippet(std::string("a\0b\x1b" "c", 5)).find('\x1b'), std::string::npos);
}

TEST(Utf8, AcceptsChineseAndEmojiRejectsBrokenSequences) {
  EXPECT_TRUE(valid_utf8("plain ascii text that is long enough"));
  EXPECT_TRUE(valid_utf8("质量很好 😀"));
  EXPECT_FALSE(valid_utf8("bad \xff\xfe"));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8("truncated \xe8\xb4"));
}

TEST(PiiMask, EmailsAreMasked) {
  PiiMaskCounts c;
  EXPECT_EQ(mask_pii("mail jane.doe42@example.com now", 9, &c), "mail <email> now");
  EXPECT_EQ(c.email, 1);
  EXPECT_EQ(mask_pii("联系我 a_b+c@shop.co.uk。"), "联系我 <email>。");
}

TEST(PiiMask, PhoneNumbersAreMasked) {
  PiiMaskCounts c;
  EXPECT_EQ(mask_pii("call 138-1234-5678 today", 9, &c), "call <phone> today");
  EXPECT_EQ(mask_pii("call +86 139 1234 0000"), "call <phone>");
  EXPECT_EQ(mask_pii("(555) 123-4567 anytime"), "<phone> anytime");
  EXPECT_EQ(mask_pii("13812345678"), "<phone>");
  EXPECT_EQ(c.phone, 1);
}

TEST(PiiMask, LongDigitRunsLikeCardAndIdNumbersAreMasked) {
  PiiMaskCounts c;
  EXPECT_EQ(mask_pii("card 4111 1111 1111 1111 ok", 9, &c), "card <num> ok");
  EXPECT_EQ(mask_pii("身份证 110101199003074321"), "身份证 <num>");
  EXPECT_EQ(c.digits, 1);
}

TEST(PiiMask, UrlsAreMasked) {
  PiiMaskCounts c;
  EXPECT_EQ(mask_pii("see https://shop.example.com/r/1234?a=b, thanks", 9, &c), "see <url>, thanks");
  EXPECT_EQ(mask_pii("www.example.org."), "<url>.");
  EXPECT_EQ(c.url, 1);
}

TEST(PiiMask, OrdinaryNumbersAndTextSurvive) {
  for (const char* s : {"costs 12.99, size 42", "5 stars 很好", "bought 3 in 2024", "model X200"})
    EXPECT_EQ(mask_pii(s), s);
}

TEST(Csv, SplitHandlesQuotesEscapesAndEmptyFields) {
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  ASSERT_TRUE(split_csv(R"(a,"b,c","say ""hi""",,)", ',', f, scratch));
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[0], "a");
  EXPECT_EQ(f[1], "b,c");
  EXPECT_EQ(f[2], "say \"hi\"");
  EXPECT_EQ(f[3], "");
  EXPECT_EQ(f[4], "");
  ASSERT_TRUE(split_csv("x\t\"multi\nline\"", '\t', f, scratch));
  EXPECT_EQ(f[1], "multi\nline");
  EXPECT_FALSE(split_csv(R"(a,"unterminated)", ',', f, scratch));
  EXPECT_FALSE(split_csv(R"(a,"b"c)", ',', f, scratch));
  std::string out;
  append_csv_field(out, "he said \"x, y\"");
  EXPECT_EQ(out, R"("he said ""x, y""")");
}

TEST(Csv, SeveralEscapedFieldsInOneRecordAllReadBack) {
  // Found by fuzz_rows: each field with a doubled quote is unescaped into `scratch`, and
  // growing it moved the short strings the earlier fields' views pointed into (heap use
  // after free under ASan; garbage field values without it).
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  ASSERT_TRUE(split_csv(R"("a""b","c""d",x,"e""f")", ',', f, scratch));
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0], "a\"b");
  EXPECT_EQ(f[1], "c\"d");
  EXPECT_EQ(f[2], "x");
  EXPECT_EQ(f[3], "e\"f");
}

TEST(RecordReader, JoinsQuotedNewlinesAndReportsFirstLineNumbers) {
  auto p = fs::temp_directory_path() / ("portrait_rr_" + std::to_string(::getpid()) + ".csv");
  { std::ofstream(p) << "h1,h2\r\na,\"x\ny\"\nb,2\nc,\"open\nd,4\n"; }
  RecordReader r(p, true, 2);
  std::string_view rec;
  int64_t line;
  std::vector<std::pair<std::string, int64_t>> got;
  while (r.next(rec, line)) got.emplace_back(std::string(rec), line);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0], std::make_pair(std::string("h1,h2"), int64_t{1}));
  EXPECT_EQ(got[1], std::make_pair(std::string("a,\"x\ny\""), int64_t{2}));
  EXPECT_EQ(got[2], std::make_pair(std::string("b,2"), int64_t{4}));
  // The open quote is given up after 2 lines: the line comes back alone, reading resumes.
  EXPECT_EQ(got[3], std::make_pair(std::string("c,\"open"), int64_t{5}));
  EXPECT_EQ(got[4], std::make_pair(std::string("d,4"), int64_t{6}));
  fs::remove(p);
}

TEST(RecordReader, ReadsGzipTransparently) {
  auto p = fs::temp_directory_path() / ("portrait_rr_" + std::to_string(::getpid()) + ".csv.gz");
  {
    TextWriter w(p, true);
    w.write("a,b\n1,2\n");
    w.commit();
  }
  RecordReader r(p, true);
  std::string_view rec;
  int64_t line;
  ASSERT_TRUE(r.next(rec, line));
  EXPECT_EQ(rec, "a,b");
  ASSERT_TRUE(r.next(rec, line));
  EXPECT_EQ(rec, "1,2");
  EXPECT_EQ(line, 2);
  EXPECT_FALSE(r.next(rec, line));
  fs::remove(p);
}

TEST(RecordReader, TruncatedGzipIsAnErrorNamingTheFile) {
  auto p = fs::temp_directory_path() / ("portrait_rr_trunc_" + std::to_string(::getpid()) + ".csv.gz");
  {
    TextWriter w(p, true, 6);
    for (int i = 0; i < 100000; ++i) w.write("row," + std::to_string(i * 7919) + "\n");
    w.commit();
  }
  for (uintmax_t keep : {fs::file_size(p) - 4, fs::file_size(p) * 3 / 4}) {  // trailer cut, body cut
    fs::resize_file(p, keep);
    RecordReader r(p, true);
    std::string_view rec;
    int64_t line;
    try {
      while (r.next(rec, line)) {
      }
      FAIL() << "a gzip cut to " << keep << " bytes read as complete";
    } catch (const portrait::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  fs::remove(p);
}

TEST(Rng, SameSeedSameStreamDifferentSeedDifferentStream) {
  Rng a(7), b(7), c(8);
  bool differ = false;
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    differ |= x != c.next();
  }
  EXPECT_TRUE(differ);
  Rng d(1);
  double s = 0;
  for (int i = 0; i < 10000; ++i) s += d.exponential(2.0);
  EXPECT_NEAR(s / 10000, 0.5, 0.03);
}
