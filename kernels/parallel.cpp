#include "kernels/parallel.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace portrait::kernels {

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

void parallel_for(int64_t n, int num_threads,
                  const std::function<void(int64_t begin, int64_t end)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_by_grain = (n + grain - 1) / grain;
  const int64_t t = std::min<int64_t>(resolve_threads(num_threads), max_by_grain);
  if (t <= 1) {
    fn(0, n);
    return;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(t - 1));
  auto run = [&](int64_t b, int64_t e) {
    try {
      fn(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  const int64_t per = n / t, extra = n % t;
  int64_t begin = 0;
  for (int64_t i = 0; i < t; ++i) {
    const int64_t end = begin + per + (i < extra ? 1 : 0);
    if (i + 1 == t) {
      run(begin, end);  // the calling thread takes the last range
    } else {
      workers.emplace_back(run, begin, end);
    }
    begin = end;
  }
  for (auto& w : workers) w.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace portrait::kernels
