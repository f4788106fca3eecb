#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <fmt/format.h>

namespace portrait {

Progress::Progress(std::string label, uint64_t total, std::string unit, ProgressParams p)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), params_(p) {
  tty_ = params_.force_tty || (!params_.force_plain && isatty(STDERR_FILENO));
  start_ = last_print_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::add(uint64_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ += n;
  }
  maybe_print(false);
}
void Progress::set(uint64_t done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = done;
  }
  maybe_print(false);
}
void Progress::set_total(uint64_t total) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ = total;
}
void Progress::set_postfix(std::string text) {
  std::lock_guard<std::mutex> lock(mu_);
  postfix_ = std::move(text);
}

std::string Progress::format_duration(double s) {
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto t = static_cast<long long>(s + 0.5);
  if (t < 3600) return fmt::format("{}m{:02d}s", t / 60, static_cast<int>(t % 60));
  return fmt::format("{}h{:02d}m{:02d}s", t / 3600, static_cast<int>((t / 60) % 60),
                     static_cast<int>(t % 60));
}

std::string Progress::render(bool final_line) const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string rate_s = rate >= 1e6   ? fmt::format("{:.2f}M", rate / 1e6)
                       : rate >= 1e3 ? fmt::format("{:.1f}k", rate / 1e3)
                                     : fmt::format("{:.1f}", rate);
  std::string out;
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    constexpr int kWidth = 24;
    int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    double eta = rate > 0 ? static_cast<double>(total_ - std::min(done_, total_)) / rate : 0.0;
    out = fmt::format("{} [{}] {:5.1f}% {}/{} {} | {} | {} {}/s | {} {}", label_, bar, frac * 100.0,
                      done_, total_, unit_, format_duration(elapsed), rate_s, unit_,
                      final_line ? "done" : "ETA", final_line ? "" : format_duration(eta));
  } else {
    out = fmt::format("{} {} {} | {} | {} {}/s", label_, done_, unit_, format_duration(elapsed),
                      rate_s, unit_);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (!postfix_.empty()) out += " | " + postfix_;
  return out;
}

void Progress::maybe_print(bool force) {
  if (!params_.enabled) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  double interval = tty_ ? params_.redraw_interval_s : params_.line_interval_s;
  if (!force && since < interval) return;
  last_print_ = now;
  std::string line = render(false);
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (!params_.enabled) return;
  std::string line = render(true);
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s\n", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace portrait
