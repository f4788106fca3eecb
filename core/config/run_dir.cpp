#include "core/config/run_dir.h"

#include <fmt/format.h>

#include "core/config/yaml_io.h"
#include "core/error.h"
#include "core/fs.h"

namespace portrait::cfg {

namespace fs = std::filesystem;

fs::path decide_run_dir(Composed& c, const ResolveContext& ctx, bool multirun) {
  // Resolve hydra values against {job config..., hydra: ...} so both ${hydra.job.name} and
  // ${now:...} work, as they do in Hydra.
  Node combined = c.config;
  if (!combined.is_map()) combined = Node::map();
  combined["hydra"] = c.hydra;
  ResolveContext rc = ctx;
  rc.hydra = &c.hydra;
  std::string dir;
  if (multirun) {
    std::string base = resolve_string(c.hydra["sweep"]["dir"].scalar_text(), combined, rc);
    std::string sub = resolve_string(c.hydra["sweep"]["subdir"].scalar_text(), combined, rc);
    dir = (fs::path(base) / sub).string();
  } else {
    const Node& d = c.hydra["run"]["dir"];
    if (!d.is_string() || d.as_string().empty())
      throw ConfigError("hydra.run.dir must be a non-empty path");
    dir = resolve_string(d.as_string(), combined, rc);
  }
  fs::path abs = fs::absolute(dir).lexically_normal();
  c.hydra["runtime"]["output_dir"] = Node::string(abs.string());
  return abs;
}

bool write_run_dir(const Composed& c, const fs::path& run_dir, bool write_files) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("cannot create run directory {}: {}", run_dir.string(),
                                         ec.message()));
  }
  if (!write_files) return false;
  const Node* sub = c.hydra.find("output_subdir");
  if (!sub || sub->is_null()) return false;
  fs::path hydra_dir = run_dir / sub->scalar_text();
  if (fs::exists(hydra_dir / "config.yaml")) return false;  // a restart reusing the run dir
  fs::create_directories(hydra_dir);
  Node overrides = Node::list();
  for (const auto& t : c.task_overrides) overrides.push_back(Node::string(t));
  Node hydra_file = Node::map();
  hydra_file["hydra"] = c.hydra;
  // config.yaml last: its presence marks a complete record.
  write_file_atomic(hydra_dir / "overrides.yaml", to_yaml(overrides));
  write_file_atomic(hydra_dir / "hydra.yaml", to_yaml(hydra_file));
  write_file_atomic(hydra_dir / "config.yaml", to_yaml(c.config));
  return true;
}

}  // namespace portrait::cfg
