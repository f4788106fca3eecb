#include <gtest/gtest.h>

#include <cstdlib>

#include "config_fixture.h"
#include "core/config/section.h"
#include "core/config/yaml_io.h"

namespace portrait::cfg {
namespace {

using portrait::testing::at;

Node R(const std::string& yaml, const ResolveContext& ctx = {}) {
  return resolve(load_yaml_string(yaml, "t.yaml"), ctx);
}

std::string error_of_resolve(const std::string& yaml) {
  try {
    R(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Interpolation, AbsoluteReferenceKeepsTheTargetType) {
  Node n = R("model:\n  d: 64\n  drop: 0.5\nhead:\n  d: ${model.d}\n  p: ${model.drop}\n  m: ${model}\n");
  EXPECT_TRUE(at(n, "head.d").is_int());
  EXPECT_EQ(at(n, "head.d").as_int(), 64);
  EXPECT_DOUBLE_EQ(at(n, "head.p").as_double(), 0.5);
  EXPECT_TRUE(at(n, "head.m").is_map());
  EXPECT_EQ(at(n, "head.m.d").as_int(), 64);
}

TEST(Interpolation, RelativeReferencesClimbFromTheParent) {
  Node n = R("a:\n  x: 1\n  b:\n    x: 2\n    s: ${.x}\n    p: ${..x}\n  t: ${.x}\n");
  EXPECT_EQ(at(n, "a.b.s").as_int(), 2);
  EXPECT_EQ(at(n, "a.b.p").as_int(), 1);
  EXPECT_EQ(at(n, "a.t").as_int(), 1);
}

TEST(Interpolation, StringInterpolationRendersEachPiece) {
  Node n = R("name: tiny\nlr: 1e-3\nrun: run_${name}_lr${lr}_${flag}\nflag: true\n");
  EXPECT_EQ(at(n, "run").as_string(), "run_tiny_lr0.001_true");
}

TEST(Interpolation, ChainsResolveInAnyOrder) {
  Node n = R("a: ${b}\nb: ${c}\nc: 3\n");
  EXPECT_EQ(at(n, "a").as_int(), 3);
}

TEST(Interpolation, ReferencesThroughAnInterpolatedDict) {
  Node n = R("m:\n  d: 4\nalias: ${m}\nx: ${alias.d}\n");
  EXPECT_EQ(at(n, "x").as_int(), 4);
}

TEST(Interpolation, EnvironmentVariablesWithAndWithoutDefaults) {
  ::setenv("PORTRAIT_TEST_ENV", "from-env", 1);
  ::unsetenv("PORTRAIT_TEST_UNSET");
  Node n = R("a: ${oc.env:PORTRAIT_TEST_ENV}\nb: ${oc.env:PORTRAIT_TEST_UNSET,fallback}\n"
             "c: ${oc.env:PORTRAIT_TEST_UNSET,null}\nd: ${oc.env:PORTRAIT_TEST_UNSET,'x,y'}\n");
  EXPECT_EQ(at(n, "a").as_string(), "from-env");
  EXPECT_EQ(at(n, "b").as_string(), "fallback");
  EXPECT_TRUE(at(n, "c").is_null());
  EXPECT_EQ(at(n, "d").as_string(), "x,y");
  std::string e = error_of_resolve("a: ${oc.env:PORTRAIT_TEST_UNSET}\n");
  EXPECT_NE(e.find("Environment variable 'PORTRAIT_TEST_UNSET' not found"), std::string::npos) << e;
}

TEST(Interpolation, ResolverDefaultsMayThemselvesInterpolate) {
  ::unsetenv("PORTRAIT_TEST_UNSET");
  Node n = R("base: /data\np: ${oc.env:PORTRAIT_TEST_UNSET,${base}/x}\n");
  EXPECT_EQ(at(n, "p").as_string(), "/data/x");
}

TEST(Interpolation, NowUsesOneTimestampPerRun) {
  ResolveContext ctx;
  ctx.now = 86400 * 365;  // 1971-01-01 (UTC); local time zone may shift the hour
  Node n = R("d: ${now:%Y}\nt: x_${now:%Y}\n", ctx);
  EXPECT_TRUE(at(n, "d").as_string() == "1971" || at(n, "d").as_string() == "1970");
  EXPECT_EQ(at(n, "t").as_string(), "x_" + at(n, "d").as_string());
}

TEST(Interpolation, EscapedDollarBraceStaysLiteral) {
  Node n = R("a: 1\nb: '\\${a}'\nc: 'x \\${a} ${a}'\n");
  EXPECT_EQ(at(n, "b").as_string(), "${a}");
  EXPECT_EQ(at(n, "c").as_string(), "x ${a} 1");
}

TEST(Interpolation, CyclesAreReportedWithTheChainAndDoNotHang) {
  std::string e = error_of_resolve("a: ${b}\nb: ${c}\nc: ${a}\n");
  EXPECT_NE(e.find("Recursive interpolation detected: a -> b -> c -> a"), std::string::npos) << e;
  std::string self = error_of_resolve("a: ${a}\n");
  EXPECT_NE(self.find("Recursive interpolation detected"), std::string::npos) << self;
  std::string via_dict = error_of_resolve("a:\n  b: ${a}\n");
  EXPECT_NE(via_dict.find("Recursive interpolation detected"), std::string::npos) << via_dict;
}

TEST(Interpolation, MissingKeyNamesTheReferenceAndTheHolder) {
  std::string e = error_of_resolve("a:\n  b: ${nosuch.key}\n");
  EXPECT_NE(e.find("Interpolation key 'nosuch.key' not found"), std::string::npos) << e;
  EXPECT_NE(e.find("full_key: a.b"), std::string::npos) << e;
}

TEST(Interpolation, MandatoryValueFailsWhenReadNotBefore) {
  Node n = R("train:\n  data: ???\n  lr: 0.1\n");
  EXPECT_TRUE(at(n, "train.data").is_missing());
  Section s(n, "train");
  double lr = 0;
  s.read("lr", lr);
  EXPECT_DOUBLE_EQ(lr, 0.1);
  std::string path;
  try {
    s.read("data", path);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("Missing mandatory value: train.data\n    full_key: train.data"),
              std::string::npos)
        << e.what();
  }
}

TEST(Interpolation, HydraResolverReadsTheHydraConfig) {
  Node hydra = Node::map();
  hydra["runtime"]["output_dir"] = Node::string("/runs/x");
  ResolveContext ctx;
  ctx.hydra = &hydra;
  Node n = R("out: ${hydra:runtime.output_dir}/ckpt\n", ctx);
  EXPECT_EQ(at(n, "out").as_string(), "/runs/x/ckpt");
}

TEST(Interpolation, InterpolationsInsideListsResolve) {
  Node n = R("d: 8\nsizes:\n  - ${d}\n  - 16\n");
  EXPECT_EQ(at(n, "sizes.0").as_int(), 8);
}

TEST(Interpolation, SplicingADictIntoTextIsAnError) {
  std::string e = error_of_resolve("m: {a: 1}\ns: x_${m}\n");
  EXPECT_NE(e.find("refers to a dict or list"), std::string::npos) << e;
}

}  // namespace
}  // namespace portrait::cfg
