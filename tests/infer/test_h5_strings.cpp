// Exports written by other tools: string datasets in the encodings h5py produces.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "infer/embeddings_file.h"

namespace portrait::infer {
namespace {

namespace fs = std::filesystem;

// Writes an export with h5py whose /user_id has numpy dtype `dtype_expr`; returns its path.
fs::path write_with_h5py(const std::string& tag, const std::string& dtype_expr) {
  const fs::path dir = fs::temp_directory_path() / ("portrait_h5_strings_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path out = dir / (tag + ".h5"), script = dir / (tag + ".py"), log = dir / (tag + ".log");
  std::ofstream(script) << "import h5py, numpy as np\n"
                           "ids = ['u%05d' % i for i in range(7)] + ['x' * 32]\n"
                           "e = np.eye(8, 4, dtype=np.float32); e[4:, 0] = 1\n"
                           "with h5py.File('" << out.string() << "', 'w') as f:\n"
                           "    f['embedding'] = e\n"
                           "    f.create_dataset('user_id', data=np.array(ids, dtype=object).astype(" << dtype_expr << "))\n"
                           "    for k, v in dict(format='portrait-embeddings', checkpoint_sha256='0' * 64, split='latest',\n"
                           "                     shards='', dtype='float32').items(): f.attrs[k] = v\n"
                           "    f.attrs['format_version'] = 1; f.attrs['complete'] = 1\n"
                           "print(h5py.File('" << out.string() << "')['user_id'].id.get_type().get_cset())\n";
  const std::string cmd = "'" PORTRAIT_PYTHON "' '" + script.string() + "' > '" + log.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  EXPECT_EQ(rc, 0) << ss.str();
  return out;
}

void expect_ids(const fs::path& p) {
  const EmbeddingsFile e = read_embeddings(p.string());
  ASSERT_EQ(e.n, 8);
  ASSERT_EQ(e.user_id.size(), 8u);
  EXPECT_EQ(e.user_id[0], "u00000");
  EXPECT_EQ(e.user_id[6], "u00006");
  EXPECT_EQ(e.user_id[7], std::string(32, 'x'));  // full width: no terminator in the file
}

TEST(H5Strings, FixedLengthAsciiUserIdsFromH5pyAreRead) {
  expect_ids(write_with_h5py("fixed_ascii", "'S32'"));  // h5py: H5T_CSET_ASCII, NULLPAD
}

TEST(H5Strings, VariableLengthAsciiUserIdsFromH5pyAreRead) {
  expect_ids(write_with_h5py("vlen_ascii", "h5py.string_dtype('ascii')"));
}

TEST(H5Strings, VariableLengthUtf8UserIdsStillRead) {
  expect_ids(write_with_h5py("vlen_utf8", "h5py.string_dtype('utf-8')"));
}

}  // namespace
}  // namespace portrait::infer
