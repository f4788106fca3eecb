#include "infer/embeddings_file.h"

#include <filesystem>

#include "core/error.h"
#include "infer/embed.h"
#include "infer/h5.h"

namespace portrait::infer {

EmbeddingsFile read_embeddings(const std::string& path, bool items, bool head) {
  if (!h5::is_hdf5(path)) throw DataError(path + ": not an HDF5 file (run `portrait embed` first)");
  h5::H f = h5::open_file(path);
  if (!h5::has_attr(f, "format") || h5::attr_str(f, "format") != kEmbeddingsFormat)
    throw DataError(path + ": not a portrait-embeddings file (attribute format)");
  if (h5::attr_i64(f, "format_version") != kEmbeddingsFormatVersion)
    throw DataError(path + ": unsupported format_version " +
                    std::to_string(h5::attr_i64(f, "format_version")));
  if (!h5::has_attr(f, "complete") || h5::attr_i64(f, "complete") != 1)
    throw DataError(path + ": incomplete export");
  EmbeddingsFile e;
  e.path = std::filesystem::absolute(path).string();
  std::vector<hsize_t> dims;
  e.x = h5::read_float(f, "embedding", &dims);
  e.n = int64_t(dims.at(0));
  e.dim = int64_t(dims.at(1));
  e.user_id = h5::read_strings(f, "user_id");
  e.checkpoint_sha256 = h5::attr_str(f, "checkpoint_sha256");
  e.split = h5::attr_str(f, "split");
  e.shards = h5::attr_str(f, "shards");
  e.dtype = h5::attr_str(f, "dtype");
  if (int64_t(e.user_id.size()) != e.n) throw DataError(path + ": /user_id and /embedding differ in length");
  if (items && h5::exists(f, "item_embedding")) {
    e.items = h5::read_float(f, "item_embedding", &dims);
    e.n_items = int64_t(dims.at(0));
    e.item_id = h5::read_strings(f, "item_id");
  }
  if (head && h5::exists(f, "head")) {
    h5::H g = h5::open_group(f, "head");
    e.w1 = h5::read_float(g, "W1", &dims);
    e.head_hidden = int64_t(dims.at(0));
    e.b1 = h5::read_float(g, "b1");
    e.w2 = h5::read_float(g, "W2", &dims);
    e.head_targets = int64_t(dims.at(0));
    e.b2 = h5::read_float(g, "b2");
    e.head_target = h5::read_strings(g, "target");
    e.head_activation = h5::attr_str(g, "activation");
  }
  return e;
}

void tag_derived_file(int64_t file_id, const char* format, const EmbeddingsFile& src,
                      const std::string& config_yaml) {
  hid_t f = hid_t(file_id);
  h5::set_attr(f, "format", format);
  h5::set_attr(f, "format_version", int64_t{1});
  h5::set_attr(f, "embeddings", src.path);
  h5::set_attr(f, "checkpoint_sha256", src.checkpoint_sha256);
  h5::set_attr(f, "split", src.split);
  h5::set_attr(f, "config_yaml", config_yaml);
  h5::set_attr(f, "created_utc", h5::utc_now());
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

}  // namespace portrait::infer
