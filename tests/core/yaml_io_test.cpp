#include <gtest/gtest.h>

#include <cmath>

#include "config_fixture.h"
#include "core/config/yaml_io.h"

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
