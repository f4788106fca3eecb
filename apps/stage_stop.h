// How a multi-stage command (portrait demo, and later ones) stops: at the first interrupted or
// failed stage, saying which stage it was and printing the command that resumes from it.
//
// While a stage runs, SIGINT / SIGTERM print that message and end the process at once with
// 128 + signal (130 / 143), as Ctrl-C would, so nothing after the stage runs. A stage that
// handles the signals itself (train: it finishes the step and checkpoints) reports back with
// interrupted(), and the command returns the same status after the same message.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace portrait::apps {

class StageStop {
 public:
  /// `command`: e.g. "demo"; `overrides`: the invocation's overrides (task + hydra), replayed
  /// in the resume command with hydra.run.dir pinned to `run_dir`; `stages`: the stages this
  /// invocation runs, in order.
  StageStop(std::string command, std::vector<std::string> overrides, std::vector<std::string> stages,
            std::filesystem::path run_dir);
  ~StageStop();  ///< restores the signal dispositions found at construction
  StageStop(const StageStop&) = delete;
  StageStop& operator=(const StageStop&) = delete;

  /// The command that reruns the pipeline from `stage` on (train resumes its checkpoint);
  /// arguments setting a key of `drop` are left out.
  std::string resume_command(const std::string& stage, const std::vector<std::string>& drop = {}) const;
  /// Marks `stage` as running: from now on a stop signal prints where and exits.
  void begin(const std::string& stage);
  /// No stage running: a stop signal now exits (128 + signal) without a stage message.
  void end();
  /// Prints the interrupted-stage message; returns the exit status (128 + signal).
  int interrupted(const std::string& stage, int signal, const std::string& detail) const;
  /// Prints that the pipeline stopped on purpose after `stage` (e.g. train.stop_after) and
  /// how to continue; the command then exits 0.
  void paused(const std::string& stage, const std::string& detail) const;
  /// Prints the failed-stage message (the error itself is printed by the command runner).
  void failed(const std::string& stage) const;
  /// The message printed when `stage` stops on `signal` (shown as SIGINT / SIGTERM).
  std::string message(const std::string& stage, int signal, const std::string& detail) const;

 private:
  std::string command_;
  std::vector<std::string> overrides_, stages_;
  std::filesystem::path run_dir_;
};

}  // namespace portrait::apps
