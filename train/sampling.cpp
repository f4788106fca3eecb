#include "train/sampling.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "data/schema.h"
#include "data/shard.h"

namespace portrait::train {

namespace {
// Partial Fisher-Yates: the first k entries of v become a uniform sample without replacement.
void choose(std::vector<int64_t>& v, int64_t k, Rng& rng) {
  const size_t n = v.size();
  for (size_t i = 0; i < size_t(k) && i < n; ++i) std::swap(v[i], v[i + rng.below(n - i)]);
  if (size_t(k) < n) v.resize(size_t(k));
}
}  // namespace

uint64_t row_seed(uint64_t seed, const data::Batch& b, int64_t r) {
  const uint64_t user = size_t(r) < b.user_index.size() ? uint64_t(b.user_index[size_t(r)]) : uint64_t(r);
  return mix64(seed, user + 0x7a11ULL);
}

PositiveTypes parse_positive_types(const std::string& names, const std::string& where) {
  PositiveTypes out(data::kNumEventTypes + 1, 0);
  size_t a = 0;
  while (a <= names.size()) {
    size_t e = names.find(',', a);
    if (e == std::string::npos) e = names.size();
    const std::string name = names.substr(a, e - a);
    if (!name.empty()) {
      auto t = data::canonical_event_type(name);
      if (!t) throw DataError(where + ": target_event_types holds '" + name + "', not an event type");
      out[size_t(*t)] = 1;
    }
    a = e + 1;
  }
  return out;
}

Pairs sample_dense_pairs(const data::Batch& b, int64_t per_user, int64_t window, const PositiveTypes& positive_type,
                         uint64_t seed, bool skip_same_item, bool with_targets) {
  Pairs out;
  std::vector<int64_t> cand, pos;
  std::vector<int32_t> tail;  // the row's valid targets, in order, after its inputs
  for (int64_t r = 0; r < b.rows; ++r) {
    Rng rng(row_seed(seed, b, r));
    const int64_t n = b.length[size_t(r)];
    const size_t base = size_t(r * b.L);
    tail.clear();
    if (with_targets)
      for (int64_t k = 0; k < b.M; ++k) {
        const size_t t = size_t(r * b.M + k);
        if (b.target_mask[t] > 0 && b.target_item[t] >= kFirstRealItem) tail.push_back(b.target_item[t]);
      }
    // Positions [0, n) are the inputs (queries and positives), [n, n + |tail|) the targets
    // (positives only: they have no state). Targets are target-type events by construction.
    const int64_t N = n + int64_t(tail.size());
    auto item_at = [&](int64_t j) { return j < n ? b.item[base + size_t(j)] : tail[size_t(j - n)]; };
    auto positive = [&](int64_t j) {
      if (j >= n) return true;
      const int32_t e = b.event[base + size_t(j)];
      return e >= 0 && size_t(e) < positive_type.size() && positive_type[size_t(e)] &&
             b.item[base + size_t(j)] >= kFirstRealItem;
    };
    cand.clear();
    if (!skip_same_item) {
      // next_pos[i] = number of positives in (i, i+window]: sliding count from the right.
      std::vector<int32_t> pref(size_t(N + 1), 0);
      for (int64_t j = 0; j < N; ++j) pref[size_t(j + 1)] = pref[size_t(j)] + (positive(j) ? 1 : 0);
      for (int64_t i = 0; i < n && i + 1 < N; ++i) {
        int64_t hi = std::min(N - 1, i + window);
        if (pref[size_t(hi + 1)] - pref[size_t(i + 1)] > 0) cand.push_back(i);
      }
    } else {
      // Eligible: a positive whose item is not the query event's own (a funnel's next step on
      // the same item is the repeat channel's job, not a transition to learn).
      for (int64_t i = 0; i < n && i + 1 < N; ++i)
        for (int64_t j = i + 1; j < N; ++j)
          if (positive(j) && item_at(j) != item_at(i)) {
            cand.push_back(i);
            break;
          }
    }
    if (per_user > 0) choose(cand, per_user, rng);
    std::sort(cand.begin(), cand.end());
    for (int64_t i : cand) {
      pos.clear();
      if (!skip_same_item) {
        for (int64_t j = i + 1; j <= std::min(N - 1, i + window); ++j)
          if (positive(j)) pos.push_back(j);
      } else {
        for (int64_t j = i + 1; j < N && int64_t(pos.size()) < window; ++j)
          if (positive(j) && item_at(j) != item_at(i)) pos.push_back(j);
      }
      int64_t j = pos[rng.below(pos.size())];
      out.owner.push_back(r);
      out.position.push_back(r * b.L + i);
      out.target.push_back(item_at(j));
    }
  }
  return out;
}

Pairs sample_future_pairs(const data::Batch& b, int64_t per_user, uint64_t seed) {
  Pairs out;
  std::vector<int64_t> cand;
  for (int64_t r = 0; r < b.rows; ++r) {
    Rng rng(row_seed(seed ^ 0xf17u, b, r));
    cand.clear();
    for (int64_t k = 0; k < b.M; ++k) {
      size_t s = size_t(r * b.M + k);
      if (b.target_mask[s] > 0 && b.target_item[s] >= kFirstRealItem) {
        int64_t item = b.target_item[s];
        if (std::find(cand.begin(), cand.end(), item) == cand.end()) cand.push_back(item);
      }
    }
    choose(cand, per_user, rng);
    for (int64_t item : cand) {
      out.owner.push_back(r);
      out.position.push_back(-1);
      out.target.push_back(item);
    }
  }
  return out;
}

Pairs apply_item_mask(data::Batch& b, double p, uint64_t seed) {
  Pairs out;
  for (int64_t r = 0; r < b.rows; ++r) {
    Rng rng(row_seed(seed ^ 0x3a5cu, b, r));
    for (int64_t i = 0; i < b.length[size_t(r)]; ++i) {
      size_t s = size_t(r * b.L + i);
      if (b.item[s] < kFirstRealItem) continue;
      if (!rng.bernoulli(p)) continue;
      out.owner.push_back(r);
      out.position.push_back(r * b.L + i);
      out.target.push_back(b.item[s]);
      b.item[s] = 0;
    }
  }
  return out;
}

TrainStats compute_train_stats(const std::filesystem::path& shard_dir, int64_t n_items,
                               int64_t n_categories) {
  TrainStats st;
  st.item_positive_counts.assign(size_t(std::max<int64_t>(n_items, 0)), 0);
  std::vector<int64_t> buyers(size_t(std::max<int64_t>(n_categories, 0)), 0);
  for (const auto& path : data::list_shards(shard_dir)) {
    auto c = data::read_shard(path, {"train"}, /*with_vocab=*/false);
    if (st.positive.empty()) {
      auto it = c.str_attrs.find("tokenizer_sha256");
      if (it != c.str_attrs.end()) st.tokenizer_sha256 = it->second;
      st.protocol = c.str_attrs["protocol"];
      auto tt = c.str_attrs.find("target_event_types");
      if (tt == c.str_attrs.end()) throw DataError("shard '" + path.string() + "' lacks the target_event_types attribute");
      st.positive = parse_positive_types(tt->second, "shard '" + path.string() + "'");
    }
    const auto& a = c.splits[0];
    st.users += int64_t(a.size());
    for (size_t k = 0; k < a.input_item.size(); ++k)
      if (a.input_event[k] >= 0 && size_t(a.input_event[k]) < st.positive.size() && st.positive[size_t(a.input_event[k])] &&
          a.input_item[k] >= 0 && a.input_item[k] < n_items)
        ++st.item_positive_counts[size_t(a.input_item[k])];
    for (size_t k = 0; k < a.target_item.size(); ++k)
      if (a.target_item[k] >= 0 && a.target_item[k] < n_items) ++st.item_positive_counts[size_t(a.target_item[k])];
    std::vector<int32_t> seen;
    for (size_t r = 0; r + 1 < a.target_offsets.size(); ++r) {
      seen.assign(a.input_item.begin() + a.input_offsets[r], a.input_item.begin() + a.input_offsets[r + 1]);
      std::sort(seen.begin(), seen.end());
      for (int64_t k = a.target_offsets[r]; k < a.target_offsets[r + 1]; ++k) {
        const int32_t t = a.target_item[size_t(k)];
        if (t < 2) continue;  // padding / OOV
        ++st.targets;
        st.repeat_targets += std::binary_search(seen.begin(), seen.end(), t);
      }
    }
    for (int32_t cat : a.purchase_category)
      if (cat >= 0 && cat < n_categories) ++buyers[size_t(cat)];
  }
  st.purchase_rate.assign(buyers.size(), 0.0);
  for (size_t c = 0; c < buyers.size(); ++c)
    st.purchase_rate[c] = st.users ? double(buyers[c]) / double(st.users) : 0.0;
  return st;
}

int64_t resolve_repeat_dim(const ModelConfig& m, const TrainStats& st) {
  if (!m.repeat_auto) return m.repeat_dim;
  const double rate = st.targets ? double(st.repeat_targets) / double(st.targets) : 0.0;
  return rate >= ModelConfig::kRepeatAutoMinRate ? m.repeat_dim : 0;
}

uint64_t step_seed(uint64_t seed, int64_t step, int64_t micro) {
  return mix64(mix64(seed, uint64_t(step)), uint64_t(micro) + 0x5eedULL);
}

}  // namespace portrait::train
