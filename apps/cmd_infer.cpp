// Inference and profile commands: `portrait embed | segment | search | score | profile`.
#include <fmt/format.h>

#include <iostream>

#include "apps/commands.h"
#include "apps/job_dist.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "infer/embed.h"
#include "infer/profile.h"
#include "infer/score.h"
#include "infer/search.h"
#include "infer/segment.h"

namespace portrait::apps {

CommandSpec embed_command() {
  CommandSpec c;
  c.name = "embed";
  c.summary = "embed every user of the shards into an HDF5 file (also items and head weights)";
  c.description =
      "Streams every user through a trained encoder and writes /user_id (pseudonymous) and\n"
      "/embedding [N, D] to HDF5 (float32 or float16), plus item embeddings and the\n"
      "purchase-head weights. Written in parts: an interrupted run resumes, skipping finished\n"
      "parts. Under torchrun each rank embeds its parts and rank 0 stitches them.\n\n"
      "  portrait embed embed.model=<run>/model embed.shards=<prep output>\n"
      "  torchrun --nproc-per-node=4 --no-python portrait embed ...";
  c.config_name = "embed";
  c.run = [](JobContext& ctx) {
    auto p = infer::embed_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    auto d = job_dist();
    p.rank = d->rank();
    p.world = d->world_size();
    if (d->distributed()) p.barrier = [d] { d->barrier("embed"); };
    auto s = infer::run_embed(p);
    if (!s.output.empty()) std::cout << fmt::format("embed: {} users -> {}\n", s.users_embedded, s.output);
    return kExitOk;
  };
  return c;
}

CommandSpec segment_command() {
  CommandSpec c;
  c.name = "segment";
  c.summary = "k-means segments of the user embeddings (ids stable across refreshes)";
  c.description =
      "Clusters the embeddings with k-means (CUDA kernel on a GPU, multithreaded CPU otherwise)\n"
      "and writes /segment per user, centroids and inertia. With segment.previous=<old\n"
      "segments.h5> new segments take the ids of the old ones they match.\n\n"
      "  portrait segment segment.embeddings=embeddings.h5 segment.k=16";
  c.config_name = "segment";
  c.run = [](JobContext& ctx) {
    auto p = infer::segment_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    auto s = infer::run_segment(p);
    std::cout << fmt::format("segment: k={} inertia={:.4g} iterations={} -> {}\n", s.k, s.inertia,
                             s.iterations, s.output);
    return kExitOk;
  };
  return c;
}

CommandSpec search_command() {
  CommandSpec c;
  c.name = "search";
  c.summary = "lookalike audiences and recommendations by exact top-k similarity";
  c.description =
      "Lookalikes: a seed list of (pseudonymous) user ids -> the top-k most similar users,\n"
      "seeds excluded. Recommendations: user -> top-k items, already purchased items\n"
      "excluded (search.exclude_seen=true: every item of the user's history, for discovery).\n"
      "Exact search (fused top-k kernel on a GPU, multithreaded CPU otherwise).\n\n"
      "  portrait search search.embeddings=embeddings.h5 search.seeds=seeds.txt\n"
      "  portrait search search.embeddings=embeddings.h5 search.mode=recommend search.exclude_seen=true";
  c.config_name = "search";
  c.run = [](JobContext& ctx) {
    auto p = infer::search_params_from_config(ctx.cfg);
    auto s = infer::run_search(p);
    std::cout << fmt::format("search: -> {}\n", s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec score_command() {
  CommandSpec c;
  c.name = "score";
  c.summary = "purchase probability per head for every user; best audience per campaign";
  c.description =
      "Runs the trained purchase heads (fused MLP kernel on a GPU, CPU otherwise) over every\n"
      "user embedding; score.top_m writes the M most likely buyers per head.\n\n"
      "  portrait score score.embeddings=embeddings.h5 score.top_m=10000";
  c.config_name = "score";
  c.run = [](JobContext& ctx) {
    auto p = infer::score_params_from_config(ctx.cfg);
    auto s = infer::run_score(p);
    std::cout << fmt::format("score: -> {}\n", s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec profile_command() {
  CommandSpec c;
  c.name = "profile";
  c.summary = "per-segment portraits (JSON, CSV) and an HTML report with charts";
  c.description =
      "Per segment: size and share, recency/frequency/monetary statistics, top categories,\n"
      "top review terms, mean purchase probability per head and representative users.\n"
      "Segments smaller than profile.min_segment_size are suppressed (k-anonymity).\n\n"
      "  portrait profile profile.embeddings=embeddings.h5 profile.segments=segments.h5";
  c.config_name = "profile";
  c.run = [](JobContext& ctx) {
    auto p = infer::profile_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    auto s = infer::run_profile(p);
    std::cout << fmt::format("profile: {} users, {} segments ({} published, {} suppressed) -> {}\n",
                             s.users, s.segments, s.published, s.suppressed, s.html.empty() ? s.output_dir : s.html);
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
