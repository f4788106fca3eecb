// Composition in Hydra's order, pinned with the examples of Hydra's documentation
// ("Configuring Experiments", "The Defaults List", "Selecting multiple configs from a Config
// Group") and the texts of hydra/_internal/defaults_list.py.
#include <gtest/gtest.h>

#include "config_fixture.h"

namespace portrait::cfg {
namespace {

using portrait::testing::at;
using portrait::testing::ConfigTest;

// The layout of Hydra's "Configuring Experiments" page.
class Experiment : public ConfigTest {
 protected:
  void SetUp() override {
    dir.write("db/mysql.yaml", "name: mysql\nport: 3306\n");
    dir.write("db/postgres.yaml", "name: postgres\nport: 5432\n");
    dir.write("server/apache.yaml", "name: apache\nport: 80\n");
    dir.write("server/nginx.yaml", "name: nginx\nport: 80\n");
    dir.write("experiment/fast.yaml",
              "# @package _global_\n"
              "defaults:\n  - override /db: postgres\n  - override /server: nginx\n"
              "server:\n  port: 8080\n");
  }
};

TEST_F(Experiment, PlusExperimentOverridesGroupsChosenBeforeIt) {
  dir.write("config.yaml", "defaults:\n  - db: mysql\n  - server: apache\n");
  Composed c = compose("config", {"+experiment=fast"});
  EXPECT_EQ(at(c.config, "db.name").as_string(), "postgres");
  EXPECT_EQ(at(c.config, "server.name").as_string(), "nginx");
  EXPECT_EQ(at(c.config, "server.port").as_int(), 8080);
  EXPECT_EQ(c.choices.at("db"), "postgres");
  EXPECT_EQ(c.choices.at("experiment"), "fast");
  EXPECT_FALSE(c.config.contains("experiment"));  // _global_: nothing lands under its group
}

TEST_F(Experiment, ExperimentListedInThePrimaryDefaultsOverridesEarlierGroups) {
  dir.write("config.yaml",
            "defaults:\n  - db: mysql\n  - server: apache\n  - _self_\n  - experiment: fast\n");
  Node c = composed("config");
  EXPECT_EQ(at(c, "db.name").as_string(), "postgres");
  EXPECT_EQ(at(c, "server.port").as_int(), 8080);
}

TEST_F(Experiment, NullExperimentChosenOnTheCommandLineOverridesTheGroups) {
  dir.write("config.yaml",
            "defaults:\n  - db: mysql\n  - server: apache\n  - _self_\n  - experiment: null\n");
  EXPECT_EQ(at(composed("config"), "db.name").as_string(), "mysql");
  Node c = composed("config", {"experiment=fast"});
  EXPECT_EQ(at(c, "db.name").as_string(), "postgres");
  EXPECT_EQ(at(c, "server.name").as_string(), "nginx");
}

TEST_F(Experiment, CommandLineChoiceBeatsTheExperimentsOverride) {
  dir.write("config.yaml", "defaults:\n  - db: mysql\n  - server: apache\n");
  Node c = composed("config", {"+experiment=fast", "db=mysql"});
  EXPECT_EQ(at(c, "db.name").as_string(), "mysql");
  EXPECT_EQ(at(c, "server.name").as_string(), "nginx");  // the other override still applies
}

TEST_F(Experiment, ValueOverridesApplyAfterTheExperimentsValues) {
  dir.write("config.yaml", "defaults:\n  - db: mysql\n  - server: apache\n");
  EXPECT_EQ(at(composed("config", {"+experiment=fast", "server.port=9"}), "server.port").as_int(), 9);
}

TEST_F(Experiment, OverrideOfAGroupMissingFromTheDefaultsFailsWithHydrasWords) {
  dir.write("config.yaml", "defaults:\n  - server: apache\n  - override db: mysql\n");
  std::string e = error_of([&] { composed("config"); });
  EXPECT_EQ(e, "In 'config': Could not override 'db'. No match in the defaults list.");
}

TEST_F(Experiment, ExperimentOverridingAnAbsentGroupFails) {
  dir.write("config.yaml", "defaults:\n  - server: apache\n");
  std::string e = error_of([&] { composed("config", {"+experiment=fast"}); });
  EXPECT_EQ(e, "In 'experiment/fast': Could not override 'db'. No match in the defaults list.");
}

TEST_F(Experiment, OverrideBeforeAPlainEntryIsRefused) {
  dir.write("config.yaml", "defaults:\n  - override db: mysql\n  - server: apache\n");
  std::string e = error_of([&] { composed("config"); });
  EXPECT_NE(e.find("Overrides must be at the end of the defaults list"), std::string::npos) << e;
}

TEST_F(Experiment, AbsoluteGroupInANestedDefaultsListLandsUnderTheIncludingPackage) {
  dir.write("db/mysql.yaml", "defaults:\n  - /server: apache\nname: mysql\n");
  dir.write("config.yaml", "defaults:\n  - db: mysql\n");
  Composed c = compose("config");
  EXPECT_EQ(at(c.config, "db.server.name").as_string(), "apache");
  EXPECT_FALSE(c.config.contains("server"));
  // Its override key names the package, as Hydra's does.
  EXPECT_EQ(c.choices.at("server@db.server"), "apache");
  EXPECT_EQ(at(composed("config", {"server@db.server=nginx"}), "db.server.name").as_string(), "nginx");
}

TEST_F(Experiment, UnmatchedDeletionFailsWithHydrasWords) {
  dir.write("config.yaml", "defaults:\n  - server: apache\n");
  EXPECT_EQ(error_of([&] { composed("config", {"~db"}); }),
            "Could not delete 'db'. No match in the defaults list");
}

// "Selecting multiple configs from a Config Group".
class MultiSelect : public ConfigTest {
 protected:
  void SetUp() override {
    dir.write("config.yaml", "defaults:\n  - server: apache\n");
    dir.write("server/apache.yaml", "defaults:\n  - site:\n    - fb\n    - google\n\nhost: localhost\nport: 443\n");
    dir.write("server/site/fb.yaml", "fb:\n  domain: facebook.com\n");
    dir.write("server/site/google.yaml", "google:\n  domain: google.com\n");
    dir.write("server/site/amazon.yaml", "amazon:\n  domain: amazon.com\n");
  }
};

TEST_F(MultiSelect, EveryListedOptionMergesUnderTheGroupInOrder) {
  Composed c = compose("config");
  const Node& site = at(c.config, "server.site");
  ASSERT_EQ(site.size(), 2u);
  EXPECT_EQ(site.items()[0].first, "fb");
  EXPECT_EQ(site.items()[1].first, "google");
  EXPECT_EQ(at(c.config, "server.port").as_int(), 443);
  // Hydra 1.3 records the group holding the list, not the list itself.
  EXPECT_EQ(c.choices.at("server"), "apache");
  EXPECT_FALSE(at(c.hydra, "runtime.choices").contains("server/site"));
}

TEST_F(MultiSelect, CommandLineListReplacesTheSelection) {
  Node c = composed("config", {"server/site=[google,amazon]"});
  const Node& site = at(c, "server.site");
  ASSERT_EQ(site.size(), 2u);
  EXPECT_EQ(site.items()[0].first, "google");
  EXPECT_EQ(at(c, "server.site.amazon.domain").as_string(), "amazon.com");
}

// Value overrides: OmegaConf.update(cfg, key, value, merge=True[, force_add=True]).
class MergeOverride : public ConfigTest {
 protected:
  void SetUp() override { dir.write("c.yaml", "a:\n  x: 1\n  y: 2\n"); }
};

TEST_F(MergeOverride, DoublePlusDictMergesIntoTheExistingDict) {
  Node c = composed("c", {"++a={y: 20, z: 30}"});
  EXPECT_EQ(at(c, "a.x").as_int(), 1);
  EXPECT_EQ(at(c, "a.y").as_int(), 20);
  EXPECT_EQ(at(c, "a.z").as_int(), 30);
}

TEST_F(MergeOverride, PlusDictOnAnExistingDictMergesToo) {
  Node c = composed("c", {"+a={z: 30}"});
  EXPECT_EQ(at(c, "a.x").as_int(), 1);
  EXPECT_EQ(at(c, "a.z").as_int(), 30);
}

TEST_F(MergeOverride, DictWithANewKeyIsAStructError) {
  std::string e = error_of([&] { composed("c", {"a={y: 20, z: 30}"}); });
  EXPECT_EQ(e.rfind("Could not override 'a'.\nTo append to your config use +a={y: 20, z: 30}\n"
                    "Key 'z' is not in struct\n    full_key: a.z\n    object_type=dict",
                    0),
            0u)
      << e;
}

TEST_F(MergeOverride, DictWithKnownKeysStillMerges) {
  Node c = composed("c", {"a={y: 20}"});
  EXPECT_EQ(at(c, "a.x").as_int(), 1);
  EXPECT_EQ(at(c, "a.y").as_int(), 20);
}

}  // namespace
}  // namespace portrait::cfg
