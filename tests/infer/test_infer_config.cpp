// configs/{embed,segment,search,score,profile}.yaml compose with the `infer:` group and parse
// into params; unknown keys are rejected.
#include <gtest/gtest.h>

#include "core/config/compose.h"
#include "core/config/interpolate.h"
#include "core/error.h"
#include "infer/embed.h"
#include "infer/profile.h"
#include "infer/score.h"
#include "infer/search.h"
#include "infer/segment.h"

namespace portrait::infer {
namespace {

cfg::Node load(const std::string& name, std::vector<std::string> overrides) {
  cfg::ComposeOptions o;
  o.search_path = {PORTRAIT_CONFIG_DIR};
  o.config_name = name;
  o.overrides = std::move(overrides);
  return cfg::resolve(cfg::compose(o).config);
}

TEST(InferConfig, EveryCommandConfigComposesAndParses) {
  auto e = embed_params_from_config(load("embed", {"embed.model=/m", "embed.shards=/s", "embed.output=/o.h5"}));
  EXPECT_EQ(e.batch_size, 1024);
  EXPECT_EQ(e.dtype, "float32");
  EXPECT_EQ(e.stitch, "vds");
  EXPECT_EQ(e.output, "/o.h5");
  auto s = segment_params_from_config(load("segment", {"segment.embeddings=/e.h5", "segment.output=/s.h5", "infer.segments=5"}));
  EXPECT_EQ(s.k, 5);
  EXPECT_EQ(s.metric, "cosine");
  auto q = search_params_from_config(load("search", {"search.embeddings=/e.h5", "search.output_dir=/o"}));
  EXPECT_EQ(q.top_k, 100);
  auto c = score_params_from_config(load("score", {"score.embeddings=/e.h5", "score.output_dir=/o", "infer.top_m=7"}));
  EXPECT_EQ(c.top_m, 7);
  auto p = profile_params_from_config(
      load("profile", {"profile.embeddings=/e.h5", "profile.segments=/s.h5", "profile.output_dir=/o"}));
  EXPECT_EQ(p.min_segment_size, 50);
  EXPECT_TRUE(p.html);
}

TEST(InferConfig, UnknownKeysAndBadValuesAreRejected) {
  EXPECT_THROW(embed_params_from_config(load("embed", {"embed.model=/m", "embed.shards=/s", "embed.output=/o",
                                                       "+embed.batchsize=3"})),
               ConfigError);
  EXPECT_THROW(embed_params_from_config(load("embed", {"embed.model=/m", "embed.shards=/s", "embed.output=/o",
                                                       "embed.dtype=float64"})),
               ConfigError);
  EXPECT_THROW(segment_params_from_config(load("segment", {"segment.embeddings=/e", "segment.output=/s",
                                                           "segment.metric=ip"})),
               ConfigError);
}

}  // namespace
}  // namespace portrait::infer
