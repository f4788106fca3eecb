// YAML 1.1 as OmegaConf reads it (PyYAML's SafeLoader resolvers, OmegaConf's extra float,
// no timestamps) and as its dumper writes it, plus OmegaConf's interpolation escapes and
// list indexing. Expected values were checked against PyYAML 6 + OmegaConf 2.3.
#include <gtest/gtest.h>

#include "config_fixture.h"
#include "core/config/yaml_io.h"

namespace portrait::cfg {
namespace {

using portrait::testing::at;

TEST(Yaml11, LeadingZeroIsOctalAndOtherRadixPrefixesWork) {
  Node n = load_yaml_string("a: 010\nb: 0o10\nc: 08\nd: 0b101\ne: -0x1F\nf: 0\n", "t.yaml");
  EXPECT_EQ(at(n, "a").as_int(), 8);
  EXPECT_EQ(at(n, "b").as_string(), "0o10");  // YAML 1.2 spelling: a string in 1.1
  EXPECT_EQ(at(n, "c").as_string(), "08");    // not octal, not decimal
  EXPECT_EQ(at(n, "d").as_int(), 5);
  EXPECT_EQ(at(n, "e").as_int(), -31);
  EXPECT_EQ(at(n, "f").as_int(), 0);
}

TEST(Yaml11, ColonSeparatedNumbersAreSexagesimal) {
  Node n = load_yaml_string("a: 1:30\nb: 1:30.5\nc: 190:20:30\nd: 1:70\n", "t.yaml");
  EXPECT_EQ(at(n, "a").as_int(), 90);
  ASSERT_TRUE(at(n, "b").is_float());
  EXPECT_DOUBLE_EQ(at(n, "b").as_double(), 90.5);
  EXPECT_EQ(at(n, "c").as_int(), 685230);
  EXPECT_EQ(at(n, "d").as_string(), "1:70");  // 70 is not a base-60 digit
}

TEST(Yaml11, FloatsFollowPyYamlPlusOmegaConfsExponentForm) {
  Node n = load_yaml_string("a: -.5\nb: 1.5e3\nc: 1e3\nd: 1.\n", "t.yaml");
  EXPECT_EQ(at(n, "a").as_string(), "-.5");  // PyYAML's float needs a digit before a signed dot
  EXPECT_DOUBLE_EQ(at(n, "b").as_double(), 1500.0);
  EXPECT_DOUBLE_EQ(at(n, "c").as_double(), 1000.0);
  EXPECT_DOUBLE_EQ(at(n, "d").as_double(), 1.0);
}

TEST(Yaml11, IntKeysStayIntKeysAndPrintUnquoted) {
  Node n = load_yaml_string("m: {1: one, '2': two, 0x10: hex}\n", "t.yaml");
  const Node& m = at(n, "m");
  EXPECT_EQ(m.key_kind("1"), Node::Kind::kInt);
  EXPECT_EQ(m.key_kind("2"), Node::Kind::kString);
  EXPECT_EQ(at(n, "m.16").as_string(), "hex");
  EXPECT_EQ(to_yaml(n), "m:\n  1: one\n  '2': two\n  16: hex\n");
  Node merged = Node::map();
  merge_into(merged, n);  // composition keeps the key's type
  EXPECT_EQ(to_yaml(merged), to_yaml(n));
}

TEST(Yaml11, FloatKeysStayFloatKeysAndPrintInTheirCanonicalForm) {
  Node n = load_yaml_string("m: {1.5: a, 1e3: b, '2.5': c}\n", "t.yaml");
  const Node& m = at(n, "m");
  EXPECT_EQ(m.key_kind("1.5"), Node::Kind::kFloat);
  EXPECT_EQ(m.key_kind("2.5"), Node::Kind::kString);
  EXPECT_EQ(to_yaml(n), "m:\n  1.5: a\n  1000.0: b\n  '2.5': c\n");  // as OmegaConf.to_yaml
}

TEST(Yaml11, DatesStayStringsAndAreQuotedOnOutput) {
  Node n = load_yaml_string("d: 2024-01-02\nt: 2001-12-14 21:59:43.10 -5\n", "t.yaml");
  EXPECT_EQ(at(n, "d").as_string(), "2024-01-02");
  // Unquoted, PyYAML's safe_load would read these back as datetime objects.
  EXPECT_EQ(to_yaml(n), "d: '2024-01-02'\nt: '2001-12-14 21:59:43.10 -5'\n");
}

TEST(Yaml11, StringsThatWouldRetypeAreQuotedLikeOmegaConfQuotesThem) {
  Node n = Node::map();
  for (const char* s : {"010", "1:30", "08", "inf", ".5e3", "1e3", "n", "yes", "0o10", "-.5x"})
    n[s] = Node::string(s);
  EXPECT_EQ(to_yaml(n),
            "'010': '010'\n'1:30': '1:30'\n'08': '08'\n'inf': 'inf'\n'.5e3': '.5e3'\n"
            "'1e3': '1e3'\n'n': 'n'\n'yes': 'yes'\n0o10: 0o10\n-.5x: -.5x\n");
  Node back = load_yaml_string(to_yaml(n), "back.yaml");
  EXPECT_EQ(back, n);
}

TEST(Interpolation, EvenBackslashesBeforeAnInterpolationAreEscapedBackslashes) {
  Node n = load_yaml_string(
      "a: 5\nb: \\\\${a}\nc: \\${a}\nd: \\\\\\${a}\ne: C:\\\\dir_${a}\n", "t.yaml");
  Node r = resolve(n);
  EXPECT_EQ(at(r, "b").as_string(), "\\5");
  EXPECT_EQ(at(r, "c").as_string(), "${a}");
  EXPECT_EQ(at(r, "d").as_string(), "\\${a}");
  EXPECT_EQ(at(r, "e").as_string(), "C:\\\\dir_5");  // backslashes elsewhere are kept
}

TEST(Interpolation, BracketsIndexListsAndDicts) {
  Node n = load_yaml_string("l: [a, b, c]\nm: {k: [1, {x: 7}]}\ni: ${l[1]}\nj: ${m[k][1].x}\n"
                            "s: ${oc.select:l[2],none}\n",
                            "t.yaml");
  Node r = resolve(n);
  EXPECT_EQ(at(r, "i").as_string(), "b");
  EXPECT_EQ(at(r, "j").as_int(), 7);
  EXPECT_EQ(at(r, "s").as_string(), "c");
}

}  // namespace
}  // namespace portrait::cfg
