// Small HDF5 (C API) helpers shared by the inference commands. Torch-free.
//
// Conventions of every file written by infer/ (h5py-first):
//   * float datasets are written from native float; on disk IEEE f32 LE or IEEE f16 LE (the
//     H5Tset_fields recipe of ecosystem.md §6.1, which h5py reads as np.float16);
//   * pseudonymous user ids are FIXED-length, null-padded UTF-8 strings (h5py dtype 'S64' for
//     HMAC-SHA256 hex ids; read with `f['user_id'].asstr()[:]` or `.astype(str)`). Fixed
//     length because virtual datasets (VDS) do not support variable-length types;
//   * vocabularies (item / category names) are variable-length UTF-8 strings;
//   * string attributes are variable-length UTF-8 scalars (h5py returns str), integers int64.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace portrait::infer::h5 {

/// RAII owner of an hid_t with its close function.
class H {
 public:
  H() = default;
  H(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H() { reset(); }
  H(H&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H& operator=(H&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  H(const H&) = delete;
  H& operator=(const H&) = delete;
  operator hid_t() const { return id_; }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  /// Closes now and returns the close function's status (negative: the close failed, e.g. the
  /// final flush of a file hit a full disk). The handle is invalid afterwards either way.
  herr_t close_checked() {
    herr_t rc = 0;
    if (id_ >= 0 && close_) rc = close_(id_);
    id_ = -1;
    return rc;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

/// Throws std::runtime_error "<what>: HDF5 error" when `rc` < 0.
void check(int64_t rc, const std::string& what);

H create_file(const std::filesystem::path& path);  ///< truncates
/// Flushes and closes a file written through `file` (every object in it already closed) and
/// throws, naming `path`, when either fails: a full disk often shows only here, and a file
/// whose close failed must not be renamed into place.
void close_file(H& file, const std::filesystem::path& path);
H open_file(const std::filesystem::path& path, bool writable = false);
/// true when `path` is an HDF5 file that opens (used to validate finished part files).
bool is_hdf5(const std::filesystem::path& path);
H open_group(hid_t loc, const std::string& name);
H create_group(hid_t loc, const std::string& name);
bool exists(hid_t loc, const std::string& path);

/// IEEE half precision, little endian (caller must not close it: cached).
hid_t float16_type();
/// float -> IEEE half bits, round to nearest even (overflow -> inf, NaN stays NaN).
/// Float data bound for a float16 dataset is converted here, never by libhdf5: its soft
/// float conversion drops the carry when rounding reaches the next power of two (0.0624971f
/// became 0.03125, not 0.0625 -- the bug h5py issue 819 reports; seen with HDF5 1.10.8).
uint16_t float_to_half(float f);
/// Converts n floats to half bits.
std::vector<uint16_t> floats_to_half(const float* data, size_t n);

void set_attr(hid_t obj, const std::string& name, const std::string& value);
void set_attr(hid_t obj, const std::string& name, const char* value);
void set_attr(hid_t obj, const std::string& name, int64_t value);
void set_attr(hid_t obj, const std::string& name, double value);
bool has_attr(hid_t obj, const std::string& name);
std::string attr_str(hid_t obj, const std::string& name);
int64_t attr_i64(hid_t obj, const std::string& name);
double attr_f64(hid_t obj, const std::string& name);

/// Storage options of a float matrix.
struct FloatStorage {
  bool float16 = false;          ///< on-disk IEEE f16 instead of f32
  int64_t chunk_bytes = 1 << 20; ///< chunks of whole rows of about this size (0 = contiguous)
  int gzip = 0;                  ///< deflate level 1..9 (0 = none); implies shuffle
};

/// Rows per chunk for rows of `row_bytes` bytes (>= 1, <= n_rows).
hsize_t chunk_rows(int64_t n_rows, int64_t row_bytes, int64_t chunk_bytes);

/// Creates a float dataset [dims...] (1-D or 2-D) with the storage options; returns it open.
H create_float(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims,
               const FloatStorage& st);
/// Writes rows [row0, row0 + rows) of a 1-D/2-D dataset from native memory of type `mem`.
/// Native float written to a float16 dataset is converted by float_to_half.
void write_rows(hid_t ds, hid_t mem, hsize_t row0, hsize_t rows, const void* data);

/// Whole-dataset writers (contiguous unless chunk_bytes > 0 via write_float).
void write_float(hid_t loc, const std::string& name, const float* data,
                 const std::vector<hsize_t>& dims, const FloatStorage& st = {0, 0, 0});
void write_i64(hid_t loc, const std::string& name, const int64_t* data,
               const std::vector<hsize_t>& dims);
void write_i32(hid_t loc, const std::string& name, const int32_t* data,
               const std::vector<hsize_t>& dims);
/// Fixed-length null-padded UTF-8 strings of `width` bytes (0 = longest string, >= 1).
void write_fixed_strings(hid_t loc, const std::string& name, const std::vector<std::string>& v,
                         size_t width = 0);
void write_vlen_strings(hid_t loc, const std::string& name, const std::vector<std::string>& v);
/// Fixed-length string type of `width` bytes, UTF-8, null padded (caller owns).
H fixed_string_type(size_t width);

/// Readers: data converted to native float / int64 / int32; dims returned in `dims`.
std::vector<float> read_float(hid_t loc, const std::string& name, std::vector<hsize_t>* dims = nullptr);
std::vector<int64_t> read_i64(hid_t loc, const std::string& name, std::vector<hsize_t>* dims = nullptr);
std::vector<int32_t> read_i32(hid_t loc, const std::string& name, std::vector<hsize_t>* dims = nullptr);
/// Fixed or variable-length string dataset (1-D).
std::vector<std::string> read_strings(hid_t loc, const std::string& name);
std::vector<hsize_t> dataset_dims(hid_t loc, const std::string& name);

/// ISO-8601 UTC timestamp "2024-05-01T12:00:00Z".
std::string utc_now();

}  // namespace portrait::infer::h5
