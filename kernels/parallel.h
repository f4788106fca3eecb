// Minimal std::thread parallel loop for the CPU fallbacks (no OpenMP, by project rule).
#pragma once

#include <cstdint>
#include <functional>

namespace portrait::kernels {

/// Number of threads to use for a request: 0 -> std::thread::hardware_concurrency() (>= 1).
int resolve_threads(int requested);

/// Calls fn(begin, end) on disjoint contiguous ranges covering [0, n), using up to
/// num_threads threads (0 = all cores). Ranges never shrink below `grain` items, so tiny
/// loops stay on the calling thread. The first exception thrown by a worker is rethrown.
void parallel_for(int64_t n, int num_threads,
                  const std::function<void(int64_t begin, int64_t end)>& fn,
                  int64_t grain = 1);

}  // namespace portrait::kernels
