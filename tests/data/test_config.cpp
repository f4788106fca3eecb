#include <gtest/gtest.h>

#include "core/config/compose.h"
#include "core/config/interpolate.h"
#include "core/error.h"
#include "data/prep.h"
#include "data/synth.h"
#include "tokenizer/train.h"

using namespace portrait;

namespace {
cfg::Node load(const std::string& name, std::vector<std::string> overrides) {
  cfg::ComposeOptions o;
  o.search_path = {PORTRAIT_CONFIG_DIR};
  o.config_name = name;
  o.overrides = std::move(overrides);
  return cfg::resolve(cfg::compose(o).config);
}
}  // namespace

TEST(DataConfig, PrepYamlComposesWithTheDefaultDataGroup) {
  auto root = load("prep", {"prep.input=[a.csv,logs/*.jsonl.gz]", "prep.output_dir=/tmp/x"});
  auto p = data::prep_params_from_config(root);
  EXPECT_EQ(p.input, (std::vector<std::string>{"a.csv", "logs/*.jsonl.gz"}));
  EXPECT_EQ(p.output_dir, "/tmp/x");
  EXPECT_EQ(p.data.columns.at("user"), "user_id");
  EXPECT_EQ(p.data.event_types.at("buy"), "purchase");
  EXPECT_EQ(p.data.max_events_per_user, 5000);
  EXPECT_EQ(p.tokenizer.vocab_size, 8000);
  EXPECT_EQ(p.seq_len, 256);
}

TEST(DataConfig, MovielensGroupMapsColumnsWithoutCodeChanges) {
  auto root = load("prep", {"data=movielens", "prep.input=[ratings.csv]", "prep.output_dir=/tmp/x"});
  auto p = data::prep_params_from_config(root);
  EXPECT_EQ(p.data.columns.at("user"), "userId");
  EXPECT_EQ(p.data.columns.at("event_type"), "");
  EXPECT_EQ(p.data.default_event_type, "purchase");
  EXPECT_DOUBLE_EQ(p.data.rating_min, 0.5);
}

TEST(DataConfig, Ml100kGroupReadsRecboleTsvWithTypedHeaders) {
  auto root = load("prep", {"data=ml100k", "prep.input=[ml-100k.inter]", "prep.output_dir=/tmp/x",
                            "prep.protocol=leave_last_out"});
  auto p = data::prep_params_from_config(root);
  EXPECT_EQ(p.data.columns.at("user"), "user_id:token");
  EXPECT_EQ(p.data.format, "tsv");
  EXPECT_EQ(p.data.catalogue_format, "tsv");
  EXPECT_EQ(p.data.catalogue_category_separator, " ");
  EXPECT_EQ(p.protocol, "leave_last_out");
  auto bad = load("prep", {"prep.input=[a.csv]", "prep.output_dir=/tmp/x", "prep.protocol=random"});
  EXPECT_THROW(data::prep_params_from_config(bad), ConfigError);
}

TEST(DataConfig, UnknownKeysAndBadMappingsAreConfigErrors) {
  auto root = load("prep", {"prep.input=[a.csv]", "prep.output_dir=/tmp/x", "+prep.seqlen=3"});
  EXPECT_THROW(data::prep_params_from_config(root), ConfigError);
  auto bad = load("prep", {"prep.input=[a.csv]", "prep.output_dir=/tmp/x", "+data.event_types.fav=wishlist"});
  EXPECT_THROW(data::prep_params_from_config(bad), ConfigError);
}

TEST(DataConfig, CutoffsOutOfOrderAreAConfigErrorNamingTheKeys) {
  auto root = load("prep", {"prep.input=[a.csv]", "prep.output_dir=/tmp/x", "prep.train_cutoff=2024-03-01",
                            "prep.test_cutoff=2024-02-01"});
  try {
    data::prep_params_from_config(root);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("prep.train_cutoff"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("prep.test_cutoff"), std::string::npos) << e.what();
  }
  // leave_last_out cuts per user and ignores the global cut-offs.
  auto llo = load("prep", {"prep.input=[a.csv]", "prep.output_dir=/tmp/x", "prep.train_cutoff=2024-03-01",
                           "prep.test_cutoff=2024-02-01", "prep.protocol=leave_last_out"});
  EXPECT_NO_THROW(data::prep_params_from_config(llo));
}

TEST(DataConfig, SynthAndTokenizerYamlsParse) {
  auto s = data::synth_params_from_config(load("synth", {"synth.output_dir=/tmp/s", "synth.users=7"}));
  EXPECT_EQ(s.users, 7);
  EXPECT_EQ(s.max_field_length, 4096);  // interpolated from data.clean
  auto t = tok::tokenizer_params_from_config(load("tokenizer", {"tokenizer.input=r.txt", "tokenizer.output=m.model"}));
  EXPECT_EQ(t.input, "r.txt");
  EXPECT_EQ(t.train.model_type, "unigram");
}
