#include "data/loader.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "data/manifest.h"

namespace portrait::data {

Loader::Loader(LoaderParams p) : p_(std::move(p)) {
  if (p_.world < 1 || p_.rank < 0 || p_.rank >= p_.world)
    throw ConfigError("loader: rank " + std::to_string(p_.rank) + " is not in [0, world=" +
                      std::to_string(p_.world) + ")");
  if (p_.batch_size < 1) throw ConfigError("loader: batch_size must be >= 1");
  split_ = split_index(p_.split);
  if (split_ < 0) throw ConfigError("loader: split '" + p_.split + "' is not train, val, test or latest");
  const PrepManifest manifest = verify_prep_dir(p_.shard_dir);
  run_id_ = manifest.prep_run_id;
  fingerprint_ = manifest.vocab_fingerprint;
  std::vector<std::filesystem::path> files;
  for (const auto& s : manifest.shards) files.push_back(std::filesystem::path(p_.shard_dir) / s.file);
  std::string sha;
  for (size_t i = 0; i < files.size(); ++i) {
    int64_t rows;
    std::map<std::string, std::string> str_attrs;
    std::map<std::string, int64_t> int_attrs;
    if (p_.lazy) {
      readers_.push_back(std::make_unique<ShardSplitReader>(files[i], p_.split));
      const auto& r = *readers_.back();
      str_attrs = r.str_attrs();
      int_attrs = r.int_attrs();
      rows = r.rows();
      if (i == 0) {
        C_ = r.num_categories();
        I_ = r.num_items();
      }
    } else {
      shards_.push_back(read_shard(files[i], {p_.split}, /*with_vocab=*/i == 0));
      auto& c = shards_.back();
      str_attrs = c.str_attrs;
      int_attrs = c.int_attrs;
      rows = int64_t(c.splits[split_].size());
      if (i == 0) {
        C_ = int64_t(c.categories.size());
        I_ = int64_t(c.items.size());
      }
    }
    // A file under a listed name but from another run (copied in, or written by a concurrent
    // prep) has the right size only by chance; its run id says where it came from.
    if (str_attrs["prep_run_id"] != manifest.prep_run_id || int_attrs["shard_index"] != int64_t(i) ||
        int_attrs["num_shards"] != manifest.num_shards)
      throw DataError("shard '" + files[i].string() + "' belongs to prep run '" + str_attrs["prep_run_id"] +
                      "' (shard " + std::to_string(int_attrs["shard_index"]) + " of " +
                      std::to_string(int_attrs["num_shards"]) + "), but " + kManifestFile + " in " + p_.shard_dir +
                      " lists it as shard " + std::to_string(i) + " of " + std::to_string(manifest.num_shards) +
                      " of run '" + manifest.prep_run_id +
                      "'. Re-run `portrait prep` into an empty prep.output_dir.");
    if (i == 0) {
      attrs_ = str_attrs;
      sha = str_attrs["tokenizer_sha256"];
      L_ = int_attrs["seq_len"];
      T_ = int_attrs["text_len"];
    } else if (str_attrs["tokenizer_sha256"] != sha || int_attrs["seq_len"] != L_) {
      throw DataError("shard '" + files[i].string() +
                      "' comes from a different prep run (tokenizer or seq_len differs from " +
                      files[0].string() + ")");
    }
    starts_.push_back(total_);
    total_ += rows;
  }
  starts_.push_back(total_);
  ids_.resize(files.size());
}

Loader::~Loader() { stop_workers(); }

void Loader::locate(int64_t g, size_t& shard, size_t& row) const {
  if (g < 0 || g >= total_) throw std::out_of_range("user index out of range");
  shard = size_t(std::upper_bound(starts_.begin(), starts_.end(), g) - starts_.begin() - 1);
  row = size_t(g - starts_[shard]);
}

const std::string& Loader::user_id(int64_t g) const {
  size_t s, r;
  locate(g, s, r);
  if (!p_.lazy) return shards_[s].user_ids[size_t(shards_[s].splits[split_].user[r])];
  std::lock_guard<std::mutex> lk(ids_mu_);
  if (!ids_[s]) {
    auto u = std::make_unique<UserIds>();
    readers_[s]->read_user_ids(u->ids, u->user);
    ids_[s] = std::move(u);
  }
  return ids_[s]->ids[size_t(ids_[s]->user[r])];
}

int64_t Loader::batches_per_epoch() const {
  const int64_t G = int64_t(p_.batch_size) * p_.world;
  return p_.drop_last ? total_ / G : (total_ + G - 1) / G;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> v(static_cast<size_t>(total_));
  std::iota(v.begin(), v.end(), 0);
  if (p_.shuffle) {
    Rng r(mix64(p_.seed, uint64_t(epoch)));
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[r.below(i)]);
  }
  return v;
}

std::vector<int64_t> Loader::rank_indices(int64_t epoch, int64_t b) const {
  auto order = epoch_order(epoch);
  const int64_t G = int64_t(p_.batch_size) * p_.world;
  std::vector<int64_t> out;
  for (int64_t k = b * G + p_.rank; k < std::min<int64_t>((b + 1) * G, total_); k += p_.world)
    out.push_back(order[size_t(k)]);
  return out;
}

Batch Loader::make_batch(const std::vector<int64_t>& users) const {
  Batch b;
  const int64_t B = int64_t(users.size()), L = L_, T = T_, M = p_.max_targets, C = C_;
  b.rows = B;
  b.L = L;
  b.T = T;
  b.M = M;
  b.C = C;
  b.user_index = users;
  b.length.assign(size_t(B), 0);
  for (auto* v : {&b.item, &b.category, &b.event, &b.gap, &b.price}) v->assign(size_t(B * L), 0);
  b.input_mask.assign(size_t(B * L), 0.f);
  b.text.assign(size_t(B * T), 0);
  b.text_mask.assign(size_t(B * T), 0.f);
  for (auto* v : {&b.target_item, &b.target_category, &b.target_event}) v->assign(size_t(B * M), 0);
  b.target_mask.assign(size_t(B * M), 0.f);
  b.purchase.assign(size_t(B * C), 0.f);
  // Row i of the batch comes from row `r` of split arrays `a`.
  auto fill = [&](int64_t i, const SplitArrays& a, size_t r) {
    int64_t lo = a.input_offsets[r], hi = a.input_offsets[r + 1];
    int64_t n = std::min(hi - lo, L);
    lo = hi - n;  // most recent L
    b.length[size_t(i)] = int32_t(n);
    for (int64_t k = 0; k < n; ++k) {
      size_t dst = size_t(i * L + k), src = size_t(lo + k);
      b.item[dst] = a.input_item[src];
      b.category[dst] = a.input_category[src];
      b.event[dst] = a.input_event[src];
      b.gap[dst] = a.input_gap[src];
      b.price[dst] = a.input_price[src];
      b.input_mask[dst] = 1.f;
    }
    int64_t tlo = a.text_offsets[r], thi = a.text_offsets[r + 1];
    int64_t tn = std::min(thi - tlo, T);
    for (int64_t k = 0; k < tn; ++k) {
      b.text[size_t(i * T + k)] = a.text_tokens[size_t(thi - tn + k)];
      b.text_mask[size_t(i * T + k)] = 1.f;
    }
    int64_t glo = a.target_offsets[r], ghi = std::min(a.target_offsets[r + 1], glo + M);
    for (int64_t k = 0; k < ghi - glo; ++k) {
      size_t dst = size_t(i * M + k), src = size_t(glo + k);
      b.target_item[dst] = a.target_item[src];
      b.target_category[dst] = a.target_category[src];
      b.target_event[dst] = a.target_event[src];
      b.target_mask[dst] = 1.f;
    }
    for (int64_t k = a.purchase_offsets[r]; k < a.purchase_offsets[r + 1]; ++k) {
      int32_t c = a.purchase_category[size_t(k)];
      if (c >= 0 && c < C) b.purchase[size_t(i * C + c)] = 1.f;
    }
  };
  if (!p_.lazy) {
    for (int64_t i = 0; i < B; ++i) {
      size_t s, r;
      locate(users[size_t(i)], s, r);
      fill(i, shards_[s].splits[split_], r);
    }
    return b;
  }
  // Lazy: one read per shard touched, with that shard's rows of the batch.
  std::map<size_t, std::vector<std::pair<int64_t, int64_t>>> by_shard;  // shard -> (batch row, shard row)
  for (int64_t i = 0; i < B; ++i) {
    size_t s, r;
    locate(users[size_t(i)], s, r);
    by_shard[s].emplace_back(i, int64_t(r));
  }
  std::vector<int64_t> rows;
  for (auto& [s, v] : by_shard) {
    rows.clear();
    for (auto& [i, r] : v) rows.push_back(r);
    const SplitArrays a = readers_[s]->read_rows(rows);
    for (size_t k = 0; k < v.size(); ++k) fill(v[k].first, a, k);
  }
  return b;
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  ready_.clear();
  stop_ = false;
  error_ = nullptr;
}

void Loader::start_epoch(int64_t epoch, int64_t start_sample) {
  stop_workers();
  const int64_t G = int64_t(p_.batch_size) * p_.world;
  if (start_sample % G != 0)
    throw ConfigError("loader: resume offset " + std::to_string(start_sample) +
                      " is not a multiple of the global batch " + std::to_string(G) +
                      " (batch_size * world)");
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  first_batch_ = next_batch_ = next_claim_ = start_sample / G;
  end_batch_ = batches_per_epoch();
  for (int t = 0; t < std::max(1, p_.threads); ++t) {
    workers_.emplace_back([this, G] {
      for (;;) {
        int64_t b;
        {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return stop_ || next_claim_ >= end_batch_ || next_claim_ < next_batch_ + p_.prefetch; });
          if (stop_ || next_claim_ >= end_batch_) return;
          b = next_claim_++;
        }
        try {
          std::vector<int64_t> users;
          for (int64_t k = b * G + p_.rank; k < std::min<int64_t>((b + 1) * G, total_); k += p_.world)
            users.push_back(order_[size_t(k)]);
          Batch batch = make_batch(users);
          batch.global_batch = b;
          std::lock_guard<std::mutex> lk(mu_);
          ready_[b] = std::move(batch);
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu_);
          error_ = std::current_exception();
        }
        cv_.notify_all();
      }
    });
  }
}

bool Loader::next(Batch& out) {
  std::unique_lock<std::mutex> lk(mu_);
  if (workers_.empty() && next_batch_ == 0 && order_.empty()) {
    lk.unlock();
    start_epoch(0);
    lk.lock();
  }
  if (next_batch_ >= end_batch_) return false;
  cv_.wait(lk, [&] { return error_ || ready_.count(next_batch_); });
  if (error_) std::rethrow_exception(error_);
  out = std::move(ready_[next_batch_]);
  ready_.erase(next_batch_);
  ++next_batch_;
  lk.unlock();
  cv_.notify_all();
  return true;
}

}  // namespace portrait::data
