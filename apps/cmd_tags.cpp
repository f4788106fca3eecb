// `portrait tags`: per-user readable tags and segment rules (tags/). Torch-free work, run by
// portrait-torch like the other pipeline commands (the front end answers --help and --cfg).
#include <fmt/format.h>

#include <iostream>

#include "apps/command_specs.h"
#include "apps/commands.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "tags/rfm.h"
#include "tags/tags.h"

namespace portrait::apps {

CommandSpec tags_command() {
  CommandSpec c = tags_spec();
  c.run = [](JobContext& ctx) {
    auto p = tags::tag_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    auto s = tags::run_tags(p);
    std::cout << fmt::format("tags: {} users ({} with purchases) -> {}, {}{}\n", s.users, s.buyers, s.h5, s.csv,
                             s.rules.empty() ? "" : ", " + s.rules);
    for (size_t k = 0; k < s.rfm_counts.size(); ++k)
      if (s.rfm_counts[k] > 0) std::cout << fmt::format("  {:<20} {}\n", tags::kRfmNames[k], s.rfm_counts[k]);
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
