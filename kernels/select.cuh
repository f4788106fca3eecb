// Device-side top-k selection helpers shared by top-k search and the heads' top-M.
//
// Keys are "higher is better" floats (similarity, -distance, probability); the total order
// is (key desc, id asc), identical to the CPU twins. A key qualifies only if > -inf, so NaN
// and -inf never enter a list.
//
// Running lists live in shared memory, unsorted, one per row (query / head), owned by one
// warp at a time. Candidates arrive 32 at a time (one per lane); a ballot against the list's
// current worst entry filters them, so after warm-up almost every tile costs one compare per
// lane. Each accepted candidate replaces the worst entry, then the warp rescans the list
// (k/32 smem reads per lane + 5 shuffles). Expected insertions per list are about
// k*ln(n/k) for randomly ordered data; adversarial (sorted) data degrades to O(n*k/32).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace portrait::kernels::cuda_detail {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

template <typename Id>
__device__ __forceinline__ bool better(float ka, Id ia, float kb, Id ib) {
  return ka > kb || (ka == kb && ia < ib);
}

/// Per-list bookkeeping; identical in every lane of the owning warp.
struct ListState {
  int count;        // entries filled so far (<= k)
  float worst_key;  // valid when count == k
  int worst_id;
  int worst_pos;
};

/// Whole warp: finds the worst (smallest key, then largest id) of keys/ids[0..k).
__device__ __forceinline__ void warp_find_worst(const float* keys, const int* ids, int k,
                                                ListState& st) {
  const int lane = threadIdx.x & 31;
  float wk = 0.f;
  int wid = 0, wpos = -1;
  for (int s = lane; s < k; s += 32) {
    const float kk = keys[s];
    const int ii = ids[s];
    if (wpos < 0 || better(wk, wid, kk, ii)) {
      wk = kk;
      wid = ii;
      wpos = s;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ok = __shfl_xor_sync(kFullMask, wk, o);
    const int oid = __shfl_xor_sync(kFullMask, wid, o);
    const int opos = __shfl_xor_sync(kFullMask, wpos, o);
    if (opos >= 0 && (wpos < 0 || better(wk, wid, ok, oid))) {
      wk = ok;
      wid = oid;
      wpos = opos;
    }
  }
  st.worst_key = wk;
  st.worst_id = wid;
  st.worst_pos = wpos;
}

/// Whole warp: offers one candidate per lane (key, id; `valid` false = no candidate) to the
/// list keys/ids[0..k). `excluded(id)` is evaluated uniformly by all lanes, and only for
/// candidates that would otherwise enter the list (so exclusion lookups are rare).
template <typename Excluded>
__device__ __forceinline__ void warp_offer(float key, int id, bool valid, float* keys,
                                           int* ids, int k, ListState& st,
                                           const Excluded& excluded) {
  const int lane = threadIdx.x & 31;
  valid = valid && key > neg_inf();
  auto passes = [&]() {
    return valid && (st.count < k || better(key, id, st.worst_key, st.worst_id));
  };
  unsigned mask = __ballot_sync(kFullMask, passes());
  while (mask != 0u) {
    const int src = __ffs(mask) - 1;
    mask &= mask - 1;
    const float ck = __shfl_sync(kFullMask, key, src);
    const int cid = __shfl_sync(kFullMask, id, src);
    if (excluded(cid)) continue;
    const int pos = st.count < k ? st.count : st.worst_pos;
    if (lane == 0) {
      keys[pos] = ck;
      ids[pos] = cid;
    }
    __syncwarp();
    if (st.count < k) ++st.count;
    if (st.count == k) warp_find_worst(keys, ids, k, st);
    __syncwarp();  // rescans done before lane 0 writes again
    mask &= __ballot_sync(kFullMask, passes());
  }
}

/// No exclusions.
struct NoExclusion {
  __device__ bool operator()(int) const { return false; }
};

/// Block-wide bitonic sort of keys/ids[0..p) (p a power of two) into best-first order.
template <typename Id>
__device__ void block_bitonic_sort_best_first(float* keys, Id* ids, int p) {
  for (int size = 2; size <= p; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < p; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const bool best_first = (i & size) == 0;
          const bool swap = best_first ? better(keys[j], ids[j], keys[i], ids[i])
                                       : better(keys[i], ids[i], keys[j], ids[j]);
          if (swap) {
            const float tk = keys[i];
            keys[i] = keys[j];
            keys[j] = tk;
            const Id ti = ids[i];
            ids[i] = ids[j];
            ids[j] = ti;
          }
        }
      }
      __syncthreads();
    }
  }
}

}  // namespace portrait::kernels::cuda_detail
