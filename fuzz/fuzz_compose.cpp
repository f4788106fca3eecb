// Fuzz target: Hydra-style composition and OmegaConf-style interpolation (core/config):
// YAML loading (yaml_io.h), the defaults list, package headers, group options and the
// command-line overrides (compose.h), then resolve() of the job config with the hydra config
// (interpolate.h), then emitting (to_yaml) and re-reading the resolved config.
//
// Input: sections separated by a line "%%":
//   0 primary config  main.yaml      2 group option  g/b.yaml     4 group option  h/sub/y.yaml
//   1 group option    g/a.yaml       3 group option  h/x.yaml     5 overrides, one per line
// Besides "no crash, only ConfigError / UsageError": the resolved config written by to_yaml
// (as .hydra/config.yaml is) loads back to an equal tree.
#include <cmath>
#include <string>
#include <vector>

#include "core/config/compose.h"
#include "core/config/interpolate.h"
#include "core/config/secrets.h"
#include "core/config/yaml_io.h"
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

std::vector<std::string> split_sections(std::string_view s) {
  std::vector<std::string> out(1);
  size_t i = 0;
  while (i <= s.size()) {
    size_t e = s.find('\n', i);
    if (e == std::string_view::npos) e = s.size();
    std::string_view line = s.substr(i, e - i);
    if (line == "%%") out.emplace_back();
    else out.back().append(line).append(e < s.size() ? "\n" : "");
    i = e + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> sec = split_sections(std::string_view(reinterpret_cast<const char*>(data), size));
  const auto dir = fuzz::scratch_dir() / "configs";
  static const char* kFiles[] = {"main.yaml", "g/a.yaml", "g/b.yaml", "h/x.yaml", "h/sub/y.yaml"};
  for (size_t i = 0; i < 5; ++i) {
    const auto p = dir / kFiles[i];
    if (i < sec.size() && (i == 0 || !sec[i].empty())) fuzz::write_bytes(p, sec[i]);
    else std::filesystem::remove(p);
  }
  cfg::ComposeOptions o;
  o.search_path = {dir};
  o.config_name = "main";
  if (sec.size() > 5) {
    std::string_view ov = sec[5];
    for (size_t i = 0; i < ov.size();) {
      size_t e = ov.find('\n', i);
      if (e == std::string_view::npos) e = ov.size();
      if (e > i) o.overrides.emplace_back(ov.substr(i, e - i));
      i = e + 1;
    }
  }

  fuzz::expect_clean_errors([&] { (void)cfg::load_yaml_string(sec[0], "main.yaml"); });
  fuzz::expect_clean_errors([&] {
    const cfg::Composed c = cfg::compose(o);
    cfg::ResolveContext ctx;
    ctx.now = 1700000000;
    ctx.hydra = &c.hydra;
    (void)cfg::to_yaml(c.config);
    const Node resolved = cfg::resolve(c.config, ctx);
    if (const Node* run_dir = cfg::find_path(c.hydra, "run.dir"); run_dir && run_dir->is_string())
      (void)cfg::resolve_string(run_dir->as_string(), c.hydra, ctx);
    const std::string text = cfg::to_yaml(resolved);
    Node back;
    try {
      back = cfg::load_yaml_string(text, "resolved.yaml");
    } catch (const ConfigError& e) {
      std::fprintf(stderr, "to_yaml wrote:\n%s\nwhich does not load: %s\n", text.c_str(), e.what());
      fuzz::property_failed("to_yaml output of a resolved config does not load");
    }
    if (!same(cfg::redact_secrets(resolved), back)) {  // secrets are written as <redacted>
      std::fprintf(stderr, "to_yaml wrote:\n%s\n", text.c_str());
      fuzz::property_failed("to_yaml of a resolved config does not load back equal");
    }
  });
  return 0;
}
