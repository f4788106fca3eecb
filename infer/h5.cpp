#include "infer/h5.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>

#include "core/error.h"

namespace portrait::infer::h5 {

// libhdf5 1.10 closes every file still in its ID table from an atexit handler. A file whose
// close failed (a full disk at the final flush) stays there in a broken state, and that handler
// then segfaults after an orderly error exit. Every file is closed by RAII before exit anyway,
// so the handler has nothing to do: turn it off before the library initialises.
[[maybe_unused]] const bool kHdf5NoAtexit = [] {
  H5dont_atexit();
  return true;
}();

void check(int64_t rc, const std::string& what) {
  if (rc < 0) throw std::runtime_error(what + ": HDF5 error");
}

namespace {
H checked(hid_t id, herr_t (*close)(hid_t), const std::string& what) {
  if (id < 0) throw std::runtime_error(what + ": HDF5 error");
  return H(id, close);
}
struct Quiet {  // silence HDF5's own error stack printing for probing calls
  H5E_auto2_t f = nullptr;
  void* d = nullptr;
  Quiet() {
    H5Eget_auto2(H5E_DEFAULT, &f, &d);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~Quiet() { H5Eset_auto2(H5E_DEFAULT, f, d); }
};
}  // namespace

H create_file(const std::filesystem::path& path) {
  H fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // Newest format where readable by HDF5 1.10 (h5py wheels ship >= 1.12).
  H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
  return checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), H5Fclose,
                 "cannot create " + path.string());
}

void close_file(H& file, const std::filesystem::path& path) {
  if (!file.valid()) return;
  const herr_t flushed = H5Fflush(file.get(), H5F_SCOPE_LOCAL);
  const herr_t closed = file.close_checked();
  if (flushed < 0 || closed < 0)
    throw std::runtime_error("cannot write " + path.string() +
                             ": HDF5 could not flush or close it (is the disk or quota full? free space there or "
                             "write the output elsewhere; the unfinished file was removed)");
}

H open_file(const std::filesystem::path& path, bool writable) {
  return checked(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT),
                 H5Fclose, "cannot open " + path.string());
}

bool is_hdf5(const std::filesystem::path& path) {
  Quiet q;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return false;
  H5Fclose(f);
  return true;
}

H open_group(hid_t loc, const std::string& name) {
  return checked(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), H5Gclose, "cannot open group " + name);
}

H create_group(hid_t loc, const std::string& name) {
  return checked(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                 "cannot create group " + name);
}

bool exists(hid_t loc, const std::string& path) {
  Quiet q;
  // Check each prefix: H5Lexists fails on a missing intermediate group.
  size_t pos = 0;
  while (true) {
    size_t next = path.find('/', pos + 1);
    std::string prefix = path.substr(0, next);
    if (!prefix.empty() && prefix != "/" && H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0)
      return false;
    if (next == std::string::npos) return true;
    pos = next;
  }
}

hid_t float16_type() {
  static hid_t t = [] {
    hid_t x = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(x, 15, 10, 5, 0, 10);
    H5Tset_size(x, 2);
    H5Tset_ebias(x, 15);
    H5Tlock(x);
    return x;
  }();
  return t;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return uint16_t(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));  // NaN, inf
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (ax < 0x38800000u) {  // below 2^-14: a half subnormal m * 2^-24 (m = 1024 is the smallest normal)
    float a;
    std::memcpy(&a, &ax, 4);
    return uint16_t(sign | uint32_t(std::nearbyint(a * 16777216.0f)));  // exact scaling, RNE
  }
  uint32_t h = (((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3ffu);  // rebias 127 -> 15
  const uint32_t rest = ax & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
  return uint16_t(sign | h);
}

std::vector<uint16_t> floats_to_half(const float* data, size_t n) {
  std::vector<uint16_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = float_to_half(data[i]);
  return out;
}

namespace {
// Whether `ds` stores half floats (then native float input is converted by float_to_half).
bool is_half_dataset(hid_t ds) {
  H t(H5Dget_type(ds), H5Tclose);
  return H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 2;
}

H vlen_utf8() {
  H t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}
void replace_attr(hid_t obj, const std::string& name) {
  Quiet q;
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
}
}  // namespace

void set_attr(hid_t obj, const std::string& name, const std::string& value) {
  replace_attr(obj, name);
  H t = vlen_utf8();
  H space(H5Screate(H5S_SCALAR), H5Sclose);
  H a = checked(H5Acreate2(obj, name.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                "attribute " + name);
  const char* p = value.c_str();
  check(H5Awrite(a, t, &p), "attribute " + name);
}
void set_attr(hid_t obj, const std::string& name, const char* value) {
  set_attr(obj, name, std::string(value));
}
void set_attr(hid_t obj, const std::string& name, int64_t value) {
  replace_attr(obj, name);
  H space(H5Screate(H5S_SCALAR), H5Sclose);
  H a = checked(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose, "attribute " + name);
  check(H5Awrite(a, H5T_NATIVE_INT64, &value), "attribute " + name);
}
void set_attr(hid_t obj, const std::string& name, double value) {
  replace_attr(obj, name);
  H space(H5Screate(H5S_SCALAR), H5Sclose);
  H a = checked(H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose, "attribute " + name);
  check(H5Awrite(a, H5T_NATIVE_DOUBLE, &value), "attribute " + name);
}

bool has_attr(hid_t obj, const std::string& name) {
  Quiet q;
  return H5Aexists(obj, name.c_str()) > 0;
}

std::string attr_str(hid_t obj, const std::string& name) {
  H a = checked(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "attribute " + name);
  H ft(H5Aget_type(a), H5Tclose);
  if (H5Tis_variable_str(ft) > 0) {
    H t = vlen_utf8();
    char* p = nullptr;
    check(H5Aread(a, t, &p), "attribute " + name);
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  size_t n = H5Tget_size(ft);
  std::string s(n, '\0');
  H t(H5Tcopy(ft), H5Tclose);
  check(H5Aread(a, t, s.data()), "attribute " + name);
  s.resize(std::strlen(s.c_str()));
  return s;
}

int64_t attr_i64(hid_t obj, const std::string& name) {
  H a = checked(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "attribute " + name);
  int64_t v = 0;
  check(H5Aread(a, H5T_NATIVE_INT64, &v), "attribute " + name);
  return v;
}

double attr_f64(hid_t obj, const std::string& name) {
  H a = checked(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "attribute " + name);
  double v = 0;
  check(H5Aread(a, H5T_NATIVE_DOUBLE, &v), "attribute " + name);
  return v;
}

hsize_t chunk_rows(int64_t n_rows, int64_t row_bytes, int64_t chunk_bytes) {
  int64_t r = std::max<int64_t>(1, chunk_bytes / std::max<int64_t>(1, row_bytes));
  return hsize_t(std::max<int64_t>(1, std::min(r, n_rows)));
}

H create_float(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims,
               const FloatStorage& st) {
  H space = checked(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose, name);
  H dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const int64_t elem = st.float16 ? 2 : 4;
  int64_t row = elem;
  for (size_t i = 1; i < dims.size(); ++i) row *= int64_t(dims[i]);
  const bool any = !dims.empty() && dims[0] > 0;
  if (any && (st.chunk_bytes > 0 || st.gzip > 0)) {
    std::vector<hsize_t> ch = dims;
    ch[0] = chunk_rows(int64_t(dims[0]), row, st.chunk_bytes > 0 ? st.chunk_bytes : 1 << 20);
    check(H5Pset_chunk(dcpl, int(ch.size()), ch.data()), name);
    if (st.gzip > 0) {
      check(H5Pset_shuffle(dcpl), name);
      check(H5Pset_deflate(dcpl, unsigned(st.gzip)), name);
    }
  }
  hid_t ftype = st.float16 ? float16_type() : H5T_IEEE_F32LE;
  return checked(H5Dcreate2(loc, name.c_str(), ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                 H5Dclose, "cannot create dataset " + name);
}

void write_rows(hid_t ds, hid_t mem, hsize_t row0, hsize_t rows, const void* data) {
  if (rows == 0) return;
  H fspace(H5Dget_space(ds), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(fspace);
  std::vector<hsize_t> dims(static_cast<size_t>(nd));
  H5Sget_simple_extent_dims(fspace, dims.data(), nullptr);
  std::vector<hsize_t> start(size_t(nd), 0), count = dims;
  start[0] = row0;
  count[0] = rows;
  check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
        "hyperslab");
  H mspace(H5Screate_simple(nd, count.data(), nullptr), H5Sclose);
  if (H5Tequal(mem, H5T_NATIVE_FLOAT) > 0 && is_half_dataset(ds)) {
    hsize_t n = 1;
    for (auto c : count) n *= c;
    auto half = floats_to_half(static_cast<const float*>(data), size_t(n));
    check(H5Dwrite(ds, float16_type(), mspace, fspace, H5P_DEFAULT, half.data()), "write rows");
    return;
  }
  check(H5Dwrite(ds, mem, mspace, fspace, H5P_DEFAULT, data), "write rows");
}

void write_float(hid_t loc, const std::string& name, const float* data,
                 const std::vector<hsize_t>& dims, const FloatStorage& st) {
  H ds = create_float(loc, name, dims, st);
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  if (n) write_rows(ds, H5T_NATIVE_FLOAT, 0, dims[0], data);  // converts for float16 storage
}

namespace {
void write_plain(hid_t loc, const std::string& name, hid_t ftype, hid_t mtype, const void* data,
                 const std::vector<hsize_t>& dims) {
  H space = checked(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose, name);
  H ds = checked(H5Dcreate2(loc, name.c_str(), ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 H5Dclose, "cannot create dataset " + name);
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  if (n) check(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
}
}  // namespace

void write_i64(hid_t loc, const std::string& name, const int64_t* data,
               const std::vector<hsize_t>& dims) {
  write_plain(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, dims);
}
void write_i32(hid_t loc, const std::string& name, const int32_t* data,
               const std::vector<hsize_t>& dims) {
  write_plain(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, data, dims);
}

H fixed_string_type(size_t width) {
  H t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t, std::max<size_t>(1, width));
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void write_fixed_strings(hid_t loc, const std::string& name, const std::vector<std::string>& v,
                         size_t width) {
  if (width == 0) {
    width = 1;
    for (auto& s : v) width = std::max(width, s.size());
  }
  std::string buf(v.size() * width, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].size() > width) throw std::runtime_error(name + ": string longer than its width");
    std::memcpy(buf.data() + i * width, v[i].data(), v[i].size());
  }
  H t = fixed_string_type(width);
  write_plain(loc, name, t, t, buf.data(), {hsize_t(v.size())});
}

void write_vlen_strings(hid_t loc, const std::string& name, const std::vector<std::string>& v) {
  std::vector<const char*> p(v.size());
  for (size_t i = 0; i < v.size(); ++i) p[i] = v[i].c_str();
  H t = vlen_utf8();
  write_plain(loc, name, t, t, p.data(), {hsize_t(v.size())});
}

std::vector<hsize_t> dataset_dims(hid_t loc, const std::string& name) {
  H ds = checked(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose, "cannot open dataset " + name);
  H space(H5Dget_space(ds), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

namespace {
// A corrupt header must not make a reader allocate far more than the file can hold: the
// elements of a stored (not virtual) dataset take at least `elem` bytes each uncompressed,
// and deflate packs at most ~1032:1.
void check_stored_size(hid_t ds, const std::string& name, long double elements) {
  H dcpl(H5Dget_create_plist(ds), H5Pclose);
  if (dcpl < 0 || H5Pget_layout(dcpl) == H5D_VIRTUAL || elements == 0) return;
  H type(H5Dget_type(ds), H5Tclose);
  H fid(H5Iget_file_id(ds), H5Fclose);
  hsize_t file_bytes = 0;
  const hsize_t stored = H5Dget_storage_size(ds);
  const long double have = (long double)(fid >= 0 && H5Fget_filesize(fid, &file_bytes) >= 0
                                             ? std::min(stored, file_bytes) : stored) *
                           (H5Pget_nfilters(dcpl) > 0 ? 1100.0L : 1.0L);
  const size_t elem = type < 0 ? 0 : H5Tget_size(type);
  if (elem == 0 || elements * (long double)elem > have)
    throw DataError("dataset /" + name + " claims " + std::to_string((unsigned long long)elements) +
                    " elements but the file holds " + std::to_string(stored) + " bytes for it (corrupt file?)");
}

template <class T>
std::vector<T> read_any(hid_t loc, const std::string& name, hid_t mtype, std::vector<hsize_t>* out) {
  auto dims = dataset_dims(loc, name);
  long double total = 1;
  for (auto d : dims) total *= (long double)d;
  H ds = checked(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose, "cannot open dataset " + name);
  check_stored_size(ds, name, total);
  const hsize_t n = hsize_t(total);
  std::vector<T> v(n);
  if (n) check(H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "read " + name);
  if (out) *out = dims;
  return v;
}
}  // namespace

std::vector<float> read_float(hid_t loc, const std::string& name, std::vector<hsize_t>* dims) {
  return read_any<float>(loc, name, H5T_NATIVE_FLOAT, dims);
}
std::vector<int64_t> read_i64(hid_t loc, const std::string& name, std::vector<hsize_t>* dims) {
  return read_any<int64_t>(loc, name, H5T_NATIVE_INT64, dims);
}
std::vector<int32_t> read_i32(hid_t loc, const std::string& name, std::vector<hsize_t>* dims) {
  return read_any<int32_t>(loc, name, H5T_NATIVE_INT32, dims);
}

std::vector<std::string> read_strings(hid_t loc, const std::string& name) {
  H ds = checked(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose, "cannot open dataset " + name);
  H space(H5Dget_space(ds), H5Sclose);
  // A list of strings is 1-D: HDF5 would write the whole of a 2-D dataset into n pointers.
  if (const int nd = H5Sget_simple_extent_ndims(space); nd != 1)
    throw DataError("dataset /" + name + " has " + std::to_string(nd) + " dimensions, expected 1 (corrupt file?)");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  check_stored_size(ds, name, (long double)n);
  H ft(H5Dget_type(ds), H5Tclose);
  std::vector<std::string> out(n);
  if (!n) return out;
  if (H5Tget_class(ft) != H5T_STRING)
    throw DataError("dataset /" + name + " does not hold strings (corrupt file?)");
  // The memory type keeps the file's character set: HDF5 refuses to convert ASCII to UTF-8,
  // and h5py writes numpy 'S' arrays (fixed-length) as ASCII. The bytes are taken as they are.
  const H5T_cset_t cset = H5Tget_cset(ft);
  if (H5Tis_variable_str(ft) > 0) {
    H t = vlen_utf8();
    H5Tset_cset(t, cset);
    std::vector<char*> p(n, nullptr);
    check(H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "read " + name);
    for (hsize_t i = 0; i < n; ++i) out[i] = p[i] ? p[i] : "";
    H5Dvlen_reclaim(t, space, H5P_DEFAULT, p.data());
  } else {
    size_t w = H5Tget_size(ft);
    H t = fixed_string_type(w);
    H5Tset_cset(t, cset);
    const bool space_pad = H5Tget_strpad(ft) == H5T_STR_SPACEPAD;
    std::string buf(n * w, '\0');
    check(H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "read " + name);
    for (hsize_t i = 0; i < n; ++i) {
      const char* s = buf.data() + i * w;
      size_t len = strnlen(s, w);
      if (space_pad)  // Fortran-style padding: trailing blanks are not part of the id
        while (len > 0 && s[len - 1] == ' ') --len;
      out[i].assign(s, len);
    }
  }
  return out;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

}  // namespace portrait::infer::h5
