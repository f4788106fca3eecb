#include <gtest/gtest.h>

#include "config_fixture.h"

namespace portrait::cfg {
namespace {

using portrait::testing::at;
using portrait::testing::ConfigTest;

class Compose : public ConfigTest {
 protected:
  void SetUp() override {
    dir.write("train.yaml",
              "defaults:\n  - model: tiny\n  - optim: adamw\n  - _self_\nseed: 1\n"
              "train:\n  lr: 0.1\n  steps: 10\n  layers: [1, 2, 3]\n  opt: {beta1: 0.9, beta2: 0.99}\n");
    dir.write("model/tiny.yaml", "d_model: 8\nn_layers: 1\n");
    dir.write("model/small.yaml", "d_model: 32\nn_layers: 2\n");
    dir.write("optim/adamw.yaml", "name: adamw\nlr: 0.01\n");
    dir.write("optim/sgd.yaml", "name: sgd\nlr: 0.1\n");
    dir.write("extra/on.yaml", "flag: true\n");
  }
};

TEST_F(Compose, GroupOptionMergesUnderItsGroupKey) {
  Node c = composed("train");
  EXPECT_EQ(at(c, "model.d_model").as_int(), 8);
  EXPECT_EQ(at(c, "optim.name").as_string(), "adamw");
  EXPECT_EQ(at(c, "seed").as_int(), 1);
  EXPECT_FALSE(c.contains("defaults"));
}

TEST_F(Compose, SelfLastLetsThePrimaryOverrideItsDefaults) {
  dir.write("p.yaml", "defaults:\n  - model: tiny\n  - _self_\nmodel:\n  d_model: 99\n");
  EXPECT_EQ(at(composed("p"), "model.d_model").as_int(), 99);
}

TEST_F(Compose, SelfFirstLetsTheDefaultsOverrideThePrimary) {
  dir.write("p.yaml", "defaults:\n  - _self_\n  - model: tiny\nmodel:\n  d_model: 99\n");
  EXPECT_EQ(at(composed("p"), "model.d_model").as_int(), 8);
}

TEST_F(Compose, MissingSelfActsAsLast) {
  dir.write("p.yaml", "defaults:\n  - model: tiny\nmodel:\n  d_model: 99\n");
  EXPECT_EQ(at(composed("p"), "model.d_model").as_int(), 99);
}

TEST_F(Compose, KeyOrderFollowsTheDefaultsList) {
  Node c = composed("train");
  ASSERT_GE(c.items().size(), 3u);
  EXPECT_EQ(c.items()[0].first, "model");
  EXPECT_EQ(c.items()[1].first, "optim");
}

TEST_F(Compose, OptionalMissingOptionIsSkipped) {
  dir.write("p.yaml", "defaults:\n  - optional extra: nothere\n  - _self_\nx: 1\n");
  Node c = composed("p");
  EXPECT_FALSE(c.contains("extra"));
  EXPECT_EQ(at(c, "x").as_int(), 1);
}

TEST_F(Compose, UnknownOptionListsTheAvailableOptions) {
  std::string e = error_of([&] { composed("train", {"model=nosuch"}); });
  EXPECT_NE(e.find("In 'train': Could not find 'model/nosuch'"), std::string::npos) << e;
  EXPECT_NE(e.find("Available options in 'model':\n\tsmall\n\ttiny\n"), std::string::npos) << e;
  EXPECT_NE(e.find("Config search path:"), std::string::npos) << e;
}

TEST_F(Compose, UnknownOptionSuggestsTheClosestOne) {
  std::string e = error_of([&] { composed("train", {"model=smal"}); });
  EXPECT_NE(e.find("Did you mean 'model=small'?"), std::string::npos) << e;
}

TEST_F(Compose, CommandLineSelectsAGroupOption) {
  Node c = composed("train", {"model=small", "optim=sgd"});
  EXPECT_EQ(at(c, "model.d_model").as_int(), 32);
  EXPECT_EQ(at(c, "optim.name").as_string(), "sgd");
  EXPECT_EQ(compose("train", {"model=small"}).choices.at("model"), "small");
}

TEST_F(Compose, PlusGroupAppendsToTheDefaultsList) {
  Node c = composed("train", {"+extra=on"});
  EXPECT_TRUE(at(c, "extra.flag").as_bool());
}

TEST_F(Compose, TildeGroupRemovesADefault) {
  Node c = composed("train", {"~optim"});
  EXPECT_FALSE(c.contains("optim"));
  std::string e = error_of([&] { composed("train", {"~optim=sgd"}); });
  EXPECT_NE(e.find("The value of 'optim' is adamw and not sgd"), std::string::npos) << e;
}

TEST_F(Compose, GroupMissingFromDefaultsSaysHowToAppend) {
  std::string e = error_of([&] { composed("train", {"extra=on"}); });
  EXPECT_EQ(e, "Could not override 'extra'. No match in the defaults list.\n"
               "To append to your default list use +extra=on");
}

TEST_F(Compose, MandatoryGroupAsksForAnOption) {
  dir.write("p.yaml", "defaults:\n  - model: ???\n");
  std::string e = error_of([&] { composed("p"); });
  EXPECT_NE(e.find("You must specify 'model', e.g, model=<OPTION>"), std::string::npos) << e;
  EXPECT_NE(e.find("\tsmall"), std::string::npos) << e;
  EXPECT_EQ(at(composed("p", {"model=small"}), "model.d_model").as_int(), 32);
}

TEST_F(Compose, NullOptionSkipsTheGroup) {
  dir.write("p.yaml", "defaults:\n  - model: null\n  - _self_\na: 1\n");
  EXPECT_FALSE(composed("p").contains("model"));
  EXPECT_EQ(at(composed("p", {"model=tiny"}), "model.d_model").as_int(), 8);
}

TEST_F(Compose, GlobalPackageHeaderMergesAtTheRoot) {
  dir.write("extra/global.yaml", "# @package _global_\nseed: 77\ntop: yes\n");
  Node c = composed("train", {"+extra=global"});
  EXPECT_EQ(at(c, "seed").as_int(), 77);
  EXPECT_TRUE(at(c, "top").as_bool());
}

TEST_F(Compose, ExplicitPackageHeaderRelocatesTheOption) {
  dir.write("extra/deep.yaml", "# @package a.b\nv: 1\n");
  EXPECT_EQ(at(composed("train", {"+extra=deep"}), "a.b.v").as_int(), 1);
}

TEST_F(Compose, GroupAtPackageRelocatesInDefaultsAndOnTheCommandLine) {
  dir.write("p.yaml", "defaults:\n  - model@teacher: small\n  - model@student: tiny\n");
  Node c = composed("p");
  EXPECT_EQ(at(c, "teacher.d_model").as_int(), 32);
  EXPECT_EQ(at(c, "student.d_model").as_int(), 8);
  Node d = composed("train", {"model@encoder=small"});
  EXPECT_EQ(at(d, "encoder.d_model").as_int(), 32);
}

TEST_F(Compose, NestedDefaultsInAGroupOptionAreRelativeToItsGroup) {
  dir.write("model/big.yaml", "defaults:\n  - head: mlp\n  - _self_\nd_model: 64\n");
  dir.write("model/head/mlp.yaml", "hidden: 128\n");
  dir.write("model/head/linear.yaml", "hidden: 0\n");
  Node c = composed("train", {"model=big"});
  EXPECT_EQ(at(c, "model.head.hidden").as_int(), 128);
  EXPECT_EQ(at(composed("train", {"model=big", "model/head=linear"}), "model.head.hidden").as_int(), 0);
}

TEST_F(Compose, OverrideKeywordChangesADefaultChosenElsewhere) {
  dir.write("model/big.yaml", "defaults:\n  - head: mlp\nd_model: 64\n");
  dir.write("model/head/mlp.yaml", "hidden: 128\n");
  dir.write("model/head/linear.yaml", "hidden: 0\n");
  dir.write("p.yaml", "defaults:\n  - model: big\n  - override model/head: linear\n");
  EXPECT_EQ(at(composed("p"), "model.head.hidden").as_int(), 0);
  // The command line still wins over `override`.
  EXPECT_EQ(at(composed("p", {"model/head=mlp"}), "model.head.hidden").as_int(), 128);
}

TEST_F(Compose, SameGroupTwiceWithoutOverrideIsAnError) {
  dir.write("p.yaml", "defaults:\n  - model: tiny\n  - model: small\n");
  std::string e = error_of([&] { composed("p"); });
  EXPECT_NE(e.find("Multiple values for model"), std::string::npos) << e;
}

TEST_F(Compose, PlainConfigNamesInDefaultsMergeAtTheParentPackage) {
  dir.write("common.yaml", "seed: 5\nlog: info\n");
  dir.write("p.yaml", "defaults:\n  - common\n  - _self_\nseed: 6\n");
  Node c = composed("p");
  EXPECT_EQ(at(c, "seed").as_int(), 6);
  EXPECT_EQ(at(c, "log").as_string(), "info");
}

TEST_F(Compose, MissingPrimaryConfigSaysWhereItLooked) {
  std::string e = error_of([&] { composed("nosuch"); });
  EXPECT_NE(e.find("Cannot find primary config 'nosuch'"), std::string::npos) << e;
  EXPECT_NE(e.find(dir.path().string()), std::string::npos) << e;
}

TEST_F(Compose, MalformedGroupFileNamesFileAndLine) {
  dir.write("model/broken.yaml", "d_model: 8\n  bad indent: [\n");
  std::string e = error_of([&] { composed("train", {"model=broken"}); });
  EXPECT_NE(e.find("model/broken.yaml:"), std::string::npos) << e;
}

TEST_F(Compose, DefaultsCycleIsReportedNotLooped) {
  dir.write("a.yaml", "defaults:\n  - b\n");
  dir.write("b.yaml", "defaults:\n  - a\n");
  std::string e = error_of([&] { composed("a"); });
  EXPECT_NE(e.find("cycle"), std::string::npos) << e;
}

// ---- value overrides --------------------------------------------------------------------

TEST_F(Compose, ChangeOverrideReplacesAnExistingValueWithItsCliType) {
  Node c = composed("train", {"train.lr=3e-4", "train.steps=5", "seed=null"});
  EXPECT_DOUBLE_EQ(at(c, "train.lr").as_double(), 3e-4);
  EXPECT_EQ(at(c, "train.steps").as_int(), 5);
  EXPECT_TRUE(at(c, "seed").is_null());
}

TEST_F(Compose, UnknownKeyFailsWithHydrasWordsAndADidYouMean) {
  std::string e = error_of([&] { composed("train", {"train.lrr=1"}); });
  EXPECT_EQ(e, "Could not override 'train.lrr'.\nTo append to your config use +train.lrr=1\n"
               "Key 'lrr' is not in struct\n    full_key: train.lrr\n    object_type=dict\n"
               "Did you mean 'train.lr'?");
}

TEST_F(Compose, UnknownParentKeyIsReportedAtTheFirstMissingComponent) {
  std::string e = error_of([&] { composed("train", {"trian.lr=1"}); });
  EXPECT_NE(e.find("Key 'trian' is not in struct\n    full_key: trian"), std::string::npos) << e;
  EXPECT_NE(e.find("Did you mean 'train.lr'?"), std::string::npos) << e;
}

TEST_F(Compose, PlusOnAnExistingKeyFailsWithHydrasWords) {
  std::string e = error_of([&] { composed("train", {"+seed=2"}); });
  EXPECT_EQ(e, "Could not append to config. An item is already at 'seed'.\n"
               "Either remove + prefix: 'seed=2'\n"
               "Or add a second + to add or override 'seed': '++seed=2'");
}

TEST_F(Compose, PlusAddsNewKeysCreatingParents) {
  Node c = composed("train", {"+train.note=hi", "+new.deep.key=[1,2]"});
  EXPECT_EQ(at(c, "train.note").as_string(), "hi");
  EXPECT_EQ(at(c, "new.deep.key").elements().size(), 2u);
}

TEST_F(Compose, DoublePlusAddsOrChanges) {
  Node c = composed("train", {"++seed=9", "++train.extra=x"});
  EXPECT_EQ(at(c, "seed").as_int(), 9);
  EXPECT_EQ(at(c, "train.extra").as_string(), "x");
}

TEST_F(Compose, TildeOnAMissingKeyFailsWithHydrasWords) {
  std::string e = error_of([&] { composed("train", {"~train.nosuch"}); });
  EXPECT_EQ(e, "Could not delete from config. 'train.nosuch' does not exist.");
}

TEST_F(Compose, TildeDeletesAndChecksTheExpectedValue) {
  EXPECT_FALSE(at(composed("train", {"~train.steps"}), "train").contains("steps"));
  EXPECT_FALSE(at(composed("train", {"~train.steps=10"}), "train").contains("steps"));
  std::string e = error_of([&] { composed("train", {"~train.steps=20"}); });
  EXPECT_EQ(e, "Could not delete from config. The value of 'train.steps' is 10 and not 20.");
}

TEST_F(Compose, DottedPathsReachIntoLists) {
  Node c = composed("train", {"train.layers.1=20"});
  EXPECT_EQ(at(c, "train.layers.1").as_int(), 20);
  EXPECT_EQ(at(c, "train.layers").elements().size(), 3u);
  Node d = composed("train", {"~train.layers.0"});
  EXPECT_EQ(at(d, "train.layers.0").as_int(), 2);
  std::string e = error_of([&] { composed("train", {"train.layers.7=1"}); });
  EXPECT_NE(e.find("Could not override 'train.layers.7'"), std::string::npos) << e;
}

TEST_F(Compose, DictOverrideMergesIntoAnExistingDict) {
  Node c = composed("train", {"train.opt={beta2: 0.5}"});
  EXPECT_DOUBLE_EQ(at(c, "train.opt.beta1").as_double(), 0.9);
  EXPECT_DOUBLE_EQ(at(c, "train.opt.beta2").as_double(), 0.5);
}

TEST_F(Compose, ListOverrideReplacesTheWholeList) {
  Node c = composed("train", {"train.layers=[7]"});
  EXPECT_EQ(at(c, "train.layers").elements().size(), 1u);
}

TEST_F(Compose, CommaValueWithoutMultirunIsAmbiguous) {
  std::string e = error_of([&] { composed("train", {"train.lr=1,2"}); });
  EXPECT_NE(e.find("Ambiguous value for argument 'train.lr=1,2'"), std::string::npos) << e;
}

TEST_F(Compose, HydraKeysGoToTheHydraConfigInStructMode) {
  Composed c = compose("train", {"hydra.run.dir=/tmp/x", "train.lr=1"});
  EXPECT_EQ(at(c.hydra, "run.dir").as_string(), "/tmp/x");
  EXPECT_FALSE(c.config.contains("hydra"));
  ASSERT_EQ(c.task_overrides.size(), 1u);
  EXPECT_EQ(c.task_overrides[0], "train.lr=1");
  std::string e = error_of([&] { compose("train", {"hydra.run.dri=/tmp/x"}); });
  EXPECT_NE(e.find("Could not override 'hydra.run.dri'"), std::string::npos) << e;
  EXPECT_NE(e.find("Did you mean 'hydra.run.dir'?"), std::string::npos) << e;
}

TEST_F(Compose, ValueOverridesApplyAfterGroupSelection) {
  Node c = composed("train", {"model.d_model=5", "model=small"});
  EXPECT_EQ(at(c, "model.d_model").as_int(), 5);
  EXPECT_EQ(at(c, "model.n_layers").as_int(), 2);
}

TEST_F(Compose, ValuesCarryWhereTheyWereDefined) {
  Composed c = compose("train", {"train.lr=2"});
  EXPECT_NE(at(c.config, "model.d_model").mark.str().find("model/tiny.yaml:1"), std::string::npos);
  EXPECT_NE(at(c.config, "train.lr").mark.file.find("command line"), std::string::npos);
}

}  // namespace
}  // namespace portrait::cfg

namespace portrait::cfg {
namespace {

TEST_F(Compose, OverlayLandsAfterDefaultsAndBeforeCommandLineOverrides) {
  ComposeOptions o;
  o.search_path = {dir.path()};
  o.config_name = "train";
  o.overlay = Node::map();
  o.overlay["model"]["d_model"] = Node::integer(99);
  o.overlay["model"]["n_layers"] = Node::integer(7);
  o.overrides = {"model.n_layers=3"};
  Node c = cfg::compose(o).config;
  EXPECT_EQ(at(c, "model.d_model").as_int(), 99);  // overlay beats the group file
  EXPECT_EQ(at(c, "model.n_layers").as_int(), 3);  // the command line beats the overlay
}

}  // namespace
}  // namespace portrait::cfg
