// JSON-lines metrics: one object per line, appended and flushed per record so a crash keeps
// everything written so far. Readers: `pandas.read_json(path, lines=True)`.
//
//   MetricsWriter m(run_dir / "metrics.jsonl");
//   m.write({{"step", 100}, {"loss", 0.41}, {"users_per_s", 5300.0}});
#pragma once

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace portrait {

class MetricsWriter {
 public:
  MetricsWriter() = default;
  explicit MetricsWriter(const std::string& path) { open(path); }
  void open(const std::string& path);
  bool is_open() const { return out_.is_open(); }
  /// Adds "time" (unix seconds, float) unless the record has one. Non-finite floats are
  /// written as null (JSON has no NaN).
  void write(nlohmann::json record);
  const std::string& path() const { return path_; }

 private:
  std::ofstream out_;
  std::string path_;
  std::mutex mu_;
};

}  // namespace portrait
