#include "core/cli.h"

#include <algorithm>

#include <cstdlib>
#include <ctime>
#include <fmt/format.h>
#include <iostream>

#include "core/config/interpolate.h"
#include "core/config/override.h"
#include "core/config/run_dir.h"
#include "core/config/yaml_io.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"

#ifndef PORTRAIT_DEFAULT_CONFIG_DIR
#define PORTRAIT_DEFAULT_CONFIG_DIR "configs"
#endif

namespace portrait {

namespace fs = std::filesystem;

fs::path default_config_dir() {
  if (const char* env = std::getenv("PORTRAIT_CONFIG_DIR"); env && *env) return env;
  return PORTRAIT_DEFAULT_CONFIG_DIR;
}

namespace {

RunDirAgreement& run_dir_agreement() {
  static RunDirAgreement fn;
  return fn;
}

struct ParsedArgs {
  bool help = false, info = false, resolve = false, multirun = false;
  std::string cfg_mode;  // "", job, hydra, all
  fs::path config_path;  // -cp
  std::string config_name;
  std::vector<fs::path> config_dirs;  // -cd
  std::vector<std::string> overrides;
  std::vector<std::string> positional;
};

bool is_uint(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

ParsedArgs parse_args(const CommandSpec& spec, const std::vector<std::string>& args) {
  ParsedArgs p;
  auto usage = [&](const std::string& msg) {
    return UsageError(fmt::format("portrait {}: {}\nSee 'portrait {} --help'.", spec.name, msg,
                                  spec.name));
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value_of = [&](const std::string& flag) -> std::string {
      size_t eq = a.find('=');
      if (a.rfind("--", 0) == 0 && eq != std::string::npos) return a.substr(eq + 1);
      if (i + 1 >= args.size()) throw usage(fmt::format("option '{}' needs a value", flag));
      return args[++i];
    };
    auto is_flag = [&](std::initializer_list<const char*> names) {
      for (const char* n : names) {
        std::string s(n);
        if (a == s || (s.rfind("--", 0) == 0 && a.rfind(s + "=", 0) == 0)) return true;
      }
      return false;
    };
    if (a == "-h" || a == "--help") {
      p.help = true;
    } else if (a == "--info") {
      p.info = true;
    } else if (a == "--resolve") {
      p.resolve = true;
    } else if (a == "-m" || a == "--multirun") {
      p.multirun = true;
    } else if (is_flag({"-c", "--cfg"})) {
      p.cfg_mode = value_of("--cfg");
      if (p.cfg_mode != "job" && p.cfg_mode != "hydra" && p.cfg_mode != "all")
        throw usage(fmt::format("--cfg takes job, hydra or all, not '{}'", p.cfg_mode));
    } else if (is_flag({"-cp", "--config-path", "--config_path"})) {
      p.config_path = value_of("--config-path");
    } else if (is_flag({"-cn", "--config-name", "--config_name"})) {
      p.config_name = value_of("--config-name");
    } else if (is_flag({"-cd", "--config-dir", "--config_dir"})) {
      p.config_dirs.emplace_back(value_of("--config-dir"));
    } else if (a.rfind("--local-rank", 0) == 0 || a.rfind("--local_rank", 0) == 0) {
      // Legacy torch.distributed.launch passes --local-rank=N; LOCAL_RANK is read from the
      // environment instead, so the flag is accepted and ignored.
      std::string rest = a.substr(12);
      if (rest.empty() && i + 1 < args.size() && is_uint(args[i + 1])) {
        ++i;
      } else if (!(rest.size() > 1 && rest[0] == '=' && is_uint(rest.substr(1)))) {
        throw usage(fmt::format("malformed '{}': expected --local-rank=N", a));
      }
    } else if (a.size() > 1 && a[0] == '-') {
      throw usage(fmt::format("unknown option '{}'", a));
    } else if (a.find('=') != std::string::npos || a[0] == '~' || a[0] == '+') {
      p.overrides.push_back(a);
    } else {
      if (static_cast<int>(p.positional.size()) >= spec.max_positional) {
        throw usage(fmt::format(
            "unexpected argument '{}': overrides look like key=value (e.g. train.lr=1e-3)", a));
      }
      p.positional.push_back(a);
    }
  }
  return p;
}

std::vector<fs::path> search_path_for(const ParsedArgs& p) {
  std::vector<fs::path> sp = p.config_dirs;  // --config-dir entries take precedence
  sp.push_back(p.config_path.empty() ? default_config_dir() : p.config_path);
  return sp;
}

int rank_from_env() {
  const char* r = std::getenv("RANK");
  return r && *r ? std::atoi(r) : 0;
}

// Cartesian product of the sweep overrides (first override varies slowest, as in Hydra's
// basic sweeper).
std::vector<std::vector<std::string>> expand_sweeps(const std::vector<std::string>& overrides) {
  std::vector<std::vector<std::string>> jobs{{}};
  for (const auto& text : overrides) {
    cfg::Override o = cfg::parse_override(text);
    std::vector<std::string> variants;
    if (o.is_sweep()) {
      std::string prefix = text.substr(0, text.find('=') + 1);
      for (const auto& v : o.sweep) variants.push_back(prefix + cfg::value_to_override_text(v));
    } else {
      variants.push_back(text);
    }
    std::vector<std::vector<std::string>> next;
    for (const auto& job : jobs) {
      for (const auto& v : variants) {
        auto j = job;
        j.push_back(v);
        next.push_back(std::move(j));
      }
    }
    jobs = std::move(next);
  }
  return jobs;
}

/// Hydra's job name (the log file's and hydra.job.name): the command, with the words of a
/// subcommand ("campaign plan") joined by '_' so no file name holds a space.
std::string job_name(const CommandSpec& spec) {
  std::string n = spec.name;
  std::replace(n.begin(), n.end(), ' ', '_');
  return n;
}

int run_one(const CommandSpec& spec, const ParsedArgs& p, const std::vector<std::string>& overrides,
            const cfg::ResolveContext& rctx, int job_num, bool multirun) {
  cfg::ComposeOptions opts;
  opts.search_path = search_path_for(p);
  opts.config_name = p.config_name.empty() ? spec.config_name : p.config_name;
  opts.overrides = overrides;
  opts.job_name = job_name(spec);
  JobContext ctx;
  ctx.composed = cfg::compose(opts);
  ctx.args = p.positional;
  ctx.job_num = job_num;
  ctx.search_path = opts.search_path;
  ctx.now = rctx.now;
  ctx.composed.hydra["job"]["num"] = cfg::Node::integer(job_num);
  if (multirun) ctx.composed.hydra["mode"] = cfg::Node::string("MULTIRUN");
  if (spec.creates_run_dir) {
    ctx.run_dir = cfg::decide_run_dir(ctx.composed, rctx, multirun);
    if (run_dir_agreement()) {
      ctx.run_dir = run_dir_agreement()(ctx.run_dir);
      ctx.composed.hydra["runtime"]["output_dir"] = cfg::Node::string(ctx.run_dir.string());
    }
  }
  cfg::ResolveContext rc = rctx;
  rc.hydra = &ctx.composed.hydra;
  ctx.cfg = cfg::resolve(ctx.composed.config, rc);
  if (spec.creates_run_dir) {
    int rank = rank_from_env();
    cfg::write_run_dir(ctx.composed, ctx.run_dir, rank == 0);
    log::set_file((ctx.run_dir / (rank == 0 ? job_name(spec) + ".log" : fmt::format("rank{}.log", rank))).string());
    PLOG_INFO("portrait {}: run directory {}", spec.name, ctx.run_dir.string());
  }
  return spec.run(ctx);
}

}  // namespace

void set_run_dir_agreement(RunDirAgreement fn) { run_dir_agreement() = std::move(fn); }

namespace {
FailureHook& failure_hook() {
  static FailureHook fn;
  return fn;
}
void report_failure(const std::string& message) {
  if (failure_hook()) failure_hook()(message);
}
}  // namespace

void set_failure_hook(FailureHook fn) { failure_hook() = std::move(fn); }

std::string command_help(const CommandSpec& spec, const fs::path& config_dir) {
  std::string s = fmt::format("Usage: portrait {} [options] {}[key=value ...]\n\n{}\n", spec.name,
                              spec.positional_help.empty() ? "" : spec.positional_help + " ",
                              spec.description.empty() ? spec.summary : spec.description);
  if (!spec.config_name.empty()) {
    s += R"(
Options:
  -h, --help               show this help and exit
  --cfg job|hydra|all      print the composed config (job, hydra or both) and exit
  --resolve                with --cfg: resolve ${...} interpolations before printing
  -cp, --config-path DIR   primary config directory (default: )" + config_dir.string() + R"()
  -cn, --config-name NAME  primary config name (default: )" + spec.config_name + R"()
  -cd, --config-dir DIR    extra config directory, searched first
  -m, --multirun           run a sequential sweep over comma-separated values (a=1,2)
  --info                   print the config search path, groups and defaults

Overrides (Hydra grammar):
  key=value                change an existing key       train.lr=3e-4
  group=option             pick a config group option   model=small
  +key=value / ++key=value add a key / add or change    +train.note=test
  ~key                     delete a key or group        ~data.catalog
  hydra.run.dir=DIR        choose the output directory
)";
    std::vector<fs::path> sp{config_dir};
    auto groups = cfg::list_groups(sp);
    if (!groups.empty()) {
      s += "\nConfig groups (group=option):\n";
      for (const auto& g : groups) {
        std::string opts;
        for (const auto& o : cfg::group_options(sp, g)) opts += (opts.empty() ? "" : ", ") + o;
        s += fmt::format("  {:<16} {}\n", g, opts);
      }
    }
  } else {
    s += "\nOptions:\n  -h, --help               show this help and exit\n";
  }
  return s;
}

int run_command(const CommandSpec& spec, const std::vector<std::string>& args) {
  try {
    ParsedArgs p = parse_args(spec, args);
    if (p.help) {
      std::cout << command_help(spec, p.config_path.empty() ? default_config_dir() : p.config_path);
      return kExitOk;
    }
    cfg::ResolveContext rctx;
    rctx.now = std::time(nullptr);  // one timestamp for the whole invocation
    if (spec.config_name.empty()) {
      if (!p.overrides.empty())
        throw UsageError(fmt::format("portrait {} takes no config overrides (got '{}')", spec.name,
                                     p.overrides.front()));
      JobContext ctx;
      ctx.args = p.positional;
      return spec.run(ctx);
    }
    if (p.info || !p.cfg_mode.empty()) {
      if (p.multirun) throw UsageError("--cfg/--info cannot be combined with --multirun");
      cfg::ComposeOptions opts;
      opts.search_path = search_path_for(p);
      opts.config_name = p.config_name.empty() ? spec.config_name : p.config_name;
      opts.overrides = p.overrides;
      opts.job_name = job_name(spec);
      cfg::Composed c = cfg::compose(opts);
      if (p.info) {
        std::cout << "Config search path:\n";
        for (const auto& d : opts.search_path) std::cout << "  " << fs::absolute(d).string() << "\n";
        std::cout << "Primary config: " << opts.config_name << "\nDefaults (group: option):\n";
        for (const auto& [g, o] : c.choices) std::cout << "  " << g << ": " << (o.empty() ? "null" : o) << "\n";
        return kExitOk;
      }
      cfg::Node job = c.config;
      if (p.resolve) {
        cfg::decide_run_dir(c, rctx, false);
        cfg::ResolveContext rc = rctx;
        rc.hydra = &c.hydra;
        job = cfg::resolve(c.config, rc);
      }
      if (p.cfg_mode == "job" || p.cfg_mode == "all") std::cout << cfg::to_yaml(job);
      if (p.cfg_mode == "hydra" || p.cfg_mode == "all") {
        cfg::Node h = cfg::Node::map();
        h["hydra"] = c.hydra;
        std::cout << cfg::to_yaml(h);
      }
      return kExitOk;
    }
    if (!p.multirun) return run_one(spec, p, p.overrides, rctx, 0, false);

    if (rank_from_env() != 0 || std::getenv("WORLD_SIZE"))
      throw UsageError("--multirun is not supported under torchrun; launch one job per setting");
    auto jobs = expand_sweeps(p.overrides);
    std::cerr << fmt::format("[multirun] {} job(s), run sequentially\n", jobs.size());
    int worst = kExitOk;
    for (size_t j = 0; j < jobs.size(); ++j) {
      std::string joined;
      for (const auto& o : jobs[j]) joined += (joined.empty() ? "" : " ") + o;
      std::cerr << fmt::format("[multirun] #{} : {}\n", j, joined);
      int rc = run_one(spec, p, jobs[j], rctx, static_cast<int>(j), true);
      if (rc != kExitOk) worst = rc;
    }
    return worst;
  } catch (const UsageError& e) {
    std::cerr << e.what() << "\n";
    report_failure(e.what());
    return kExitUsage;
  } catch (const ConfigError& e) {
    std::cerr << e.what() << "\n";
    report_failure(e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << "\n";
    log::write(log::Level::kError, e.what());
    report_failure(e.what());
    return kExitRuntime;
  }
}

}  // namespace portrait
