#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda_check.h"
#include "kernels/cuda_util.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/host_stream.cuh"
#include "kernels/l2_normalize.cuh"
#include "kernels/select.cuh"
#include "kernels/tc_tile.cuh"
#include "kernels/tile_gemm.cuh"
#include "kernels/topk.cuh"

namespace portrait::kernels {

using cuda_detail::as_dev;
using cuda_detail::is_bf16_v;
using cuda_detail::ListState;

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBN = 128;
constexpr int kBK = 16;
// Local (per-slice) ids are int32 inside the fused kernel; slices keep them in range.
constexpr int64_t kMaxSliceRows = int64_t{1} << 30;

struct DeviceExclusion {
  const int64_t* offsets;
  const int64_t* ids;
  bool self;
  int64_t self_offset;
  int64_t q_global;  // global index of the query being processed
  int64_t id_base;   // global id of local id 0

  __device__ bool operator()(int local_id) const {
    const int64_t id = id_base + local_id;
    if (self && id == q_global + self_offset) return true;
    if (offsets == nullptr) return false;
    int64_t lo = offsets[q_global], hi = offsets[q_global + 1];
    while (lo < hi) {  // lower_bound over the query's sorted list
      const int64_t mid = (lo + hi) >> 1;
      if (ids[mid] < id) lo = mid + 1; else hi = mid;
    }
    return lo < offsets[q_global + 1] && ids[lo] == id;
  }
};

template <typename T>
struct FusedArgs {
  const T* Q;          // [q, d] (batch)
  int64_t q;
  const T* X;          // [nb, d] (slice)
  int64_t nb;
  int d;
  bool vec_q, vec_x;   // 16-byte vector loads valid (tensor-core producers)
  const float* q_aux;  // cosine: 1/|q|, L2: |q|^2, IP: unused
  const float* x_aux;
  int metric;          // Metric as int
  int k;
  int splits;
  int64_t id_base;
  int64_t q_base;
  bool exclude_self;
  int64_t self_offset;
  const int64_t* excl_offsets;
  const int64_t* excl_ids;
  float* part_keys;    // [q, splits, k]
  int64_t* part_ids;
};

// Tensor-core warp layout per query-tile height: 64 x 128 -> 2 x 4 warps of 32 x 32;
// 16 x 128 -> 1 x 8 warps of 16 x 16.
template <int BQ>
constexpr int tc_warps_m() { return BQ >= 32 ? 2 : 1; }

template <int BQ, MathMode M>
struct TcKindOf;
template <int BQ> struct TcKindOf<BQ, MathMode::kTf32> {
  static constexpr cuda_detail::TcKind value = cuda_detail::TcKind::kTf32;
};
template <int BQ> struct TcKindOf<BQ, MathMode::kTf32x3> {
  static constexpr cuda_detail::TcKind value = cuda_detail::TcKind::kTf32x3;
};
template <int BQ> struct TcKindOf<BQ, MathMode::kBf16> {
  static constexpr cuda_detail::TcKind value = cuda_detail::TcKind::kBf16;
};

template <int BQ, MathMode M>
struct TcTileFor {
  using type = cuda_detail::TcTile<BQ, kBN, tc_warps_m<BQ>(), kWarps / tc_warps_m<BQ>(),
                                   TcKindOf<BQ, M>::value>;
};

// SIMT register tile per query-tile height (256 threads: (BQ/TQ) * (128/TN)).
template <int BQ> constexpr int simt_tq() { return BQ >= 32 ? 4 : 2; }
template <int BQ> constexpr int simt_tn() { return BQ >= 32 ? 8 : 4; }

// Bytes of the region shared (aliased) by the GEMM operands and the [BQ, kBN+1] key tile.
template <int BQ, MathMode M>
constexpr size_t producer_smem_bytes() {
  size_t gemm = 0;
  if constexpr (M == MathMode::kSimt) {
    gemm = sizeof(float) * cuda_detail::tile_gemm_smem_floats<BQ, kBN, kBK>();
  } else {
    gemm = TcTileFor<BQ, M>::type::kSmemBytes;
  }
  const size_t keys = sizeof(float) * BQ * (kBN + 1);
  const size_t r = gemm > keys ? gemm : keys;
  return (r + 15) / 16 * 16;
}

template <int BQ, MathMode M>
size_t fused_smem_bytes(int k) {
  return producer_smem_bytes<BQ, M>() + static_cast<size_t>(BQ) * k * (sizeof(float) + sizeof(int)) +
         BQ * sizeof(ListState);
}

// Key of (query qi, database row xi) from its raw dot product s: higher is better.
template <typename T>
__device__ __forceinline__ float make_key(const FusedArgs<T>& a, int64_t qi, int64_t xi,
                                          float s) {
  if (qi >= a.q || xi >= a.nb) return cuda_detail::neg_inf();
  if (a.metric == static_cast<int>(Metric::kL2)) {
    // Expanded form can dip below 0 by rounding; fmaxf would also swallow NaN.
    const float dist = a.q_aux[qi] + a.x_aux[xi] - 2.f * s;
    return isnan(dist) ? dist : -fmaxf(dist, 0.f);
  }
  if (a.metric == static_cast<int>(Metric::kCosine)) return s * a.q_aux[qi] * a.x_aux[xi];
  return s;
}

// One block: BQ queries against database tiles [t_begin, t_end) of its split (gridDim.y).
// Per tile: the producer (SIMT tile_gemm or tensor-core TcTile) computes the [BQ, 128] dot
// products, which become keys in smem (aliasing the GEMM operand buffers), then each warp
// offers one query row at a time to that query's running list (select.cuh).
template <int BQ, typename T, MathMode M>
__global__ void __launch_bounds__(kThreads, 1) topk_fused_kernel(FusedArgs<T> a) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr size_t kRegion = producer_smem_bytes<BQ, M>();
  float* sS = reinterpret_cast<float*>(smem);
  float* lkeys = reinterpret_cast<float*>(smem + kRegion);
  int* lids = reinterpret_cast<int*>(lkeys + BQ * a.k);
  ListState* lst = reinterpret_cast<ListState*>(lids + BQ * a.k);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * BQ;
  const int64_t tiles = (a.nb + kBN - 1) / kBN;
  const int64_t per_split = (tiles + a.splits - 1) / a.splits;
  const int64_t t_begin = blockIdx.y * per_split;
  const int64_t t_end = min(tiles, t_begin + per_split);

  for (int r = tid; r < BQ; r += kThreads) lst[r] = ListState{0, 0.f, 0, 0};

  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t b0 = t * kBN;
    // The previous tile's selection read sS, which aliases the GEMM operand buffers.
    __syncthreads();
    if constexpr (M == MathMode::kSimt) {
      constexpr int TQ = simt_tq<BQ>(), TN = simt_tn<BQ>();
      static_assert((BQ / TQ) * (kBN / TN) == kThreads, "tile/thread mismatch");
      float* sA = reinterpret_cast<float*>(smem);
      float* sB = sA + kBK * (BQ + 1);
      float acc[TQ][TN] = {};
      cuda_detail::tile_gemm_nt<BQ, kBN, kBK, TQ, TN>(a.Q, a.q, q0, a.X, a.nb, b0, a.d, sA, sB,
                                                       acc);  // ends with __syncthreads()
      const int tx = tid % (kBN / TN), ty = tid / (kBN / TN);
#pragma unroll
      for (int i = 0; i < TQ; ++i) {
        const int r = ty * TQ + i;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          const int c = tx + j * (kBN / TN);
          sS[r * (kBN + 1) + c] = make_key(a, q0 + r, b0 + c, acc[i][j]);
        }
      }
    } else {
      using Tile = typename TcTileFor<BQ, M>::type;
      static_assert(Tile::kThreads == kThreads, "tile/thread mismatch");
      Tile tile;
      tile.compute(a.Q, a.q, q0, a.vec_q, a.X, a.nb, b0, a.vec_x, a.d, smem);  // ends in a barrier
#pragma unroll
      for (int mt = 0; mt < Tile::kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < Tile::kNT; ++nt)
#pragma unroll
          for (int r4 = 0; r4 < 4; ++r4) {
            const int r = Tile::row_of(mt, r4), c = Tile::col_of(nt, r4);
            sS[r * (kBN + 1) + c] = make_key(a, q0 + r, b0 + c, tile.acc[mt][nt][r4]);
          }
    }
    __syncthreads();
    for (int r = warp; r < BQ; r += kWarps) {
      const int64_t qi = q0 + r;
      if (qi >= a.q) continue;
      ListState st = lst[r];
      const DeviceExclusion excl{a.excl_offsets, a.excl_ids, a.exclude_self, a.self_offset,
                                 a.q_base + qi, a.id_base};
      const bool any_excl = a.exclude_self || a.excl_offsets != nullptr;
      for (int c0 = 0; c0 < kBN; c0 += 32) {
        const int c = c0 + lane;
        const float key = sS[r * (kBN + 1) + c];
        const int id = static_cast<int>(b0 + c);
        const bool valid = b0 + c < a.nb;
        if (any_excl) {
          cuda_detail::warp_offer(key, id, valid, lkeys + r * a.k, lids + r * a.k, a.k, st,
                                  excl);
        } else {
          cuda_detail::warp_offer(key, id, valid, lkeys + r * a.k, lids + r * a.k, a.k, st,
                                  cuda_detail::NoExclusion{});
        }
      }
      if (lane == 0) lst[r] = st;
    }
  }
  __syncthreads();

  for (int r = warp; r < BQ; r += kWarps) {
    const int64_t qi = q0 + r;
    if (qi >= a.q) continue;
    const int count = lst[r].count;
    float* pk = a.part_keys + (qi * a.splits + blockIdx.y) * a.k;
    int64_t* pi = a.part_ids + (qi * a.splits + blockIdx.y) * a.k;
    for (int s = lane; s < a.k; s += 32) {
      const bool have = s < count;
      pk[s] = have ? lkeys[r * a.k + s] : cuda_detail::neg_inf();
      pi[s] = have ? a.id_base + lids[r * a.k + s] : -1;
    }
  }
}

__global__ void topk_merge_kernel(const float* __restrict__ part_keys,
                                  const int64_t* __restrict__ part_ids, int64_t row_stride,
                                  int parts, int k, float* run_keys, int64_t* run_ids, int p) {
  extern __shared__ __align__(16) unsigned char smem[];
  int64_t* sid = reinterpret_cast<int64_t*>(smem);
  float* skey = reinterpret_cast<float*>(sid + p);
  const int64_t row = blockIdx.x;
  const int in_parts = parts * k;
  const int total = in_parts + k;
  for (int i = threadIdx.x; i < p; i += blockDim.x) {
    if (i < in_parts) {
      skey[i] = part_keys[row * row_stride + i];
      sid[i] = part_ids[row * row_stride + i];
    } else if (i < total) {
      skey[i] = run_keys[row * k + (i - in_parts)];
      sid[i] = run_ids[row * k + (i - in_parts)];
    } else {
      skey[i] = cuda_detail::neg_inf();
      sid[i] = -1;
    }
  }
  __syncthreads();
  cuda_detail::block_bitonic_sort_best_first(skey, sid, p);
  for (int s = threadIdx.x; s < k; s += blockDim.x) {
    run_keys[row * k + s] = skey[s];
    run_ids[row * k + s] = sid[s];
  }
}

__global__ void init_running_kernel(float* keys, int64_t* ids, int64_t count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) {
    keys[i] = cuda_detail::neg_inf();
    ids[i] = -1;
  }
}

__global__ void finalize_kernel(float* keys, const int64_t* ids, int64_t count, bool l2) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float inf = __int_as_float(0x7f800000);
  if (ids[i] < 0) {
    keys[i] = l2 ? inf : -inf;
  } else if (l2) {
    keys[i] = -keys[i];
  }
}

unsigned grid_1d(int64_t count, int threads) {
  const int64_t b = (count + threads - 1) / threads;
  if (b > 0x7fffffffLL) throw std::invalid_argument("topk: launch too large");
  return static_cast<unsigned>(std::max<int64_t>(b, 1));
}

int next_pow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Query tile height: wide tiles reuse each database tile across more queries, but the
// per-query lists (k entries each) must fit in shared memory.
bool use_wide_tile(int k) { return k <= 128; }

template <int BQ>
size_t smem_for(MathMode m, int k) {
  switch (m) {
    case MathMode::kTf32: return fused_smem_bytes<BQ, MathMode::kTf32>(k);
    case MathMode::kTf32x3: return fused_smem_bytes<BQ, MathMode::kTf32x3>(k);
    case MathMode::kBf16: return fused_smem_bytes<BQ, MathMode::kBf16>(k);
    default: return fused_smem_bytes<BQ, MathMode::kSimt>(k);
  }
}

// Plan shared by the device and streaming paths.
struct Plan {
  int bq;        // query tile height
  int splits;    // database splits per slice (gridDim.y)
  int64_t qbatch;
  size_t smem;
  MathMode math; // resolved (never kAuto)
};

// bf16 input: products of bf16 values are exact in TF32 too, so 3xTF32 adds nothing.
MathMode topk_math(MathMode requested, bool bf16_input) {
  MathMode m = cuda_detail::resolve_math(
      requested, bf16_input ? MathMode::kBf16 : MathMode::kTf32x3, "topk");
  if (bf16_input && m == MathMode::kTf32x3) m = MathMode::kTf32;
  return m;
}

Plan make_plan(int64_t q, int64_t slice_rows, int k, MathMode math) {
  Plan pl{};
  pl.math = math;
  pl.bq = use_wide_tile(k) ? 64 : 16;
  pl.smem = use_wide_tile(k) ? smem_for<64>(math, k) : smem_for<16>(math, k);
  if (static_cast<int>(pl.smem) > cuda_detail::max_dynamic_smem())
    throw std::runtime_error("topk: k=" + std::to_string(k) + " needs " +
                             std::to_string(pl.smem) +
                             " bytes of shared memory per block; this GPU allows less");
  // Scratch for partial lists is [qbatch, splits, k]; cap it around 256 MiB.
  const int64_t tiles = std::max<int64_t>(1, (slice_rows + kBN - 1) / kBN);
  pl.qbatch = std::min<int64_t>(std::max<int64_t>(q, 1), 8192);
  const int64_t qtiles = (pl.qbatch + pl.bq - 1) / pl.bq;
  const int64_t want_blocks = 4LL * cuda_detail::sm_count();
  int64_t s = (want_blocks + qtiles - 1) / qtiles;
  s = std::clamp<int64_t>(s, 1, std::min<int64_t>(tiles, 65535));
  const int64_t budget = (int64_t{256} << 20) / (s * k * 12);
  pl.qbatch = std::max<int64_t>(pl.bq, std::min<int64_t>(pl.qbatch, budget / pl.bq * pl.bq));
  pl.splits = static_cast<int>(s);
  return pl;
}

template <int BQ, typename T, MathMode M>
void launch_fused(const FusedArgs<T>& a, dim3 grid, size_t smem, cudaStream_t stream) {
  auto kern = topk_fused_kernel<BQ, T, M>;
  CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  kern<<<grid, kThreads, smem, stream>>>(a);
  CUDA_CHECK_LAUNCH();
}

template <int BQ, typename T>
void launch_fused_math(const FusedArgs<T>& a, dim3 grid, const Plan& pl, cudaStream_t stream) {
  switch (pl.math) {
    case MathMode::kTf32: launch_fused<BQ, T, MathMode::kTf32>(a, grid, pl.smem, stream); return;
    case MathMode::kBf16: launch_fused<BQ, T, MathMode::kBf16>(a, grid, pl.smem, stream); return;
    case MathMode::kTf32x3:
      if constexpr (std::is_same_v<T, float>) {
        launch_fused<BQ, T, MathMode::kTf32x3>(a, grid, pl.smem, stream);
        return;
      }
      break;  // bf16 input never plans 3xTF32 (topk_math)
    default:
      launch_fused<BQ, T, MathMode::kSimt>(a, grid, pl.smem, stream);
      return;
  }
  throw std::logic_error("topk: unsupported math mode for this input type");
}

// One database slice (device pointers) against all queries, merged into run_* [q, k].
template <typename T>
void search_slice(const T* Qd, int64_t q, const float* q_aux, const T* X, int64_t nb,
                  const float* x_aux, int d, int64_t id_base, const TopKParams& p,
                  const int64_t* excl_off, const int64_t* excl_ids, float* run_keys,
                  int64_t* run_ids, const Plan& pl, float* part_keys, int64_t* part_ids,
                  cudaStream_t stream) {
  const int k = p.k;
  for (int64_t qb = 0; qb < q; qb += pl.qbatch) {
    const int64_t qn = std::min(pl.qbatch, q - qb);
    FusedArgs<T> a{};
    a.Q = Qd + qb * d;
    a.q = qn;
    a.X = X;
    a.nb = nb;
    a.d = d;
    a.vec_q = cuda_detail::tc_vec_ok(a.Q, d);
    a.vec_x = cuda_detail::tc_vec_ok(X, d);
    a.q_aux = q_aux ? q_aux + qb : nullptr;
    a.x_aux = x_aux;
    a.metric = static_cast<int>(p.metric);
    a.k = k;
    a.splits = pl.splits;
    a.id_base = id_base;
    a.q_base = qb;
    a.exclude_self = p.exclude_self;
    a.self_offset = p.self_offset;
    a.excl_offsets = excl_off;
    a.excl_ids = excl_ids;
    a.part_keys = part_keys;
    a.part_ids = part_ids;
    const dim3 grid(static_cast<unsigned>((qn + pl.bq - 1) / pl.bq),
                    static_cast<unsigned>(pl.splits));
    if (pl.bq == 64) launch_fused_math<64>(a, grid, pl, stream);
    else launch_fused_math<16>(a, grid, pl, stream);
    detail::topk_merge_cuda(part_keys, part_ids, qn, pl.splits, k, run_keys + qb * k,
                            run_ids + qb * k, stream);
  }
}

// |row|^2 (L2) or 1/|row| (cosine) per row; nothing for IP.
template <typename P>
void row_aux(const P* x, float* aux, int64_t n, int d, Metric m, cudaStream_t stream) {
  if (m == Metric::kL2) row_sq_norms_cuda(x, aux, n, d, stream);
  else if (m == Metric::kCosine) row_inv_norms_cuda(x, aux, n, d, stream);
}

}  // namespace

namespace detail {

void topk_merge_cuda(const float* part_keys, const int64_t* part_ids, int64_t rows, int parts,
                     int k, float* run_keys, int64_t* run_ids, cudaStream_t stream) {
  if (rows <= 0 || parts <= 0) return;
  if (k < 1 || 2 * k > kTopKMergeMax) throw std::invalid_argument("topk merge: k too large");
  if (rows > 0x7fffffffLL) throw std::invalid_argument("topk merge: too many rows");
  // Each launch sorts `per` part lists plus the running list in shared memory; more parts
  // are folded in over several launches (same stream, so they chain).
  const int per = kTopKMergeMax / k - 1;
  for (int b = 0; b < parts; b += per) {
    const int cnt = std::min(per, parts - b);
    const int p = next_pow2((cnt + 1) * k);
    const size_t smem = static_cast<size_t>(p) * (sizeof(float) + sizeof(int64_t));
    CUDA_CHECK(cudaFuncSetAttribute(topk_merge_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)));
    const int threads = std::min(512, std::max(32, p / 2));
    topk_merge_kernel<<<static_cast<unsigned>(rows), threads, smem, stream>>>(
        part_keys + static_cast<int64_t>(b) * k, part_ids + static_cast<int64_t>(b) * k,
        static_cast<int64_t>(parts) * k, cnt, k, run_keys, run_ids, p);
    CUDA_CHECK_LAUNCH();
  }
}

void topk_init_running_cuda(float* run_keys, int64_t* run_ids, int64_t rows, int k,
                            cudaStream_t stream) {
  const int64_t count = rows * k;
  if (count <= 0) return;
  init_running_kernel<<<grid_1d(count, 256), 256, 0, stream>>>(run_keys, run_ids, count);
  CUDA_CHECK_LAUNCH();
}

void topk_finalize_cuda(float* keys, const int64_t* ids, int64_t count, Metric metric,
                        cudaStream_t stream) {
  if (count <= 0) return;
  finalize_kernel<<<grid_1d(count, 256), 256, 0, stream>>>(keys, ids, count,
                                                           metric == Metric::kL2);
  CUDA_CHECK_LAUNCH();
}

}  // namespace detail

namespace {

// P: public element type (float or bf16_bits). Device-resident search.
template <typename P>
void topk_cuda_impl(const P* queries, int64_t q, const P* database, int64_t n, int d,
                    const TopKParams& p, float* out_scores, int64_t* out_ids,
                    cudaStream_t stream) {
  topk_validate(q, n, d, p);
  const MathMode math = topk_math(p.math, is_bf16_v<P>);
  if (q == 0) return;
  // The outputs double as the running result (keys until finalize).
  detail::topk_init_running_cuda(out_scores, out_ids, q, p.k, stream);
  if (n > 0) {
    const bool need_aux = p.metric != Metric::kInnerProduct;
    DeviceBuffer<float> q_aux(need_aux ? q : 0, stream);
    DeviceBuffer<float> x_aux(need_aux ? n : 0, stream);
    if (need_aux) {
      row_aux(queries, q_aux.get(), q, d, p.metric, stream);
      row_aux(database, x_aux.get(), n, d, p.metric, stream);
    }
    const int64_t slice = std::min(n, kMaxSliceRows);
    const Plan pl = make_plan(q, slice, p.k, math);
    DeviceBuffer<float> pk(static_cast<size_t>(pl.qbatch) * pl.splits * p.k, stream);
    DeviceBuffer<int64_t> pi(static_cast<size_t>(pl.qbatch) * pl.splits * p.k, stream);
    for (int64_t b = 0; b < n; b += slice) {
      const int64_t nb = std::min(slice, n - b);
      search_slice(as_dev(queries), q, q_aux.get(), as_dev(database + b * d), nb,
                   need_aux ? x_aux.get() + b : nullptr, d, b, p, p.exclude_offsets,
                   p.exclude_ids, out_scores, out_ids, pl, pk.get(), pi.get(), stream);
    }
  }
  detail::topk_finalize_cuda(out_scores, out_ids, q * p.k, p.metric, stream);
}

// Host pointers; the database is streamed through cuda_detail::ChunkStreamer (the copy of
// chunk i+1 overlaps the kernels of chunk i). Same kernels, same order as one device-resident
// slice per chunk, so results do not depend on the overlap.
template <typename P>
void topk_streaming_impl(const P* queries, int64_t q, const P* database, int64_t n, int d,
                         const TopKParams& p, float* out_scores, int64_t* out_ids,
                         cudaStream_t stream, int64_t chunk_rows) {
  topk_validate(q, n, d, p);
  const MathMode math = topk_math(p.math, is_bf16_v<P>);
  if (q == 0) return;
  if (chunk_rows <= 0)
    // 256 MiB: two device chunks + two pinned staging chunks = 1 GiB in flight.
    chunk_rows = std::max<int64_t>(1, (int64_t{256} << 20) / (int64_t{sizeof(P)} * d));
  chunk_rows = std::min({chunk_rows, std::max<int64_t>(n, 1), kMaxSliceRows});
  const int k = p.k;
  DeviceBuffer<P> Qd(static_cast<size_t>(q) * d, stream);
  CUDA_CHECK(cudaMemcpyAsync(Qd.get(), queries, sizeof(P) * q * d, cudaMemcpyHostToDevice,
                             stream));
  DeviceBuffer<int64_t> eoff, eids;
  if (p.exclude_offsets != nullptr) {
    const int64_t nnz = p.exclude_offsets[q];
    eoff = DeviceBuffer<int64_t>(static_cast<size_t>(q + 1), stream);
    eids = DeviceBuffer<int64_t>(static_cast<size_t>(std::max<int64_t>(nnz, 1)), stream);
    CUDA_CHECK(cudaMemcpyAsync(eoff.get(), p.exclude_offsets, sizeof(int64_t) * (q + 1),
                               cudaMemcpyHostToDevice, stream));
    if (nnz > 0)
      CUDA_CHECK(cudaMemcpyAsync(eids.get(), p.exclude_ids, sizeof(int64_t) * nnz,
                                 cudaMemcpyHostToDevice, stream));
  }
  DeviceBuffer<float> run_keys(static_cast<size_t>(q) * k, stream);
  DeviceBuffer<int64_t> run_ids(static_cast<size_t>(q) * k, stream);
  detail::topk_init_running_cuda(run_keys.get(), run_ids.get(), q, k, stream);
  if (n > 0) {
    const bool need_aux = p.metric != Metric::kInnerProduct;
    DeviceBuffer<float> q_aux(need_aux ? q : 0, stream);
    if (need_aux) row_aux(Qd.get(), q_aux.get(), q, d, p.metric, stream);
    DeviceBuffer<float> x_aux(need_aux ? chunk_rows : 0, stream);
    const Plan pl = make_plan(q, chunk_rows, k, math);
    DeviceBuffer<float> pk(static_cast<size_t>(pl.qbatch) * pl.splits * k, stream);
    DeviceBuffer<int64_t> pi(static_cast<size_t>(pl.qbatch) * pl.splits * k, stream);
    cuda_detail::ChunkStreamer<P> streamer(database, n, d, chunk_rows, stream, p.num_threads);
    streamer.for_each([&](int64_t b, int64_t nb, const P* chunk) {
      if (need_aux) row_aux(chunk, x_aux.get(), nb, d, p.metric, stream);
      search_slice(as_dev(Qd.get()), q, q_aux.get(), as_dev(chunk), nb, x_aux.get(), d, b, p,
                   eoff.get(), eids.get(), run_keys.get(), run_ids.get(), pl, pk.get(),
                   pi.get(), stream);
    });
  }
  detail::topk_finalize_cuda(run_keys.get(), run_ids.get(), q * k, p.metric, stream);
  CUDA_CHECK(cudaMemcpyAsync(out_scores, run_keys.get(), sizeof(float) * q * k,
                             cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaMemcpyAsync(out_ids, run_ids.get(), sizeof(int64_t) * q * k,
                             cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace

void topk_cuda(const float* queries, int64_t q, const float* database, int64_t n, int d,
               const TopKParams& p, float* out_scores, int64_t* out_ids, cudaStream_t stream) {
  topk_cuda_impl(queries, q, database, n, d, p, out_scores, out_ids, stream);
}

void topk_cuda(const bf16_bits* queries, int64_t q, const bf16_bits* database, int64_t n,
               int d, const TopKParams& p, float* out_scores, int64_t* out_ids,
               cudaStream_t stream) {
  topk_cuda_impl(queries, q, database, n, d, p, out_scores, out_ids, stream);
}

void topk_cuda_streaming(const float* queries, int64_t q, const float* database, int64_t n,
                         int d, const TopKParams& p, float* out_scores, int64_t* out_ids,
                         cudaStream_t stream, int64_t chunk_rows) {
  topk_streaming_impl(queries, q, database, n, d, p, out_scores, out_ids, stream, chunk_rows);
}

void topk_cuda_streaming(const bf16_bits* queries, int64_t q, const bf16_bits* database,
                         int64_t n, int d, const TopKParams& p, float* out_scores,
                         int64_t* out_ids, cudaStream_t stream, int64_t chunk_rows) {
  topk_streaming_impl(queries, q, database, n, d, p, out_scores, out_ids, stream, chunk_rows);
}

}  // namespace portrait::kernels
