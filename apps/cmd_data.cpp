// Data commands: `portrait synth`, `portrait prep`, `portrait tokenizer`.
#include <fmt/format.h>

#include <iostream>

#include "apps/command_specs.h"
#include "apps/commands.h"
#include "apps/job_dist.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "core/log.h"
#include "data/prep.h"
#include "data/synth.h"
#include "tokenizer/train.h"

namespace portrait::apps {

CommandSpec synth_command() {
  CommandSpec c = synth_spec();
  c.run = [](JobContext& ctx) {
    auto p = data::synth_params_from_config(ctx.cfg);
    auto s = data::run_synth(p);
    std::cout << fmt::format("synth: {} users ({} active), {} rows ({} valid events) -> {}\n", s.users,
                             s.active_users, s.rows, s.valid_events, s.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec prep_command() {
  CommandSpec c = prep_spec();
  c.run = [](JobContext& ctx) {
    auto p = data::prep_params_from_config(ctx.cfg);
    p.config_yaml = cfg::to_yaml(ctx.cfg);
    auto d = job_dist();
    if (d->distributed()) {
      p.rank = d->rank();
      p.world = d->world_size();
      p.barrier = [d](const std::string& name) { d->barrier("prep/" + name); };
      p.broadcast = [d](const std::string& name, const std::string& value) {
        return d->broadcast_string("prep/" + name, value);
      };
      if (p.rank != 0) p.progress = false;
    }
    auto s = data::run_prep(p);
    if (p.rank != 0) return kExitOk;
    std::cout << fmt::format(
        "prep: {} rows -> {} events of {} users (train/val/test {}/{}/{}), {} quarantined, "
        "{} items, {} categories, {:.1f}s\n",
        s.rows, s.accepted_events, s.users, s.users_per_split[0], s.users_per_split[1],
        s.users_per_split[2], s.quarantined, s.items, s.categories, s.seconds);
    for (const auto& [reason, n] : s.rejects)
      if (n) std::cout << fmt::format("  rejected {:>10}  {}\n", n, reason);
    std::cout << fmt::format("shards: {}\n", p.output_dir);
    return kExitOk;
  };
  return c;
}

CommandSpec tokenizer_command() {
  CommandSpec c = tokenizer_spec();
  c.run = [](JobContext& ctx) {
    auto p = tok::tokenizer_params_from_config(ctx.cfg);
    auto s = tok::run_tokenizer_train(p);
    std::cout << fmt::format("tokenizer: {} pieces from {} sentences -> {} (sha256 {})\n", s.vocab_size,
                             s.sentences, s.model_path, s.sha256);
    return kExitOk;
  };
  return c;
}

}  // namespace portrait::apps
