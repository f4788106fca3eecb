// Fuzz target: the reader of `portrait embed` exports (infer/embeddings_file.h, torch-free:
// compiled into the target from infer/embeddings_file.cpp and infer/h5.cpp), with items and
// purchase heads, as segment / search / score / profile read them. The input is written to a
// file and opened. Seeds: a consolidated export with items and head (fuzz/make_seeds).
//
// Expected outcomes of a corrupt file: DataError, or std::runtime_error from a failed HDF5
// call (infer/h5.h check(): "<what>: HDF5 error"). Anything else is a finding.
#include <stdexcept>

#include "fuzz/fuzz_util.h"
#include "infer/embeddings_file.h"

using namespace portrait;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::scratch_dir() / "embeddings.h5";
  fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    fuzz::expect_clean_errors([&] {
      const infer::EmbeddingsFile e = infer::read_embeddings(path.string(), true, true);
      if (e.x.size() != size_t(e.n) * size_t(e.dim) || e.user_id.size() != size_t(e.n))
        fuzz::property_failed("read_embeddings returned inconsistent sizes");
    });
  } catch (const std::runtime_error& e) {
    const std::string_view m = e.what();
    if (m.size() < 12 || m.substr(m.size() - 12) != ": HDF5 error") throw;
  }
  return 0;
}
