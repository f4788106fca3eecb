// Writes the binary seeds of the HDF5 fuzz targets into tests/fuzz_corpus/{shard,embeddings}/
// (run once by hand when a format changes; the files are committed):
//   portrait_fuzz_make_seeds <repo>/tests/fuzz_corpus
// Small on purpose: a few users, a few events, every split and dataset present.
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "data/shard.h"
#include "infer/embed.h"
#include "infer/h5.h"

using namespace portrait;
namespace fs = std::filesystem;

namespace {

data::ShardContents shard(int users, int events_per_user, bool with_text) {
  data::ShardContents c;
  c.str_attrs = {{"prep_run_id", "0123abcd"}, {"vocab_fingerprint", "fp"},
                 {"tokenizer_sha256", with_text ? "tok" : ""}, {"prep_config", "prep: {}\n"},
                 {"protocol", "temporal"}, {"target_event_types", "click,cart,purchase"}};
  c.int_attrs = {{"shard_index", 0}, {"num_shards", 1}, {"seq_len", 8}, {"text_len", 4},
                 {"label_window_ms", 86400000}, {"train_cutoff_ms", 1700000000000}};
  c.items = {"<pad>", "<oov>", "item_a", "item_b", "item_c"};
  c.item_counts = {0, 1, 5, 3, 2};
  c.categories = {"<pad>", "<oov>", "books"};
  c.category_counts = {0, 0, 10};
  c.event_types = {"<pad>", "view", "click", "cart", "purchase", "review"};
  for (int u = 0; u < users; ++u) c.user_ids.push_back(std::string(32, char('a' + u % 6)));
  for (int s = 0; s < data::kNumSplits; ++s) {
    data::SplitArrays& a = c.splits[s];
    for (int u = 0; u < users - (s == 2 ? 1 : 0); ++u) {
      a.user.push_back(u);
      for (int e = 0; e < events_per_user + u % 2; ++e) {
        a.input_item.push_back(2 + (u + e) % 3);
        a.input_category.push_back(2);
        a.input_event.push_back(1 + e % 4);
        a.input_gap.push_back(e ? 3 : 0);
        a.input_price.push_back(e % 5);
        a.input_ts.push_back(1700000000000 + 1000 * e);
      }
      a.input_offsets.push_back(int64_t(a.input_item.size()));
      if (with_text)
        for (int t = 0; t < 3; ++t) a.text_tokens.push_back(5 + t);
      a.text_offsets.push_back(int64_t(a.text_tokens.size()));
      if (s != data::kLatestSplit) {
        a.target_item.push_back(3);
        a.target_category.push_back(2);
        a.target_event.push_back(4);
        a.target_ts.push_back(1700000100000);
        a.purchase_category.push_back(2);
      }
      a.target_offsets.push_back(int64_t(a.target_item.size()));
      a.purchase_offsets.push_back(int64_t(a.purchase_category.size()));
    }
  }
  return c;
}

void embeddings(const fs::path& out, int n, int d, bool items, bool head, bool f16) {
  std::vector<float> x(size_t(n) * d), it(size_t(5) * d);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) * 0.125f - 0.25f;
  for (size_t i = 0; i < it.size(); ++i) it[i] = float(i % 5) * 0.25f;
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(std::string(32, char('a' + i % 6)));
  infer::h5::H f = infer::h5::create_file(out);
  infer::h5::FloatStorage st{f16, 0, 0};
  infer::h5::write_float(f, "embedding", x.data(), {hsize_t(n), hsize_t(d)}, st);
  infer::h5::write_fixed_strings(f, "user_id", ids);
  if (items) {
    infer::h5::write_float(f, "item_embedding", it.data(), {5, hsize_t(d)}, st);
    infer::h5::write_vlen_strings(f, "item_id", {"<pad>", "<oov>", "item_a", "item_b", "item_c"});
  }
  if (head) {
    const int h = 3, c = 2;
    std::vector<float> w1(size_t(h) * d, 0.5f), b1(h, 0.1f), w2(size_t(c) * h, -0.5f), b2(c, 0.f);
    infer::h5::H g = infer::h5::create_group(f, "head");
    infer::h5::write_float(g, "W1", w1.data(), {hsize_t(h), hsize_t(d)});
    infer::h5::write_float(g, "b1", b1.data(), {hsize_t(h)});
    infer::h5::write_float(g, "W2", w2.data(), {hsize_t(c), hsize_t(h)});
    infer::h5::write_float(g, "b2", b2.data(), {hsize_t(c)});
    infer::h5::write_vlen_strings(g, "target", {"books", "toys"});
    infer::h5::set_attr(g, "activation", "gelu");
    infer::h5::set_attr(g, "hidden", int64_t{h});
    infer::h5::set_attr(g, "targets", int64_t{c});
  }
  infer::h5::set_attr(f, "format", infer::kEmbeddingsFormat);
  infer::h5::set_attr(f, "format_version", infer::kEmbeddingsFormatVersion);
  for (auto* a : {"checkpoint_sha256", "split", "shards", "vocab_fingerprint", "prep_run_id", "tokenizer_sha256"})
    infer::h5::set_attr(f, a, "x");
  infer::h5::set_attr(f, "dtype", f16 ? "float16" : "float32");
  infer::h5::set_attr(f, "dim", int64_t{d});
  infer::h5::set_attr(f, "num_users", int64_t{n});
  infer::h5::set_attr(f, "complete", int64_t{1});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " <repo>/tests/fuzz_corpus\n";
    return 2;
  }
  const fs::path root = argv[1];
  fs::create_directories(root / "shard");
  fs::create_directories(root / "embeddings");
  data::write_shard(root / "shard/small.h5", shard(3, 2, true));
  data::write_shard(root / "shard/no_text.h5", shard(2, 1, false));
  data::write_shard(root / "shard/empty_splits.h5", shard(0, 0, false));
  embeddings(root / "embeddings/full.h5", 4, 4, true, true, false);
  embeddings(root / "embeddings/float16.h5", 3, 2, true, false, true);
  embeddings(root / "embeddings/users_only.h5", 2, 3, false, false, false);
  std::cout << "seeds written under " << root << "\n";
  return 0;
}
