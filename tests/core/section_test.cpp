#include <gtest/gtest.h>

#include "config_fixture.h"
#include "core/config/section.h"
#include "core/config/yaml_io.h"

namespace portrait::cfg {
namespace {

struct Params {
  double lr = 1e-3;    // default kept when the key is absent
  int64_t steps = 10;
  std::string schedule = "cosine";
  bool amp = false;
  std::vector<int64_t> dims;
};

Params read_params(const Node& root) {
  Params p;
  Section s(root, "train");
  s.read("lr", p.lr, 0.0, 10.0);
  s.read("steps", p.steps, int64_t{1});
  s.read_enum("schedule", p.schedule, {"cosine", "linear", "constant"});
  s.read("amp", p.amp);
  s.read("dims", p.dims);
  s.finish();
  return p;
}

std::string error_of(const std::string& yaml) {
  try {
    read_params(load_yaml_string(yaml, "cfg.yaml"));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(TypedConfig, AbsentKeysKeepStructDefaults) {
  Params p = read_params(load_yaml_string("train:\n  steps: 5\n", "cfg.yaml"));
  EXPECT_DOUBLE_EQ(p.lr, 1e-3);
  EXPECT_EQ(p.steps, 5);
  EXPECT_EQ(p.schedule, "cosine");
}

TEST(TypedConfig, ValuesAreReadWithTheirTypes) {
  Params p = read_params(load_yaml_string(
      "train:\n  lr: 2\n  steps: 7\n  schedule: linear\n  amp: on\n  dims: [1, 2]\n", "cfg.yaml"));
  EXPECT_DOUBLE_EQ(p.lr, 2.0);  // an int is accepted for a float
  EXPECT_EQ(p.schedule, "linear");
  EXPECT_TRUE(p.amp);
  EXPECT_EQ(p.dims, (std::vector<int64_t>{1, 2}));
}

TEST(TypedConfig, OutOfRangeNamesKeyValueLocationAndRange) {
  std::string e = error_of("train:\n  lr: -1\n");
  EXPECT_EQ(e, "config key 'train.lr' = -1 (cfg.yaml:2) is out of range; allowed: [0, 10]");
}

TEST(TypedConfig, WrongTypeIsRejected) {
  EXPECT_NE(error_of("train:\n  steps: 1.5\n").find("must be an integer, got float"), std::string::npos);
  EXPECT_NE(error_of("train:\n  amp: maybe\n").find("must be a bool"), std::string::npos);
}

TEST(TypedConfig, EnumErrorListsAllowedValuesAndSuggests) {
  std::string e = error_of("train:\n  schedule: cosin\n");
  EXPECT_NE(e.find("allowed values: cosine, linear, constant"), std::string::npos) << e;
  EXPECT_NE(e.find("Did you mean 'cosine'?"), std::string::npos) << e;
}

TEST(TypedConfig, UnknownKeyInAFileIsAnErrorWithASuggestion) {
  std::string e = error_of("train:\n  stpes: 3\n");
  EXPECT_NE(e.find("Unknown config key 'train.stpes' (cfg.yaml:2)"), std::string::npos) << e;
  EXPECT_NE(e.find("Did you mean 'train.steps'?"), std::string::npos) << e;
}

TEST(TypedConfig, SectionThatIsNotADictIsRejected) {
  EXPECT_NE(error_of("train: 3\n").find("must be a dict"), std::string::npos);
}

TEST(DidYouMean, PicksTheClosestReasonableCandidate) {
  EXPECT_EQ(did_you_mean("lrr", {"lr", "steps"}), "lr");
  EXPECT_EQ(did_you_mean("zzzzzz", {"lr", "steps"}), "");
}

}  // namespace
}  // namespace portrait::cfg
