// A secret given by mistake as a config value never reaches a config sink (core/config/secrets.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "config_fixture.h"
#include "core/config/override.h"
#include "core/config/run_dir.h"
#include "core/config/secrets.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "core/fs.h"

namespace portrait::cfg {
namespace {

constexpr const char* kSecret = "hunter2-0f9a8b7c6d5e4f3a";

TEST(Secrets, SecretKeysAreRecognisedByTheirLeafNameOnly) {
  for (const char* k : {"key", "data.privacy.key", "hash_key", "data.privacy.HASH_KEY", "secret",
                        "db.password", "api_key", "apikey", "auth", "access_token", "x/aws_secret"})
    EXPECT_TRUE(is_secret_key(k)) << k;
  for (const char* k : {"data.privacy.key_file", "data.privacy.key_env", "model.max_text_tokens",
                        "tokenizer.special_tokens", "keyboard", "monkey", "key.size", "tokenizer"})
    EXPECT_FALSE(is_secret_key(k)) << k;
}

TEST(Secrets, AnEnvKeyHoldingSomethingOtherThanAVariableNameIsTreatedAsASecret) {
  EXPECT_FALSE(is_secret_value("data.privacy.key_env", "PORTRAIT_HASH_KEY"));
  EXPECT_TRUE(is_secret_value("data.privacy.key_env", kSecret));
  EXPECT_TRUE(is_secret_value("data.privacy.key_env", "0123ABCD"));  // starts with a digit
  EXPECT_FALSE(is_secret_value("train.lr", kSecret));                // not a secret by name
}

TEST(Secrets, OverrideTextKeepsThePrefixAndKeyButHidesTheValue) {
  EXPECT_EQ(redact_override_text(std::string("data.privacy.key=") + kSecret), "data.privacy.key=<redacted>");
  EXPECT_EQ(redact_override_text(std::string("+data.privacy.key=") + kSecret), "+data.privacy.key=<redacted>");
  EXPECT_EQ(redact_override_text(std::string("++a.b.api_token='") + kSecret + "'"), "++a.b.api_token=<redacted>");
  EXPECT_EQ(redact_override_text(std::string("data.privacy.key_env=") + kSecret), "data.privacy.key_env=<redacted>");
  EXPECT_EQ(redact_override_text("data.privacy.key_env=MY_KEY"), "data.privacy.key_env=MY_KEY");
  EXPECT_EQ(redact_override_text("train.lr=3e-4"), "train.lr=3e-4");
  EXPECT_EQ(redact_override_text("~data.privacy.key"), "~data.privacy.key");
}

TEST(Secrets, ParsedOverridesKeepTheValueButShowOnlyTheRedactedText) {
  Override o = parse_override(std::string("+data.privacy.key=") + kSecret);
  EXPECT_EQ(o.value.as_string(), kSecret);
  EXPECT_EQ(o.text, "+data.privacy.key=<redacted>");
  // A malformed secret override does not echo the value either.
  try {
    parse_override(std::string("data.privacy.key=[") + kSecret);
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()).find(kSecret), std::string::npos) << e.what();
  }
}

TEST(Secrets, ToYamlWritesSecretValuesAsRedactedAtAnyDepth) {
  Node n = load_yaml_string(std::string("a:\n  password: ") + kSecret + "\n  list:\n    - token: " + kSecret +
                                "\n  key_env: PORTRAIT_HASH_KEY\n  other_env: " + kSecret + "\nkeep: 1\n",
                            "t.yaml");
  const std::string y = to_yaml(n);
  EXPECT_EQ(y.find(kSecret), std::string::npos) << y;
  Node back = load_yaml_string(y, "back.yaml");
  EXPECT_EQ(find_path(back, "a.password")->as_string(), "<redacted>");
  EXPECT_EQ(find_path(back, "a.key_env")->as_string(), "PORTRAIT_HASH_KEY");
  EXPECT_EQ(find_path(back, "keep")->as_int(), 1);
  EXPECT_EQ(find_path(n, "a.password")->as_string(), kSecret);  // the tree itself is unchanged
}

class SecretRunDir : public portrait::testing::ConfigTest {
 protected:
  void SetUp() override { dir.write("job.yaml", "privacy:\n  key_env: PORTRAIT_HASH_KEY\n"); }
};

TEST_F(SecretRunDir, NoRunRecordFileHoldsASecretGivenAsAnOverride) {
  const auto run = dir.path() / "run";
  Composed c = compose("job", {std::string("+privacy.key=") + kSecret, std::string("privacy.key_env=") + kSecret,
                               "hydra.run.dir=" + run.string()});
  EXPECT_EQ(find_path(c.config, "privacy.key")->as_string(), kSecret);  // the job still sees it
  ResolveContext ctx;
  ASSERT_TRUE(write_run_dir(c, decide_run_dir(c, ctx, false), true));
  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(run)) {
    if (!e.is_regular_file()) continue;
    ++files;
    const std::string text = read_file(e.path());
    EXPECT_EQ(text.find(kSecret), std::string::npos) << e.path() << ":\n" << text;
  }
  EXPECT_EQ(files, 3);
  Node ov = load_yaml_file(run / ".hydra/overrides.yaml");
  EXPECT_EQ(ov.elements()[0].as_string(), "+privacy.key=<redacted>");
}

TEST_F(SecretRunDir, AMistypedSecretOverrideErrorNamesTheKeyNotTheValue) {
  try {
    compose("job", {std::string("privacy.key=") + kSecret});
    FAIL() << "expected a ConfigError";
  } catch (const std::exception& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("privacy.key"), std::string::npos) << m;
    EXPECT_EQ(m.find(kSecret), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace portrait::cfg
