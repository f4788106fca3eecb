// Fuzz target: the HDF5 shard readers of data/shard.h, as the loader and prep's consumers
// use them: read_shard (attributes, vocabularies, every split) and ShardSplitReader per split
// (constructor, read_rows on the first, last and repeated rows, read_user_ids). The input is
// written to a file and opened (HDF5 needs a path). Seeds are real shards (fuzz/make_seeds).
//
// Expected outcomes of a corrupt file: DataError, or std::runtime_error from an HDF5 call that
// failed (data/shard.cpp's check(): "HDF5 error: <dataset>", exit code 1). A crash, a
// sanitizer report, a logic_error / out_of_range / length_error, or an allocation far beyond
// the file's size is a finding.
#include <stdexcept>
#include <vector>

#include "data/shard.h"
#include "fuzz/fuzz_util.h"

using namespace portrait;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::scratch_dir() / "shard_00000.h5";
  fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data), size));
  auto runtime_ok = [](auto&& f) {
    try {
      fuzz::expect_clean_errors(f);
    } catch (const std::runtime_error& e) {
      if (std::string_view(e.what()).rfind("HDF5 error: ", 0) != 0) throw;
    }
  };
  runtime_ok([&] { (void)data::read_shard(path); });
  for (const char* split : data::kSplitNames) {
    runtime_ok([&] {
      data::ShardSplitReader r(path, split);
      (void)r.num_items();
      const int64_t n = r.rows();
      if (n > 0) {
        std::vector<int64_t> rows = {n - 1, 0, n - 1};
        for (int64_t i = 1; i < n && i < 8; ++i) rows.push_back(i);
        const data::SplitArrays a = r.read_rows(rows);
        if (a.size() != rows.size() || a.input_offsets.size() != rows.size() + 1 ||
            a.input_item.size() != size_t(a.input_offsets.back()) ||
            a.text_tokens.size() != size_t(a.text_offsets.back()))
          fuzz::property_failed("read_rows returned inconsistent arrays");
      }
      std::vector<std::string> ids;
      std::vector<int32_t> user;
      r.read_user_ids(ids, user);
    });
  }
  return 0;
}
