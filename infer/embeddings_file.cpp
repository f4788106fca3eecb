#include "infer/embeddings_file.h"

#include <cmath>
#include <filesystem>
#include <initializer_list>

#include "core/error.h"
#include "data/manifest.h"
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
  e.files.push_back(e.path);
  // A virtual dataset reads missing source files as its fill value (zeros) without an
  // error: every source must be there before a single row is trusted.
  for (const char* name : {"embedding", "user_id"}) {
    if (!h5::exists(f, name)) throw DataError(path + ": lacks dataset /" + std::string(name) + " (corrupt export)");
    h5::H ds(H5Dopen2(f, name, H5P_DEFAULT), H5Dclose);
    h5::H dcpl(H5Dget_create_plist(ds), H5Pclose);
    if (H5Pget_layout(dcpl) != H5D_VIRTUAL) continue;
    size_t count = 0;
    h5::check(H5Pget_virtual_count(dcpl, &count), path + ": virtual dataset /" + name);
    for (size_t i = 0; i < count; ++i) {
      const ssize_t len = H5Pget_virtual_filename(dcpl, i, nullptr, 0);
      std::string src(size_t(std::max<ssize_t>(len, 0)) + 1, '\0');
      H5Pget_virtual_filename(dcpl, i, src.data(), src.size());
      src.resize(size_t(std::max<ssize_t>(len, 0)));
      if (src == ".") continue;
      std::filesystem::path sp(src);
      if (sp.is_relative()) sp = std::filesystem::path(e.path).parent_path() / sp;
      if (!h5::is_hdf5(sp))
        throw DataError(path + ": rows of /" + name + " live in " + sp.string() +
                        ", which is missing or unreadable (an export moved or copied without its .parts "
                        "folder reads as zeros). Copy the .parts folder next to it, or re-run `portrait embed` "
                        "with embed.stitch=consolidate for a self-contained file.");
      if (std::string(name) == "embedding") e.files.push_back(sp.string());
    }
  }
  std::vector<hsize_t> dims;
  // Shapes are checked here, once: every consumer indexes rows as [i * dim, (i + 1) * dim).
  auto shape = [&](const std::string& what, size_t rank, std::initializer_list<int64_t> want) {
    bool ok = dims.size() == rank;
    size_t k = 0;
    for (int64_t w : want) {
      if (ok && w >= 0 && int64_t(dims[k]) != w) ok = false;
      ++k;
    }
    if (!ok) {
      std::string got;
      for (size_t i = 0; i < dims.size(); ++i) got += (i ? " x " : "") + std::to_string(dims[i]);
      throw DataError(path + ": " + what + " has shape [" + got + "], which does not fit the export (corrupt file?)");
    }
  };
  e.x = h5::read_float(f, "embedding", &dims);
  shape("/embedding", 2, {});
  e.n = int64_t(dims.at(0));
  e.dim = int64_t(dims.at(1));
  e.user_id = h5::read_strings(f, "user_id");
  e.checkpoint_sha256 = h5::attr_str(f, "checkpoint_sha256");
  e.split = h5::attr_str(f, "split");
  e.shards = h5::attr_str(f, "shards");
  e.dtype = h5::attr_str(f, "dtype");
  if (int64_t(e.user_id.size()) != e.n) throw DataError(path + ": /user_id and /embedding differ in length");
  if (h5::has_attr(f, "vocab_fingerprint")) e.vocab_fingerprint = h5::attr_str(f, "vocab_fingerprint");
  if (h5::has_attr(f, "prep_run_id")) e.prep_run_id = h5::attr_str(f, "prep_run_id");
  if (h5::has_attr(f, "tokenizer_sha256")) e.tokenizer_sha256 = h5::attr_str(f, "tokenizer_sha256");
  auto finite = [&](const std::vector<float>& v, int64_t cols, const std::string& what) {
    int64_t bad = 0, first = -1;
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i])) {
        if (first < 0) first = int64_t(i) / std::max<int64_t>(cols, 1);
        ++bad;
      }
    if (bad)
      throw DataError(path + ": " + std::to_string(bad) + " non-finite value(s) in " + what + " (first in row " +
                      std::to_string(first) + (what == "/embedding" ? ", user " + e.user_id[size_t(first)] : "") +
                      "): the model that wrote it is corrupt or diverged. Re-run `portrait embed` with a "
                      "valid model.");
  };
  finite(e.x, e.dim, "/embedding");
  if (items && h5::exists(f, "item_embedding")) {
    e.items = h5::read_float(f, "item_embedding", &dims);
    shape("/item_embedding", 2, {-1, e.dim});
    e.n_items = int64_t(dims.at(0));
    e.item_id = h5::read_strings(f, "item_id");
    if (int64_t(e.item_id.size()) != e.n_items)
      throw DataError(path + ": /item_id and /item_embedding differ in length (corrupt file?)");
  }
  if (head && h5::exists(f, "head")) {
    h5::H g = h5::open_group(f, "head");
    e.w1 = h5::read_float(g, "W1", &dims);
    shape("/head/W1", 2, {-1, e.dim});
    e.head_hidden = int64_t(dims.at(0));
    e.b1 = h5::read_float(g, "b1", &dims);
    shape("/head/b1", 1, {e.head_hidden});
    e.w2 = h5::read_float(g, "W2", &dims);
    shape("/head/W2", 2, {-1, e.head_hidden});
    e.head_targets = int64_t(dims.at(0));
    e.b2 = h5::read_float(g, "b2", &dims);
    shape("/head/b2", 1, {e.head_targets});
    e.head_target = h5::read_strings(g, "target");
    if (int64_t(e.head_target.size()) != e.head_targets)
      throw DataError(path + ": /head/target and /head/W2 differ in length (corrupt file?)");
    e.head_activation = h5::attr_str(g, "activation");
    if (h5::exists(g, "calibration")) {
      auto c = h5::read_strings(g, "calibration");
      if (c.size() != 1) throw DataError(path + ": /head/calibration must hold one JSON text (corrupt file?)");
      e.head_calibration = c[0];
    }
    finite(e.w1, e.dim, "/head/W1");
    finite(e.b1, 1, "/head/b1");
    finite(e.w2, e.head_hidden, "/head/W2");
    finite(e.b2, 1, "/head/b2");
  }
  if (items) finite(e.items, e.dim, "/item_embedding");
  return e;
}

std::vector<NamedInput> embeddings_inputs(const EmbeddingsFile& e, const std::string& key) {
  std::vector<NamedInput> v;
  for (const auto& f : e.files) v.push_back({key, f});
  return v;
}

void check_same_vocabulary(const EmbeddingsFile& e, const std::string& shards, const std::string& key) {
  const data::PrepManifest m = data::verify_prep_dir(shards);
  if (!e.vocab_fingerprint.empty() && m.vocab_fingerprint != e.vocab_fingerprint)
    throw DataError(key + " '" + shards + "' comes from another prep than " + e.path +
                    " (vocabulary fingerprint " + m.vocab_fingerprint.substr(0, 12) + " vs the export's " +
                    e.vocab_fingerprint.substr(0, 12) + "): its item and category ids mean other things. Point " + key +
                    " at the shards the model was trained and embedded on (" + e.shards + ").");
}

void tag_derived_file(int64_t file_id, const char* format, const EmbeddingsFile& src,
                      const std::string& config_yaml) {
  hid_t f = hid_t(file_id);
  h5::set_attr(f, "format", format);
  h5::set_attr(f, "format_version", int64_t{1});
  h5::set_attr(f, "embeddings", src.path);
  h5::set_attr(f, "checkpoint_sha256", src.checkpoint_sha256);
  h5::set_attr(f, "vocab_fingerprint", src.vocab_fingerprint);
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
