#include "core/metrics.h"

#include <chrono>
#include <cmath>

#include "core/error.h"

namespace portrait {

void MetricsWriter::open(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  out_.open(path, std::ios::app);
  if (!out_) throw std::runtime_error("cannot open metrics file " + path + " for appending");
  path_ = path;
}

namespace {
void scrub(nlohmann::json& j) {
  if (j.is_number_float() && !std::isfinite(j.get<double>())) {
    j = nullptr;
  } else if (j.is_structured()) {
    for (auto& v : j) scrub(v);
  }
}
}  // namespace

void MetricsWriter::write(nlohmann::json record) {
  if (!record.contains("time")) {
    using namespace std::chrono;
    record["time"] =
        duration<double>(system_clock::now().time_since_epoch()).count();
  }
  scrub(record);
  std::lock_guard<std::mutex> lock(mu_);
  if (!out_.is_open()) return;
  out_ << record.dump() << '\n';
  out_.flush();
}

}  // namespace portrait
