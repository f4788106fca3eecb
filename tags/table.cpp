// Columnar tag tables and their HDF5 / CSV forms: see table.h.
#include "tags/table.h"

#include <fmt/format.h>

#include <optional>
#include <stdexcept>

#include "core/fs.h"
#include "data/io.h"
#include "infer/h5.h"

namespace portrait::tags {

namespace h5 = portrait::infer::h5;

size_t Column::size() const {
  switch (kind) {
    case Kind::kInt: return i.size();
    case Kind::kFloat: return f.size();
    case Kind::kString: return s.size();
  }
  return 0;
}

Column& Table::add(std::string name, Column::Kind kind, std::string doc) {
  if (has(name)) throw std::logic_error("tags table: column '" + name + "' added twice");
  Column c;
  c.name = std::move(name);
  c.kind = kind;
  c.doc = std::move(doc);
  columns.push_back(std::move(c));
  return columns.back();
}

const Column& Table::at(const std::string& name) const {
  for (const auto& c : columns)
    if (c.name == name) return c;
  throw std::out_of_range("tags table: no column '" + name + "'");
}

Column& Table::at(const std::string& name) {
  return const_cast<Column&>(static_cast<const Table&>(*this).at(name));
}

bool Table::has(const std::string& name) const {
  for (const auto& c : columns)
    if (c.name == name) return true;
  return false;
}

size_t Table::rows() const {
  if (columns.empty()) return 0;
  const size_t n = columns.front().size();
  for (const auto& c : columns)
    if (c.size() != n)
      throw std::logic_error(fmt::format("tags table: column '{}' has {} rows, '{}' has {}", c.name, c.size(),
                                         columns.front().name, n));
  return n;
}

std::string to_csv(const Table& t) {
  const size_t n = t.rows();
  std::string out;
  for (size_t c = 0; c < t.columns.size(); ++c) {
    if (c) out += ',';
    data::append_csv_field(out, t.columns[c].name);
  }
  out += '\n';
  for (size_t r = 0; r < n; ++r) {
    for (size_t c = 0; c < t.columns.size(); ++c) {
      const Column& col = t.columns[c];
      if (c) out += ',';
      switch (col.kind) {
        case Column::Kind::kInt: out += std::to_string(col.i[r]); break;
        case Column::Kind::kFloat: {
          // fmt's "{}" is the shortest text that parses back to the same double; a point is
          // kept on whole numbers ("10.0") so pandas reads every float column as float.
          std::string v = fmt::format("{}", col.f[r]);
          if (v.find_first_of(".eEn") == std::string::npos) v += ".0";
          out += v;
          break;
        }
        case Column::Kind::kString: data::append_csv_field(out, col.s[r]); break;
      }
    }
    out += '\n';
  }
  return out;
}

namespace {

void write_f64(hid_t loc, const std::string& name, const std::vector<double>& v) {
  hsize_t dims[1] = {hsize_t(v.size())};
  h5::H sp(H5Screate_simple(1, dims, nullptr), H5Sclose);
  h5::check(sp.get(), "dataspace " + name);
  h5::H ds(H5Dcreate2(loc, name.c_str(), H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  h5::check(ds.get(), "create " + name);
  if (!v.empty()) h5::check(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "write " + name);
}

void set_doc(hid_t file, const std::string& name, const std::string& doc) {
  h5::H ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  h5::check(ds.get(), "open " + name);
  h5::set_attr(ds, "doc", doc);
}

}  // namespace

void write_h5(const Table& t, const std::filesystem::path& path, const std::string& format,
              int64_t format_version) {
  const size_t n = t.rows();
  h5::H f = h5::create_file(path);
  h5::set_attr(f, "format", format);
  h5::set_attr(f, "format_version", format_version);
  h5::set_attr(f, "rows", int64_t(n));
  std::string names;
  for (const auto& c : t.columns) names += (names.empty() ? "" : ",") + c.name;
  h5::set_attr(f, "columns", names);
  h5::set_attr(f, "created_utc", h5::utc_now());
  for (const auto& [k, v] : t.attrs) h5::set_attr(f, k, v);
  for (const auto& c : t.columns) {
    const hsize_t dims = hsize_t(n);
    switch (c.kind) {
      case Column::Kind::kInt: h5::write_i64(f, c.name, c.i.data(), {dims}); break;
      case Column::Kind::kFloat: write_f64(f, c.name, c.f); break;
      case Column::Kind::kString:
        // Pseudonymous ids follow every export's convention (fixed-length); text is vlen.
        if (c.name == "user_id") h5::write_fixed_strings(f, c.name, c.s);
        else h5::write_vlen_strings(f, c.name, c.s);
        break;
    }
    set_doc(f, c.name, c.doc);
  }
  h5::close_file(f, path);
}

void write_table_files(const Table& t, const std::filesystem::path& h5_path,
                       const std::filesystem::path& csv_path, const std::string& format,
                       int64_t format_version) {
  std::filesystem::create_directories(h5_path.parent_path().empty() ? "." : h5_path.parent_path());
  std::filesystem::create_directories(csv_path.parent_path().empty() ? "." : csv_path.parent_path());
  AtomicOutput h5_out(h5_path);
  write_h5(t, h5_out.temp_path(), format, format_version);
  AtomicStream csv(csv_path);
  csv << to_csv(t);
  csv.commit();
  h5_out.commit();
}

}  // namespace portrait::tags
