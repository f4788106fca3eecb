#include <gtest/gtest.h>

#include <cmath>

#include "config_fixture.h"
#include "core/config/override.h"
#include "core/config/yaml_io.h"
#include "core/error.h"

namespace portrait::cfg {
namespace {

using portrait::testing::at;

TEST(YamlTyping, PlainScalarsFollowYaml11AndOmegaConf) {
  Node n = load_yaml_string(
      "a: yes\nb: Off\nc: 12\nd: 1e-3\ne: 1.5\nf: .inf\ng: -.inf\nh: .nan\ni: ~\nj: null\nk:\n"
      "l: 0x1f\nm: hello world\nn: 1_000\n",
      "t.yaml");
  EXPECT_TRUE(at(n, "a").is_bool() && at(n, "a").as_bool());
  EXPECT_TRUE(at(n, "b").is_bool() && !at(n, "b").as_bool());
  EXPECT_EQ(at(n, "c").as_int(), 12);
  ASSERT_TRUE(at(n, "d").is_float());
  EXPECT_DOUBLE_EQ(at(n, "d").as_double(), 1e-3);
  EXPECT_DOUBLE_EQ(at(n, "e").as_double(), 1.5);
  EXPECT_TRUE(std::isinf(at(n, "f").as_double()) && at(n, "f").as_double() > 0);
  EXPECT_TRUE(std::isinf(at(n, "g").as_double()) && at(n, "g").as_double() < 0);
  EXPECT_TRUE(std::isnan(at(n, "h").as_double()));
  EXPECT_TRUE(at(n, "i").is_null());
  EXPECT_TRUE(at(n, "j").is_null());
  EXPECT_TRUE(at(n, "k").is_null());
  EXPECT_EQ(at(n, "l").as_int(), 31);
  EXPECT_EQ(at(n, "m").as_string(), "hello world");
  EXPECT_EQ(at(n, "n").as_int(), 1000);
}

TEST(YamlTyping, QuotedScalarsAlwaysStayStrings) {
  Node n = load_yaml_string("a: 'yes'\nb: \"12\"\nc: '1e-3'\nd: 'null'\n", "t.yaml");
  for (const char* k : {"a", "b", "c", "d"}) EXPECT_TRUE(at(n, k).is_string()) << k;
  EXPECT_EQ(at(n, "b").as_string(), "12");
}

TEST(YamlLoad, MalformedYamlNamesFileAndLine) {
  portrait::testing::TempDir d;
  d.write("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n");
  try {
    load_yaml_file(d.path() / "bad.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find((d.path() / "bad.yaml").string() + ":"), std::string::npos) << m;
    EXPECT_NE(m.find("malformed YAML"), std::string::npos) << m;
  }
}

// Found by fuzz_compose: a key starting with the bytes FE FF was written back by to_yaml at
// the start of a document, where yaml-cpp took them for a UTF-16 byte order mark, so the
// resolved config did not load back as itself. Text that is not UTF-8 is now refused on load
// (and in overrides), naming the file, line and column.
TEST(YamlLoad, TextThatIsNotUtf8IsRefusedNamingFileLineAndColumn) {
  try {
    load_yaml_string("a: 1\nb:\n  c\xfe\xff: 2\n", "x.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("x.yaml:3:4: not valid UTF-8 (byte 0xfe)"), std::string::npos) << m;
  }
  EXPECT_THROW(load_yaml_string("\xfe\xff: 1\n", "y.yaml"), ConfigError);
  EXPECT_THROW(load_yaml_string("a: \xc0\xaf\n", "overlong.yaml"), ConfigError);  // overlong '/'
  EXPECT_NO_THROW(load_yaml_string("name: \xe7\x94\xa8\xe6\x88\xb7\xe7\x94\xbb\xe5\x83\x8f\n", "zh.yaml"));
  // Characters YAML does not allow in a stream: a raw NUL (yaml-cpp read "\0_" as a lone byte
  // 0xA0), C0 controls, DEL; tab, CR and LF are fine, and escapes inside double quotes load.
  try {
    load_yaml_string(std::string("a: g@o\0_x\n", 10), "nul.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("nul.yaml:1:7: character U+0000 is not allowed"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_yaml_string("defau\x1dlts: 1\n", "c0.yaml"), ConfigError);
  EXPECT_THROW(load_yaml_string("a: d\x7f\n", "del.yaml"), ConfigError);
  EXPECT_NO_THROW(load_yaml_string("a: b\tc\r\nd: \"x\\x1dy\\0\"\n", "ok.yaml"));
  // yaml-cpp decodes the escapes \_ and \N into the lone bytes 0xA0 / 0x85; they load as
  // U+00A0 / U+0085 in UTF-8, and to_yaml writes them so that they load back as themselves.
  const Node esc = load_yaml_string("a: \"x\\_y\\Nz\"\n", "esc.yaml");
  EXPECT_EQ(at(esc, "a").as_string(), "x\xc2\xa0y\xc2\x85z");
  EXPECT_EQ(at(load_yaml_string(to_yaml(esc), "back.yaml"), "a").as_string(), "x\xc2\xa0y\xc2\x85z");
  EXPECT_THROW(parse_override("a=\xff"), UsageError);
  EXPECT_NO_THROW(parse_override("a=\xe7\x94\xbb\xe5\x83\x8f"));
}

TEST(YamlLoad, DuplicateKeyIsAnErrorWithItsLine) {
  try {
    load_yaml_string("a: 1\nb: 2\na: 3\n", "dup.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("dup.yaml:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("duplicate key 'a'"), std::string::npos) << e.what();
  }
}

TEST(YamlLoad, NodesRememberFileAndLine) {
  Node n = load_yaml_string("a:\n  b: 1\n  c: x\n", "m.yaml");
  EXPECT_EQ(at(n, "a.c").mark.str(), "m.yaml:3");
}

TEST(YamlEmit, RoundTripKeepsTypesAndQuotesAmbiguousStrings) {
  Node n = Node::map();
  n["s_yes"] = Node::string("yes");
  n["s_num"] = Node::string("12");
  n["s_empty"] = Node::string("");
  n["s_colon"] = Node::string("a: b");
  n["s_nl"] = Node::string("line1\nline2");
  n["b"] = Node::boolean(false);
  n["i"] = Node::integer(-3);
  n["f"] = Node::floating(0.25);
  n["f_whole"] = Node::floating(2.0);
  n["inf"] = Node::floating(INFINITY);
  n["nul"] = Node();
  n["list"].push_back(Node::integer(1));
  n["list"].push_back(Node::string("two"));
  n["empty_map"] = Node::map();
  n["empty_list"] = Node::list();
  Node inner = Node::map();
  inner["x"] = Node::integer(1);
  n["list_of_maps"].push_back(inner);
  std::string y = to_yaml(n);
  Node back = load_yaml_string(y, "rt.yaml");
  EXPECT_TRUE(back == n) << y;
}

TEST(YamlEmit, KeysLongerThanYamlsImplicitKeyLimitRoundTrip) {
  // Found by fuzz_compose: a key over 1024 characters was written as "key: value", which YAML
  // (and yaml-cpp) refuse to read back ("illegal map value").
  const std::string long_key(1500, 'k');
  Node n = Node::map();
  n[long_key] = Node::string("a");
  n["short"] = Node::integer(1);
  Node inner = Node::map();
  inner[long_key + "x"] = Node::integer(2);
  inner["y"] = Node::list();
  inner["y"].push_back(Node::integer(3));
  n["nested"] = inner;
  Node list_val = Node::list();
  list_val.push_back(Node::string("p"));
  list_val.push_back(inner);
  n[long_key + "list"] = list_val;
  n[long_key + "map"] = inner;
  const std::string y = to_yaml(n);
  Node back = load_yaml_string(y, "long.yaml");
  EXPECT_TRUE(back == n) << y.substr(0, 400);
}

}  // namespace
}  // namespace portrait::cfg
