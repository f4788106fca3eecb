#include "data/shard.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "core/error.h"
#include "core/fs.h"
#include "data/manifest.h"

namespace portrait::data {
namespace {

// libhdf5 1.10 closes every file still in its ID table from an atexit handler. A file whose
// close failed (a full disk at the final flush) stays there in a broken state, and that handler
// then segfaults after an orderly error exit. Every file is closed by RAII before exit anyway,
// so the handler has nothing to do: turn it off before the library initialises.
[[maybe_unused]] const bool kHdf5NoAtexit = [] {
  H5dont_atexit();
  return true;
}();

// The Debian HDF5 build is not guaranteed thread-safe: serialize all calls.
std::mutex& h5_mutex() {
  static std::mutex m;
  return m;
}

struct H {  // RAII hid_t
  hid_t id;
  herr_t (*close)(hid_t);
  H(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~H() {
    if (id >= 0) close(id);
  }
  operator hid_t() const { return id; }
};

void check(herr_t rc, const std::string& what) {
  if (rc < 0) throw std::runtime_error("HDF5 error: " + what);
}

template <typename T> hid_t h5type();
template <> hid_t h5type<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t h5type<int64_t>() { return H5T_NATIVE_INT64; }

// Object creation properties without modification times, so the same contents always give
// the same bytes (reruns, and one-process vs multi-rank prep, produce identical shards).
hid_t untimed(hid_t cls) {
  static hid_t dcpl = -1, gcpl = -1;  // callers hold h5_mutex()
  hid_t& h = cls == H5P_DATASET_CREATE ? dcpl : gcpl;
  if (h < 0) {
    h = H5Pcreate(cls);
    H5Pset_obj_track_times(h, false);
  }
  return h;
}

template <typename T>
void write_vec(hid_t loc, const char* name, const std::vector<T>& v) {
  hsize_t dims[1] = {hsize_t(v.size())};
  H space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  H ds(H5Dcreate2(loc, name, h5type<T>(), space, H5P_DEFAULT, untimed(H5P_DATASET_CREATE), H5P_DEFAULT),
       H5Dclose);
  if (ds < 0) throw std::runtime_error(std::string("HDF5: cannot create dataset ") + name);
  if (!v.empty()) check(H5Dwrite(ds, h5type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), name);
}

H str_type() {
  H t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void write_strings(hid_t loc, const char* name, const std::vector<std::string>& v) {
  std::vector<const char*> ptrs;
  ptrs.reserve(v.size());
  for (auto& s : v) ptrs.push_back(s.c_str());
  hsize_t dims[1] = {hsize_t(v.size())};
  H space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  H t = str_type();
  H ds(H5Dcreate2(loc, name, t, space, H5P_DEFAULT, untimed(H5P_DATASET_CREATE), H5P_DEFAULT), H5Dclose);
  if (ds < 0) throw std::runtime_error(std::string("HDF5: cannot create dataset ") + name);
  if (!v.empty()) check(H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), name);
}

void attr_str(hid_t loc, const std::string& name, const std::string& val) {
  H t = str_type();
  H space(H5Screate(H5S_SCALAR), H5Sclose);
  H a(H5Acreate2(loc, name.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* p = val.c_str();
  check(H5Awrite(a, t, &p), name);
}

void attr_int(hid_t loc, const std::string& name, int64_t val) {
  H space(H5Screate(H5S_SCALAR), H5Sclose);
  H a(H5Acreate2(loc, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  check(H5Awrite(a, H5T_NATIVE_INT64, &val), name);
}

// Elements of the 1-D dataset `ds`, checked against the bytes the file holds for it before
// anything is allocated: a corrupt header must not make a reader allocate terabytes, nor read
// a dataset of another rank into a 1-D buffer (HDF5 would write past its end).
hsize_t checked_length(hid_t ds, const std::string& name, const std::string& file) {
  if (ds < 0) throw DataError("shard '" + file + "' has an unreadable dataset '" + name + "' (corrupt file?)");
  H space(H5Dget_space(ds), H5Sclose);
  const int rank = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  if (rank != 1)
    throw DataError("shard '" + file + "' dataset '" + name + "' has " + std::to_string(rank) +
                    " dimensions, expected 1 (corrupt file?)");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  if (n == 0) return 0;
  H type(H5Dget_type(ds), H5Tclose);
  H dcpl(H5Dget_create_plist(ds), H5Pclose);
  H fid(H5Iget_file_id(ds), H5Fclose);
  hsize_t file_bytes = 0;
  const size_t elem = type < 0 ? 0 : H5Tget_size(type);
  const hsize_t stored = H5Dget_storage_size(ds);
  const bool filtered = dcpl >= 0 && H5Pget_nfilters(dcpl) > 0;
  // Unfiltered data takes `elem` bytes per element; deflate packs at most ~1032:1.
  const long double have =
      (long double)(fid >= 0 && H5Fget_filesize(fid, &file_bytes) >= 0 ? std::min(stored, file_bytes) : stored) *
      (filtered ? 1100.0L : 1.0L);
  if (elem == 0 || (long double)n * (long double)elem > have)
    throw DataError("shard '" + file + "' dataset '" + name + "' claims " + std::to_string(n) +
                    " elements but the file holds " + std::to_string(stored) + " bytes for it (corrupt file?)");
  return n;
}

template <typename T>
std::vector<T> read_vec(hid_t loc, const std::string& name, const std::string& file) {
  if (H5Lexists(loc, name.c_str(), H5P_DEFAULT) <= 0)
    throw DataError("shard '" + file + "' lacks dataset '" + name + "'");
  H ds(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  const hsize_t n = checked_length(ds, name, file);
  std::vector<T> v(n);
  if (n) check(H5Dread(ds, h5type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), name);
  return v;
}

std::vector<std::string> read_strings(hid_t loc, const std::string& name, const std::string& file) {
  if (H5Lexists(loc, name.c_str(), H5P_DEFAULT) <= 0)
    throw DataError("shard '" + file + "' lacks dataset '" + name + "'");
  H ds(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  const hsize_t n = checked_length(ds, name, file);
  H space(H5Dget_space(ds), H5Sclose);
  std::vector<char*> ptrs(n);
  H t = str_type();
  std::vector<std::string> out;
  if (n) {
    check(H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), name);
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(t, space, H5P_DEFAULT, ptrs.data());
  }
  return out;
}

herr_t collect_attr(hid_t loc, const char* name, const H5A_info_t*, void* op) {
  auto* c = static_cast<ShardContents*>(op);
  H a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  H t(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(t) == H5T_STRING) {
    H st = str_type();
    char* p = nullptr;
    if (H5Tis_variable_str(t) > 0 && H5Aread(a, st, &p) >= 0) {
      c->str_attrs[name] = p ? p : "";
      H space(H5Screate(H5S_SCALAR), H5Sclose);
      H5Dvlen_reclaim(st, space, H5P_DEFAULT, &p);
    }
  } else if (H5Tget_class(t) == H5T_INTEGER) {
    int64_t v = 0;
    if (H5Aread(a, H5T_NATIVE_INT64, &v) >= 0) c->int_attrs[name] = v;
  }
  return 0;
}

struct ErrSilencer {  // HDF5 prints its error stack by default; we report our own errors.
  H5E_auto2_t fn;
  void* data;
  ErrSilencer() {
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~ErrSilencer() { H5Eset_auto2(H5E_DEFAULT, fn, data); }
};

}  // namespace

int split_index(std::string_view name) {
  for (int s = 0; s < kNumSplits; ++s)
    if (name == kSplitNames[s]) return s;
  return -1;
}

ShardWriter::ShardWriter(const std::filesystem::path& path, const ShardContents& c) {
  std::lock_guard<std::mutex> lk(h5_mutex());
  std::filesystem::create_directories(path.parent_path().empty() ? "." : path.parent_path());
  out_ = std::make_unique<AtomicOutput>(path);
  hid_t f = H5Fcreate(out_->temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("cannot create HDF5 file " + out_->temp_path().string());
  file_ = f;
  attr_str(f, "format", kShardFormat);
  attr_int(f, "format_version", kShardFormatVersion);
  for (auto& [k, v] : c.str_attrs)
    if (k != "format") attr_str(f, k, v);
  for (auto& [k, v] : c.int_attrs)
    if (k != "format_version") attr_int(f, k, v);
  {
    H g(H5Gcreate2(f, "vocab", H5P_DEFAULT, untimed(H5P_GROUP_CREATE), H5P_DEFAULT), H5Gclose);
    write_strings(g, "items", c.items);
    write_vec(g, "item_counts", c.item_counts);
    write_strings(g, "categories", c.categories);
    write_vec(g, "category_counts", c.category_counts);
    write_strings(g, "event_types", c.event_types);
  }
  {
    H g(H5Gcreate2(f, "users", H5P_DEFAULT, untimed(H5P_GROUP_CREATE), H5P_DEFAULT), H5Gclose);
    write_strings(g, "id", c.user_ids);
  }
}

ShardWriter::~ShardWriter() {
  std::lock_guard<std::mutex> lk(h5_mutex());
  if (file_ >= 0) H5Fclose(hid_t(file_));
}

namespace {
void write_split_arrays(hid_t f, int s, const SplitArrays& a) {
  H g(H5Gcreate2(f, kSplitNames[s], H5P_DEFAULT, untimed(H5P_GROUP_CREATE), H5P_DEFAULT), H5Gclose);
  write_vec(g, "user", a.user);
  write_vec(g, "input_offsets", a.input_offsets);
  write_vec(g, "input_item", a.input_item);
  write_vec(g, "input_category", a.input_category);
  write_vec(g, "input_event", a.input_event);
  write_vec(g, "input_gap", a.input_gap);
  write_vec(g, "input_price", a.input_price);
  write_vec(g, "input_ts", a.input_ts);
  write_vec(g, "text_offsets", a.text_offsets);
  write_vec(g, "text_tokens", a.text_tokens);
  write_vec(g, "target_offsets", a.target_offsets);
  write_vec(g, "target_item", a.target_item);
  write_vec(g, "target_category", a.target_category);
  write_vec(g, "target_event", a.target_event);
  write_vec(g, "target_ts", a.target_ts);
  write_vec(g, "purchase_offsets", a.purchase_offsets);
  write_vec(g, "purchase_category", a.purchase_category);
}
}  // namespace

void ShardWriter::write_split(int s, const SplitArrays& a) {
  if (s != next_split_) throw std::logic_error("ShardWriter: splits must be written in order");
  std::lock_guard<std::mutex> lk(h5_mutex());
  errno = 0;
  try {
    write_split_arrays(hid_t(file_), s, a);
  } catch (const std::runtime_error& e) {
    // HDF5 reports "write failed"; errno still holds why (a full disk, a size limit).
    if (errno == ENOSPC || errno == EFBIG || errno == EDQUOT) throw_write_error("cannot write", out_->temp_path(), errno);
    throw std::runtime_error(out_->temp_path().string() + ": " + e.what());
  }
  ++next_split_;
}



void ShardWriter::commit() {
  if (next_split_ != kNumSplits) throw std::logic_error("ShardWriter: commit before every split was written");
  {
    std::lock_guard<std::mutex> lk(h5_mutex());
    // A full disk often shows only in the final flush or close; a file whose close failed
    // must not be renamed into place (the temporary one is removed by out_'s destructor).
    errno = 0;
    const herr_t flushed = H5Fflush(hid_t(file_), H5F_SCOPE_GLOBAL);
    const herr_t closed = H5Fclose(hid_t(file_));
    file_ = -1;
    if ((flushed < 0 || closed < 0) && (errno == ENOSPC || errno == EFBIG || errno == EDQUOT))
      throw_write_error("cannot write", out_->temp_path(), errno);
    if (flushed < 0 || closed < 0)
      throw std::runtime_error("cannot write " + out_->temp_path().string() +
                               ": HDF5 could not flush or close it (is the disk or quota full? free space there or "
                               "write the output elsewhere; the unfinished file was removed)");
  }
  out_->commit();
}

void write_shard(const std::filesystem::path& path, const ShardContents& c) {
  ShardWriter w(path, c);
  for (int s = 0; s < kNumSplits; ++s) w.write_split(s, c.splits[s]);
  w.commit();
}

ShardContents read_shard(const std::filesystem::path& path, const std::vector<std::string>& splits,
                         bool with_vocab) {
  std::lock_guard<std::mutex> lk(h5_mutex());
  ErrSilencer quiet;
  const std::string file = path.string();
  H f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (f < 0) throw DataError("cannot open shard '" + file + "' (missing or not an HDF5 file)");
  ShardContents c;
  hsize_t idx = 0;
  H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &c);
  if (c.str_attrs["format"] != kShardFormat)
    throw DataError("'" + file + "' is not a portrait shard (attribute format = '" +
                    c.str_attrs["format"] + "', expected '" + kShardFormat + "')");
  if (c.int_attrs["format_version"] != kShardFormatVersion)
    throw DataError("shard '" + file + "' has format_version " +
                    std::to_string(c.int_attrs["format_version"]) + "; this build reads version " +
                    std::to_string(kShardFormatVersion) + ". Re-run `portrait prep`.");
  c.user_ids = read_strings(f, "users/id", file);
  if (with_vocab) {
    c.items = read_strings(f, "vocab/items", file);
    c.item_counts = read_vec<int64_t>(f, "vocab/item_counts", file);
    c.categories = read_strings(f, "vocab/categories", file);
    c.category_counts = read_vec<int64_t>(f, "vocab/category_counts", file);
    c.event_types = read_strings(f, "vocab/event_types", file);
  }
  for (int s = 0; s < kNumSplits; ++s) {
    if (std::find(splits.begin(), splits.end(), kSplitNames[s]) == splits.end()) continue;
    std::string g = std::string(kSplitNames[s]) + "/";
    SplitArrays& a = c.splits[s];
    a.user = read_vec<int32_t>(f, g + "user", file);
    a.input_offsets = read_vec<int64_t>(f, g + "input_offsets", file);
    a.input_item = read_vec<int32_t>(f, g + "input_item", file);
    a.input_category = read_vec<int32_t>(f, g + "input_category", file);
    a.input_event = read_vec<int32_t>(f, g + "input_event", file);
    a.input_gap = read_vec<int32_t>(f, g + "input_gap", file);
    a.input_price = read_vec<int32_t>(f, g + "input_price", file);
    a.input_ts = read_vec<int64_t>(f, g + "input_ts", file);
    a.text_offsets = read_vec<int64_t>(f, g + "text_offsets", file);
    a.text_tokens = read_vec<int32_t>(f, g + "text_tokens", file);
    a.target_offsets = read_vec<int64_t>(f, g + "target_offsets", file);
    a.target_item = read_vec<int32_t>(f, g + "target_item", file);
    a.target_category = read_vec<int32_t>(f, g + "target_category", file);
    a.target_event = read_vec<int32_t>(f, g + "target_event", file);
    a.target_ts = read_vec<int64_t>(f, g + "target_ts", file);
    a.purchase_offsets = read_vec<int64_t>(f, g + "purchase_offsets", file);
    a.purchase_category = read_vec<int32_t>(f, g + "purchase_category", file);
    // Every reader indexes the arrays through the offsets: each family's offsets must start
    // at 0, never decrease and end at the length of every array they index.
    auto family_ok = [&](const std::vector<int64_t>& off, std::initializer_list<size_t> lengths) {
      if (off.size() != a.user.size() + 1 || off.front() != 0) return false;
      for (size_t i = 1; i < off.size(); ++i)
        if (off[i] < off[i - 1]) return false;
      for (size_t n : lengths)
        if (n != uint64_t(off.back())) return false;
      return true;
    };
    if (!family_ok(a.input_offsets, {a.input_item.size(), a.input_category.size(), a.input_event.size(),
                                     a.input_gap.size(), a.input_price.size(), a.input_ts.size()}) ||
        !family_ok(a.text_offsets, {a.text_tokens.size()}) ||
        !family_ok(a.target_offsets, {a.target_item.size(), a.target_category.size(), a.target_event.size(),
                                      a.target_ts.size()}) ||
        !family_ok(a.purchase_offsets, {a.purchase_category.size()}))
      throw DataError("shard '" + file + "' split '" + kSplitNames[s] +
                      "' has inconsistent offsets (corrupt file?)");
  }
  return c;
}

namespace {

hsize_t dataset_length(hid_t loc, const std::string& name, const std::string& file) {
  if (H5Lexists(loc, name.c_str(), H5P_DEFAULT) <= 0)
    throw DataError("shard '" + file + "' lacks dataset '" + name + "'");
  H ds(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose);
  return checked_length(ds, name, file);
}

// Elements at `coords`, in that order.
template <typename T>
void read_points(hid_t ds, const std::string& name, const std::vector<hsize_t>& coords,
                 std::vector<T>& out) {
  out.resize(coords.size());
  if (coords.empty()) return;
  H fspace(H5Dget_space(ds), H5Sclose);
  check(H5Sselect_elements(fspace, H5S_SELECT_SET, coords.size(), coords.data()), name);
  hsize_t n = coords.size();
  H mspace(H5Screate_simple(1, &n, nullptr), H5Sclose);
  check(H5Dread(ds, h5type<T>(), mspace, fspace, H5P_DEFAULT, out.data()), name);
}

// The union of [lo, hi) ranges (increasing, disjoint, non-empty), concatenated.
template <typename T>
void read_ranges(hid_t ds, const std::string& name, const std::vector<std::pair<hsize_t, hsize_t>>& ranges,
                 hsize_t total, std::vector<T>& out) {
  out.resize(total);
  if (total == 0) return;
  H fspace(H5Dget_space(ds), H5Sclose);
  check(H5Sselect_none(fspace), name);
  for (auto [lo, hi] : ranges) {
    hsize_t start = lo, count = hi - lo;
    check(H5Sselect_hyperslab(fspace, H5S_SELECT_OR, &start, nullptr, &count, nullptr), name);
  }
  H mspace(H5Screate_simple(1, &total, nullptr), H5Sclose);
  check(H5Dread(ds, h5type<T>(), mspace, fspace, H5P_DEFAULT, out.data()), name);
}

// One ragged family of a split: its offsets dataset and the arrays it indexes.
struct Family {
  const char* offsets;
  std::vector<int64_t> SplitArrays::*out_offsets;
  std::vector<std::pair<const char*, std::vector<int32_t> SplitArrays::*>> i32;
  std::vector<std::pair<const char*, std::vector<int64_t> SplitArrays::*>> i64;
};
const std::vector<Family>& families() {
  static const std::vector<Family> f = {
      {"input_offsets", &SplitArrays::input_offsets,
       {{"input_item", &SplitArrays::input_item}, {"input_category", &SplitArrays::input_category},
        {"input_event", &SplitArrays::input_event}, {"input_gap", &SplitArrays::input_gap},
        {"input_price", &SplitArrays::input_price}},
       {{"input_ts", &SplitArrays::input_ts}}},
      {"text_offsets", &SplitArrays::text_offsets, {{"text_tokens", &SplitArrays::text_tokens}}, {}},
      {"target_offsets", &SplitArrays::target_offsets,
       {{"target_item", &SplitArrays::target_item}, {"target_category", &SplitArrays::target_category},
        {"target_event", &SplitArrays::target_event}},
       {{"target_ts", &SplitArrays::target_ts}}},
      {"purchase_offsets", &SplitArrays::purchase_offsets,
       {{"purchase_category", &SplitArrays::purchase_category}}, {}},
  };
  return f;
}

// Length of the shortest array a family indexes: the bound of its offsets.
template <typename Extents>
uint64_t family_length(const Family& fam, const Extents& extents) {
  uint64_t n = UINT64_MAX;
  for (auto& [name, member] : fam.i32) n = std::min<uint64_t>(n, extents.at(name).length);
  for (auto& [name, member] : fam.i64) n = std::min<uint64_t>(n, extents.at(name).length);
  return n;
}

}  // namespace

ShardSplitReader::ShardSplitReader(std::filesystem::path path, const std::string& split)
    : path_(std::move(path)), split_(split) {
  std::lock_guard<std::mutex> lk(h5_mutex());
  ErrSilencer quiet;
  const std::string file = path_.string();
  H f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (f < 0) throw DataError("cannot open shard '" + file + "' (missing or not an HDF5 file)");
  ShardContents c;
  hsize_t idx = 0;
  H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &c);
  if (c.str_attrs["format"] != kShardFormat)
    throw DataError("'" + file + "' is not a portrait shard (attribute format = '" +
                    c.str_attrs["format"] + "', expected '" + kShardFormat + "')");
  if (c.int_attrs["format_version"] != kShardFormatVersion)
    throw DataError("shard '" + file + "' has format_version " +
                    std::to_string(c.int_attrs["format_version"]) + "; this build reads version " +
                    std::to_string(kShardFormatVersion) + ". Re-run `portrait prep`.");
  str_attrs_ = std::move(c.str_attrs);
  int_attrs_ = std::move(c.int_attrs);
  rows_ = int64_t(dataset_length(f, split_ + "/user", file));
  if (int64_t(dataset_length(f, split_ + "/input_offsets", file)) != rows_ + 1)
    throw DataError("shard '" + file + "' split '" + split_ + "' has inconsistent offsets (corrupt file?)");
  items_ = int64_t(dataset_length(f, "vocab/items", file));
  cats_ = int64_t(dataset_length(f, "vocab/categories", file));
  // Byte extents for the pread() fast path (contiguous, native type, allocated when non-empty).
  raw_ = true;
  auto probe = [&](const std::string& name, hid_t native) {
    const std::string full = split_ + "/" + name;
    if (H5Lexists(f, full.c_str(), H5P_DEFAULT) <= 0)
      throw DataError("shard '" + file + "' lacks dataset '" + full + "'");
    H ds(H5Dopen2(f, full.c_str(), H5P_DEFAULT), H5Dclose);
    H dcpl(H5Dget_create_plist(ds), H5Pclose);
    H type(H5Dget_type(ds), H5Tclose);
    H space(H5Dget_space(ds), H5Sclose);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space, &n, nullptr);
    const haddr_t off = H5Dget_offset(ds);
    Extent e;
    e.length = n;
    e.offset = off == HADDR_UNDEF ? 0 : uint64_t(off);
    if (H5Pget_layout(dcpl) != H5D_CONTIGUOUS || H5Tequal(type, native) <= 0 || (n > 0 && off == HADDR_UNDEF))
      raw_ = false;
    e.length = checked_length(ds, full, file);
    extents_[name] = e;
  };
  probe("user", H5T_NATIVE_INT32);
  for (const Family& fam : families()) {
    probe(fam.offsets, H5T_NATIVE_INT64);
    if (int64_t(extents_.at(fam.offsets).length) != rows_ + 1)
      throw DataError("shard '" + file + "' split '" + split_ + "' has inconsistent offsets (corrupt file?)");
    for (auto& [name, member] : fam.i32) probe(name, H5T_NATIVE_INT32);
    for (auto& [name, member] : fam.i64) probe(name, H5T_NATIVE_INT64);
  }
}

namespace {
constexpr int kMaxOpenShardFiles = 256;
std::atomic<int> g_open_shard_files{0};

void pread_full(int fd, void* dst, size_t n, uint64_t off, const std::string& file) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, n, off_t(off));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw DataError("cannot read shard '" + file + "' (truncated file?)");
    p += got;
    n -= size_t(got);
    off += uint64_t(got);
  }
}
}  // namespace

ShardSplitReader::~ShardSplitReader() {
  if (fd_ >= 0) {
    ::close(fd_);
    --g_open_shard_files;
  }
}

int ShardSplitReader::acquire_fd(bool& temporary) const {
  std::lock_guard<std::mutex> lk(fd_mu_);
  temporary = false;
  if (fd_ >= 0) return fd_;
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError("cannot open shard '" + path_.string() + "'");
  if (g_open_shard_files.fetch_add(1) < kMaxOpenShardFiles) {
    fd_ = fd;
  } else {
    --g_open_shard_files;
    temporary = true;
  }
  return fd;
}

SplitArrays ShardSplitReader::read_rows(const std::vector<int64_t>& rows) const {
  for (int64_t r : rows)
    if (r < 0 || r >= rows_) throw std::out_of_range("shard row out of range");
  std::vector<int64_t> u(rows);
  std::sort(u.begin(), u.end());
  u.erase(std::unique(u.begin(), u.end()), u.end());
  SplitArrays got = raw_ ? read_rows_raw(u) : read_rows_hdf5(u);  // unique rows, increasing
  if (u.size() == rows.size() && std::equal(u.begin(), u.end(), rows.begin())) return got;
  // Requested order (repeats allowed).
  SplitArrays out;
  for (int64_t r : rows) {
    const size_t i = size_t(std::lower_bound(u.begin(), u.end(), r) - u.begin());
    out.user.push_back(got.user[i]);
    for (const Family& fam : families()) {
      const auto& go = got.*fam.out_offsets;
      auto& oo = out.*fam.out_offsets;
      const int64_t lo = go[i], hi = go[i + 1];
      for (auto& [name, member] : fam.i32)
        (out.*member).insert((out.*member).end(), (got.*member).begin() + lo, (got.*member).begin() + hi);
      for (auto& [name, member] : fam.i64)
        (out.*member).insert((out.*member).end(), (got.*member).begin() + lo, (got.*member).begin() + hi);
      oo.push_back(oo.back() + (hi - lo));
    }
  }
  return out;
}

SplitArrays ShardSplitReader::read_rows_raw(const std::vector<int64_t>& u) const {
  bool temporary = false;
  const int fd = acquire_fd(temporary);
  struct Closer {
    int fd;
    bool on;
    ~Closer() {
      if (on) ::close(fd);
    }
  } closer{fd, temporary};
  const std::string file = path_.string();
  SplitArrays got;
  const Extent& ue = extents_.at("user");
  got.user.resize(u.size());
  for (size_t i = 0; i < u.size(); ++i)
    pread_full(fd, &got.user[i], 4, ue.offset + uint64_t(u[i]) * 4, file);
  std::vector<int64_t> lo(u.size()), hi(u.size());
  for (const Family& fam : families()) {
    const Extent& oe = extents_.at(fam.offsets);
    auto& oo = got.*fam.out_offsets;
    oo.assign(1, 0);
    for (size_t i = 0; i < u.size(); ++i) {
      int64_t b[2];
      pread_full(fd, b, 16, oe.offset + uint64_t(u[i]) * 8, file);
      if (b[1] < b[0]) throw DataError("shard '" + file + "' has decreasing " + fam.offsets + " (corrupt file?)");
      if (b[0] < 0 || uint64_t(b[1]) > family_length(fam, extents_))
        throw DataError("shard '" + file + "' has " + fam.offsets + " past the arrays they index (corrupt file?)");
      lo[i] = b[0];
      hi[i] = b[1];
      oo.push_back(oo.back() + (b[1] - b[0]));
    }
    auto read_all = [&](const char* name, auto& v) {
      using T = typename std::remove_reference_t<decltype(v)>::value_type;
      const Extent& e = extents_.at(name);
      v.resize(size_t(oo.back()));
      for (size_t i = 0; i < u.size(); ++i) {
        if (hi[i] == lo[i]) continue;
        if (uint64_t(hi[i]) > e.length) throw DataError("shard '" + file + "' has offsets past " + name + " (corrupt file?)");
        pread_full(fd, v.data() + oo[i], size_t(hi[i] - lo[i]) * sizeof(T), e.offset + uint64_t(lo[i]) * sizeof(T), file);
      }
    };
    for (auto& [name, member] : fam.i32) read_all(name, got.*member);
    for (auto& [name, member] : fam.i64) read_all(name, got.*member);
  }
  return got;
}

SplitArrays ShardSplitReader::read_rows_hdf5(const std::vector<int64_t>& u) const {
  std::vector<hsize_t> at(u.begin(), u.end()), bounds;
  for (int64_t r : u) {
    bounds.push_back(hsize_t(r));
    bounds.push_back(hsize_t(r + 1));
  }
  SplitArrays got;
  std::lock_guard<std::mutex> lk(h5_mutex());
  ErrSilencer quiet;
  const std::string file = path_.string();
  H fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_sieve_buf_size(fapl, 0);  // rows are small scattered ranges: no 64 KiB sieve reads
  H f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, fapl), H5Fclose);
  if (f < 0) throw DataError("cannot open shard '" + file + "' (missing or not an HDF5 file)");
  H g(H5Gopen2(f, split_.c_str(), H5P_DEFAULT), H5Gclose);
  if (g < 0) throw DataError("shard '" + file + "' lacks split '" + split_ + "'");
  auto ds = [&](const char* name) {
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) throw DataError("shard '" + file + "' lacks dataset '" + split_ + "/" + name + "'");
    return H(d, H5Dclose);
  };
  read_points(ds("user"), "user", at, got.user);
  for (const Family& fam : families()) {
    std::vector<int64_t> b;
    read_points(ds(fam.offsets), fam.offsets, bounds, b);
    std::vector<std::pair<hsize_t, hsize_t>> ranges;
    auto& oo = got.*fam.out_offsets;
    oo.assign(1, 0);
    for (size_t i = 0; i < u.size(); ++i) {
      const int64_t lo = b[2 * i], hi = b[2 * i + 1];
      if (hi < lo) throw DataError("shard '" + file + "' has decreasing " + fam.offsets + " (corrupt file?)");
      if (lo < 0 || uint64_t(hi) > family_length(fam, extents_))
        throw DataError("shard '" + file + "' has " + fam.offsets + " past the arrays they index (corrupt file?)");
      if (hi > lo) ranges.emplace_back(hsize_t(lo), hsize_t(hi));
      oo.push_back(oo.back() + (hi - lo));
    }
    const hsize_t total = hsize_t(oo.back());
    for (auto& [name, member] : fam.i32) read_ranges(ds(name), name, ranges, total, got.*member);
    for (auto& [name, member] : fam.i64) read_ranges(ds(name), name, ranges, total, got.*member);
  }
  return got;
}

void ShardSplitReader::read_user_ids(std::vector<std::string>& ids, std::vector<int32_t>& user) const {
  std::lock_guard<std::mutex> lk(h5_mutex());
  ErrSilencer quiet;
  const std::string file = path_.string();
  H f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (f < 0) throw DataError("cannot open shard '" + file + "' (missing or not an HDF5 file)");
  ids = read_strings(f, "users/id", file);
  user = read_vec<int32_t>(f, split_ + "/user", file);
}

std::vector<std::filesystem::path> list_shards(const std::filesystem::path& dir) {
  const PrepManifest m = verify_prep_dir(dir);
  std::vector<std::filesystem::path> out;
  for (const auto& s : m.shards) out.push_back(dir / s.file);
  return out;
}

std::vector<std::filesystem::path> list_shard_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::is_directory(dir))
    throw DataError("shard directory '" + dir.string() + "' does not exist");
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    auto n = e.path().filename().string();
    if (n.rfind("shard_", 0) == 0 && n.size() > 3 && n.substr(n.size() - 3) == ".h5") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace portrait::data
