#include "apps/stage_stop.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>

namespace portrait::apps {

namespace {

// The handler may only use async-signal-safe calls: it writes a message prepared before the
// stage began and _exit()s. Two buffers (SIGINT, SIGTERM), swapped in by begin().
std::string g_msg_int, g_msg_term;
std::atomic<bool> g_armed{false};
struct sigaction g_old_int {}, g_old_term {};

extern "C" void on_stage_signal(int sig) {
  if (g_armed.load()) {
    const std::string& m = sig == SIGINT ? g_msg_int : g_msg_term;
    ssize_t ignored = ::write(STDERR_FILENO, m.data(), m.size());
    (void)ignored;
  }
  ::_exit(128 + sig);
}

std::string shell_quote(const std::string& s) {
  static const std::string kSafe =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=./:@%,";
  if (!s.empty() && s.find_first_not_of(kSafe) == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool starts_with_key(const std::string& arg, const std::string& key) {
  std::string a = arg.substr(std::min(arg.size(), arg.find_first_not_of("+~")));
  return a.rfind(key + "=", 0) == 0 || a == key;
}

}  // namespace

StageStop::StageStop(std::string command, std::vector<std::string> overrides, std::vector<std::string> stages,
                     std::filesystem::path run_dir)
    : command_(std::move(command)), overrides_(std::move(overrides)), stages_(std::move(stages)),
      run_dir_(std::filesystem::absolute(run_dir)) {
  struct sigaction sa {};
  sa.sa_handler = on_stage_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StageStop::~StageStop() {
  g_armed.store(false);
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

std::string StageStop::resume_command(const std::string& stage, const std::vector<std::string>& drop) const {
  std::string cmd = "portrait " + command_;
  for (const auto& o : overrides_) {
    if (starts_with_key(o, "hydra.run.dir") || starts_with_key(o, command_ + ".stages") ||
        starts_with_key(o, "train.resume") ||
        std::any_of(drop.begin(), drop.end(), [&](const std::string& k) { return starts_with_key(o, k); }))
      continue;
    cmd += " " + shell_quote(o);
  }
  auto it = std::find(stages_.begin(), stages_.end(), stage);
  std::string rest;
  for (auto s = it; s != stages_.end(); ++s) rest += (s == it ? "" : ",") + *s;
  cmd += " " + shell_quote(fmt::format("{}.stages=[{}]", command_, rest));
  if (std::find(it, stages_.end(), std::string("train")) != stages_.end()) cmd += " train.resume=auto";
  cmd += " " + shell_quote("hydra.run.dir=" + run_dir_.string());
  return cmd;
}

std::string StageStop::message(const std::string& stage, int signal, const std::string& detail) const {
  auto it = std::find(stages_.begin(), stages_.end(), stage);
  std::string skipped;
  if (it != stages_.end())
    for (auto s = it + 1; s != stages_.end(); ++s) skipped += (skipped.empty() ? "" : ", ") + *s;
  return fmt::format("{}: interrupted by {} during stage '{}'{}; {}\nresume with:\n  {}\n", command_,
                     signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : fmt::format("signal {}", signal),
                     stage, detail.empty() ? "" : " (" + detail + ")",
                     skipped.empty() ? "it was the last stage" : "not run: " + skipped, resume_command(stage));
}

void StageStop::begin(const std::string& stage) {
  g_armed.store(false);
  g_msg_int = message(stage, SIGINT, "");
  g_msg_term = message(stage, SIGTERM, "");
  std::cout.flush();  // _exit() from the handler would drop buffered output
  g_armed.store(true);
}

void StageStop::end() { g_armed.store(false); }

int StageStop::interrupted(const std::string& stage, int signal, const std::string& detail) const {
  std::cout.flush();
  std::cerr << message(stage, signal, detail);
  return 128 + signal;
}

void StageStop::paused(const std::string& stage, const std::string& detail) const {
  auto it = std::find(stages_.begin(), stages_.end(), stage);
  std::string skipped;
  if (it != stages_.end())
    for (auto s = it + 1; s != stages_.end(); ++s) skipped += (skipped.empty() ? "" : ", ") + *s;
  std::cout << fmt::format("{}: stopped during stage '{}' ({}); not run: {}\ncontinue with:\n  {}\n", command_,
                           stage, detail, skipped.empty() ? "nothing" : skipped,
                           resume_command(stage, {"train.stop_after"}));  // continue to the end
  std::cout.flush();
}

void StageStop::failed(const std::string& stage) const {
  std::cout.flush();
  std::cerr << fmt::format("{}: stage '{}' failed (error below); after fixing it, resume with:\n  {}\n", command_,
                           stage, resume_command(stage));
}

}  // namespace portrait::apps
