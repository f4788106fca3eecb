// Section `tags` of the composed config: see TagParams.
#include "core/config/section.h"
#include "core/error.h"
#include "tags/tags.h"

namespace portrait::tags {

TagParams tag_params_from_config(const cfg::Node& root) {
  TagParams p;
  cfg::Section s(root, "tags");
  s.read("shards", p.shards);
  s.read("segments", p.segments);
  s.read("scores", p.scores);
  s.read("output_dir", p.output_dir);
  s.read("top_categories", p.top_categories, 1, 20);
  s.read("utc_offset_hours", p.utc_offset_hours, -14.0, 14.0);
  s.read("purchase_event", p.purchase_event);
  s.read_enum("price_events", p.price_events, {"all", "purchase"});
  {
    auto l = s.sub("lifecycle");
    l.read("new_days", p.new_days, 0.0, 1e5);
    l.read("active_days", p.active_days, 0.0, 1e5);
    l.read("churn_days", p.churn_days, 0.0, 1e5);
    l.finish();
  }
  {
    auto pr = s.sub("price");
    pr.read("low", p.price_low, 0.0, 1.0);
    pr.read("high", p.price_high, 0.0, 1.0);
    pr.finish();
  }
  {
    auto r = s.sub("rules");
    r.read("enabled", p.rules.enabled);
    r.read("max_depth", p.rules.max_depth, 1, 4);
    r.read("min_leaf", p.rules.min_leaf, 1, 1 << 30);
    r.read("top_rules", p.rules.top_rules, 1, 16);
    r.read("max_users", p.rules.max_users, int64_t{100});
    r.read("min_segment_size", p.rules.min_segment_size, int64_t{1});
    r.finish();
  }
  s.finish();
  if (p.shards.empty()) throw ConfigError("config key 'tags.shards' is empty: name a `portrait prep` output directory");
  if (p.output_dir.empty()) throw ConfigError("config key 'tags.output_dir' is empty");
  if (p.active_days > p.churn_days)
    throw ConfigError("config keys 'tags.lifecycle.active_days' (" + std::to_string(p.active_days) +
                      ") must not exceed 'tags.lifecycle.churn_days' (" + std::to_string(p.churn_days) + ")");
  if (p.price_low > p.price_high)
    throw ConfigError("config keys 'tags.price.low' must not exceed 'tags.price.high'");
  return p;
}

}  // namespace portrait::tags
