// A columnar table of per-user tags and its two on-disk forms, HDF5 and CSV, which read back
// as the same rows (h5py + pandas.DataFrame, pandas.read_csv).
//
// HDF5 layout (h5py-first, the conventions of infer/h5.h):
//   attributes on "/": format (e.g. "portrait-tags"), format_version (int64), rows (int64),
//     columns (comma-separated column names in table order: rebuild a DataFrame in order),
//     created_utc, plus any extra string attributes of the table;
//   one 1-D dataset per column, [rows]:
//     int columns      int64
//     float columns    IEEE f64 LE (the CSV prints the same doubles, shortest round-trip)
//     string columns   variable-length UTF-8 (user_id: fixed-length UTF-8, as every export)
//   each dataset carries a "doc" attribute: what the column means.
// CSV: a header of the column names, then one record per row (RFC 4180 quoting). Floats are
// printed in their shortest round-trip form; missing strings are "" (read with
// `pd.read_csv(path, keep_default_na=False)` to keep them as "" rather than NaN).
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace portrait::tags {

struct Column {
  enum class Kind { kInt, kFloat, kString };
  std::string name;
  Kind kind = Kind::kInt;
  std::string doc;  ///< one line: what the column holds
  std::vector<int64_t> i;
  std::vector<double> f;
  std::vector<std::string> s;
  size_t size() const;
};

struct Table {
  /// A deque: add() keeps references to earlier columns valid (fill columns as you add them).
  std::deque<Column> columns;
  std::map<std::string, std::string> attrs;  ///< extra string attributes of the HDF5 file

  Column& add(std::string name, Column::Kind kind, std::string doc);
  /// The column called `name`; throws std::out_of_range when there is none.
  const Column& at(const std::string& name) const;
  Column& at(const std::string& name);
  bool has(const std::string& name) const;
  /// Rows (every column must have the same length: checked, std::logic_error otherwise).
  size_t rows() const;
};

/// The CSV text of the table (header + rows).
std::string to_csv(const Table& t);

/// Writes `t` to HDF5 at `path` (not atomic: the caller writes to a temporary name).
void write_h5(const Table& t, const std::filesystem::path& path, const std::string& format,
              int64_t format_version);

/// Writes `h5_path` and `csv_path` atomically, both or neither: each is written under a
/// temporary name and both are renamed only when both are complete (a full disk at any
/// write, flush or close leaves neither file nor a temporary behind).
void write_table_files(const Table& t, const std::filesystem::path& h5_path,
                       const std::filesystem::path& csv_path, const std::string& format,
                       int64_t format_version);

}  // namespace portrait::tags
