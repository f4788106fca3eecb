// Inference and profile commands: `portrait embed | segment | search | score | profile`.
#include <fmt/format.h>

#include <iostream>

#include "apps/command_specs.h"
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
  CommandSpec c = embed_spec();
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
  CommandSpec c = segment_spec();
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
  CommandSpec c = search_spec();
  c.run = [](JobContext& ctx) {
    auto p = infer::search_params_from_config(ctx.cfg);
    auto s = infer::run_search(p);
    std::cout << fmt::format("search: -> {}\n", s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec score_command() {
  CommandSpec c = score_spec();
  c.run = [](JobContext& ctx) {
    auto p = infer::score_params_from_config(ctx.cfg);
    auto s = infer::run_score(p);
    std::cout << fmt::format("score: -> {}\n", s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec profile_command() {
  CommandSpec c = profile_spec();
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
