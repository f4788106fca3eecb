// Progress reporting for long work: a one-line bar with rate and ETA when stderr is a
// terminal, periodic plain lines (every `line_interval_s`) otherwise, so CI logs and files
// stay readable.
//
//   Progress bar("prep", total_events, "events");
//   for (...) { ...; bar.add(n); bar.set_postfix("rejects=12"); }
//   bar.finish();
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace portrait {

struct ProgressParams {
  bool force_tty = false;          ///< draw the bar even when stderr is not a TTY (tests)
  bool force_plain = false;        ///< periodic lines even on a TTY
  double line_interval_s = 10.0;   ///< plain mode: seconds between lines
  double redraw_interval_s = 0.1;  ///< bar mode: seconds between redraws
  bool enabled = true;             ///< false: silent (e.g. non-zero ranks)
};

class Progress {
 public:
  /// total = 0 means unknown (no percentage / ETA, only the rate).
  Progress(std::string label, uint64_t total, std::string unit = "it", ProgressParams p = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(uint64_t n = 1);
  void set(uint64_t done);
  void set_total(uint64_t total);
  /// Extra text after the rate, e.g. per-objective losses.
  void set_postfix(std::string text);
  /// Prints the final line (idempotent).
  void finish();

  uint64_t done() const { return done_; }
  /// Formats seconds as "1h02m03s" / "2m03s" / "4.1s".
  static std::string format_duration(double seconds);
  /// The line that would be printed now (also used by tests).
  std::string render(bool final_line) const;

 private:
  void maybe_print(bool force);

  std::string label_, unit_, postfix_;
  uint64_t total_ = 0, done_ = 0;
  ProgressParams params_;
  bool tty_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
  mutable std::mutex mu_;
};

}  // namespace portrait
