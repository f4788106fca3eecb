// The job's output directory, Hydra style: outputs/YYYY-MM-DD/HH-MM-SS/ (hydra.run.dir moves
// it) holding .hydra/config.yaml (the composed, unresolved config), .hydra/hydra.yaml and
// .hydra/overrides.yaml (a YAML list of the task overrides). hydra.output_subdir=null drops
// .hydra. The files are written once per run directory, atomically, by rank 0 only: a
// restarted job that reuses the directory keeps the original record.
#pragma once

#include <filesystem>

#include "core/config/compose.h"
#include "core/config/interpolate.h"

namespace portrait::cfg {

/// Resolves hydra.run.dir (or the sweep dir for multirun jobs), stores the absolute path in
/// hydra.runtime.output_dir and returns it. Does not touch the filesystem.
std::filesystem::path decide_run_dir(Composed& c, const ResolveContext& ctx, bool multirun);

/// Creates the directory and (when `write_files`) the .hydra files if not yet present.
/// Returns true if the files were written by this call.
bool write_run_dir(const Composed& c, const std::filesystem::path& run_dir, bool write_files);

}  // namespace portrait::cfg
