#include "models/memory_budget.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace portrait {

namespace {

double embedding_params(const ModelConfig& c) {
  const double d = double(c.d_model);
  const double rows = double(std::max<int64_t>(c.n_items, 1) + std::max<int64_t>(c.n_categories, 1) +
                             std::max<int64_t>(c.n_event_types, 1) + std::max<int64_t>(c.n_gap_buckets, 1) +
                             std::max<int64_t>(c.n_price_buckets, 1) + std::max<int64_t>(c.n_text_tokens, 1) + 1 +
                             c.max_events + c.max_text_tokens + 3);
  return rows * d + double(std::max<int64_t>(c.n_items, 1)) * double(c.repeat_dim);
}

double head_params(const ModelConfig& c) {
  if (c.n_targets <= 0) return 0;
  return double(c.embed_dim + 1) * double(c.head_hidden) + double(c.head_hidden + 1) * double(c.n_targets);
}

double all_params(const ModelConfig& c) {
  return embedding_params(c) + double(c.non_embedding_params()) + head_params(c);
}

// Floats saved per token per layer for backward: layer-norm inputs and outputs, q/k/v, the
// attention output, the residuals (~10 d), the feed-forward input/activation (~2 d_ff), and the
// attention probabilities (heads x S).
double activation_floats(const ModelConfig& c, double rows) {
  const double S = double(1 + c.max_events + c.max_text_tokens);
  const double per_token = double(c.n_layers) * (10.0 * double(c.d_model) + 2.0 * double(c.d_ff) +
                                                 double(c.n_heads) * S) +
                           6.0 * double(c.d_model);
  return rows * S * per_token;
}

std::string gib(double b) { return fmt::format("{:.1f} GiB", b / double(1ull << 30)); }

int64_t read_limit(const char* path) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return -1;
  try {
    const long long v = std::stoll(s);
    return v > 0 && v < (1ll << 60) ? v : -1;  // v1 reports "no limit" as a huge number
  } catch (...) {
    return -1;
  }
}

}  // namespace

double MemoryEstimate::total() const {
  double t = 0;
  for (const auto& x : terms) t += x.bytes;
  return t;
}

const MemoryTerm& MemoryEstimate::largest() const {
  return *std::max_element(terms.begin(), terms.end(),
                           [](const MemoryTerm& a, const MemoryTerm& b) { return a.bytes < b.bytes; });
}

MemoryEstimate estimate_train_memory(const ModelConfig& c, int64_t rows, int64_t uniform_negatives,
                                     bool full_softmax) {
  MemoryEstimate e;
  const double r = double(std::max<int64_t>(rows, 1));
  e.terms.push_back({"weights, gradients and AdamW state", 16.0 * all_params(c),
                     {"model.d_model", "model.n_layers", "model.d_ff"}});
  e.terms.push_back({"saved activations", 4.0 * activation_floats(c, r),
                     {"train.batch_size", "model.max_events", "model.d_model"}});
  // Dense objective: rows * L queries; logits, their softmax and its gradient (x3).
  const double queries = r * double(c.max_events);
  const double candidates = full_softmax ? double(std::max<int64_t>(c.n_items, 1))
                                         : queries + double(std::max<int64_t>(uniform_negatives, 0));
  e.terms.push_back({"contrastive logits", 3.0 * 4.0 * queries * candidates,
                     full_softmax ? std::vector<std::string>{"train.batch_size", "model.max_events", "train.loss.negatives"}
                                  : std::vector<std::string>{"train.batch_size", "model.max_events"}});
  return e;
}

MemoryEstimate estimate_infer_memory(const ModelConfig& c, int64_t rows) {
  MemoryEstimate e;
  const double r = double(std::max<int64_t>(rows, 1));
  e.terms.push_back({"weights", 4.0 * all_params(c), {"model.d_model", "model.n_layers", "model.d_ff"}});
  ModelConfig one = c;
  one.n_layers = 1;  // no graph is kept: about one layer's tensors are alive at a time
  e.terms.push_back({"activations", 4.0 * activation_floats(one, r), {"embed.batch_size", "model.max_events"}});
  return e;
}

int64_t available_host_memory_bytes() {
  int64_t avail = -1;
  {
    std::ifstream f("/proc/meminfo");
    std::string key, unit;
    long long kb = 0;
    while (f >> key >> kb) {
      std::getline(f, unit);
      if (key == "MemAvailable:") {
        avail = int64_t(kb) * 1024;
        break;
      }
    }
  }
  if (avail < 0) {
    const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = int64_t(pages) * page;
  }
  // A container's limit is lower than the host's free memory.
  int64_t limit = read_limit("/sys/fs/cgroup/memory.max"), used = read_limit("/sys/fs/cgroup/memory.current");
  if (limit < 0) {
    limit = read_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_limit("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (limit > 0) {
    const int64_t room = std::max<int64_t>(limit - std::max<int64_t>(used, 0), 0);
    avail = avail < 0 ? room : std::min(avail, room);
  }
  return avail;
}

void check_memory_budget(const MemoryEstimate& e, int64_t available_bytes, const std::string& device) {
  if (available_bytes < 0 || e.terms.empty()) return;
  const double total = e.total();
  if (total <= double(available_bytes)) return;
  const MemoryTerm& big = e.largest();
  std::string keys;
  for (size_t i = 0; i < big.keys.size(); ++i) keys += (i ? ", " : "") + big.keys[i];
  std::string parts;
  for (const auto& t : e.terms) parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", t.what, gib(t.bytes));
  throw ConfigError(fmt::format(
      "config key '{}' is too large for this machine: the run needs about {} ({}), but {} has {} available. "
      "Lower {} (the largest term, {}, depends on {}).",
      big.keys.front(), gib(total), parts, device, gib(double(available_bytes)), big.keys.front(), big.what, keys));
}

}  // namespace portrait
