// Fuzz target: the command-line override grammar (core/config/override.h).
//
// Input: one override argument as typed (`key=value`, `+key=...`, `~key`, `key@pkg=option`,
// sweeps, quoted strings, [lists], {dicts}, ${...}). Besides "no crash, only UsageError /
// ConfigError": a parsed value rendered back with value_to_override_text parses to the same
// value (sweep expansion writes job overrides this way), and parse_override_value agrees.
#include <cmath>
#include <string>

#include "core/config/override.h"
#include "fuzz/fuzz_util.h"

using namespace portrait;
using portrait::cfg::Node;

namespace {

bool same(const Node& a, const Node& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Node::Kind::kNull: return true;
    case Node::Kind::kBool: return a.as_bool() == b.as_bool();
    case Node::Kind::kInt: return a.as_int() == b.as_int();
    case Node::Kind::kFloat:
      return (std::isnan(a.as_double()) && std::isnan(b.as_double())) || a.as_double() == b.as_double();
    case Node::Kind::kString: return a.as_string() == b.as_string();
    case Node::Kind::kList:
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (!same(a.elements()[i], b.elements()[i])) return false;
      return true;
    case Node::Kind::kMap:
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (a.items()[i].first != b.items()[i].first || !same(a.items()[i].second, b.items()[i].second))
          return false;
      return true;
  }
  return false;
}

void round_trip(const Node& v) {
  const std::string text = cfg::value_to_override_text(v);
  Node back;
  try {
    back = cfg::parse_override_value(text);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "value_to_override_text gave '%s': %s\n", text.c_str(), e.what());
    fuzz::property_failed("value_to_override_text output does not parse");
  }
  if (!same(v, back)) {
    std::fprintf(stderr, "value_to_override_text gave '%s'\n", text.c_str());
    fuzz::property_failed("value_to_override_text does not round-trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string arg(reinterpret_cast<const char*>(data), size);
  fuzz::expect_clean_errors([&] {
    const cfg::Override o = cfg::parse_override(arg);
    (void)o.key_with_prefix();
    if (o.has_value) round_trip(o.value);
    // range() may expand to 100000 values; the first ones exercise the rendering as well.
    for (size_t i = 0; i < o.sweep.size() && i < 16; ++i) round_trip(o.sweep[i]);
  });
  fuzz::expect_clean_errors([&] { round_trip(cfg::parse_override_value(arg)); });
  return 0;
}
