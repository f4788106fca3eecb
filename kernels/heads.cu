#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/cuda_util.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/heads.cuh"
#include "kernels/select.cuh"
#include "kernels/tile_gemm.cuh"
#include "kernels/topk.cuh"

namespace portrait::kernels {

using cuda_detail::ListState;

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBM = 32;   // users per tile (== warp width: one ballot per head per tile)
constexpr int kBH = 128;  // hidden units per GEMM tile
constexpr int kBK = 16;
constexpr int kTM = 2, kTN = 8;

struct HeadsArgs {
  const void* x;
  int64_t n;
  int d, h, c;
  const float* w1;
  const float* b1;
  const float* w2;
  const float* b2;
  int act;
  float* probs;      // probabilities mode
  int m;             // top-M mode
  int splits;
  int group;         // heads per block (gridDim.y groups)
  float* part_keys;  // [C, splits, m]
  int64_t* part_ids;
};

__device__ __forceinline__ float activation(float x, int act) {
  if (act == static_cast<int>(Activation::kRelu)) return fmaxf(x, 0.f);
  if (act == static_cast<int>(Activation::kGeluErf))
    return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
  const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.f + tanhf(u));
}

size_t heads_smem_bytes(int h, bool topm, int group, int m) {
  size_t floats = cuda_detail::tile_gemm_smem_floats<kBM, kBH, kBK>() +
                  static_cast<size_t>(kBM) * (h + 1);
  if (!topm) return floats * sizeof(float);
  floats += static_cast<size_t>(kBM) * group;
  return floats * sizeof(float) + static_cast<size_t>(group) * m * (sizeof(float) + sizeof(int)) +
         group * sizeof(ListState);
}

template <typename TX, bool kTopM>
__global__ void __launch_bounds__(kThreads) heads_kernel(HeadsArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int hs = a.h + 1;  // padded row: epilogue stores from two rows hit different banks
  float* sA = reinterpret_cast<float*>(smem);
  float* sB = sA + kBK * (kBM + 1);
  float* hidden = sB + kBK * (kBH + 1);
  float* sP = hidden + kBM * hs;                           // top-M: [kBM, group]
  float* lkeys = sP + kBM * a.group;                       // top-M: [group, m]
  int* lids = reinterpret_cast<int*>(lkeys + a.group * a.m);
  ListState* lst = reinterpret_cast<ListState*>(lids + a.group * a.m);

  const TX* X = static_cast<const TX*>(a.x);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int tx = tid % (kBH / kTN), ty = tid / (kBH / kTN);
  const int64_t tiles = (a.n + kBM - 1) / kBM;
  int64_t t_begin, t_end;
  int g0 = 0, gcount = a.c;
  if (kTopM) {
    const int64_t per = (tiles + a.splits - 1) / a.splits;
    t_begin = blockIdx.x * per;
    t_end = min(tiles, t_begin + per);
    g0 = blockIdx.y * a.group;
    gcount = min(a.group, a.c - g0);
    for (int g = tid; g < gcount; g += kThreads) lst[g] = ListState{0, 0.f, 0, 0};
    __syncthreads();  // a split without tiles goes straight to the write-out below
  } else {
    t_begin = blockIdx.x;
    t_end = t_begin + 1;
  }

  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t m0 = t * kBM;
    for (int h0 = 0; h0 < a.h; h0 += kBH) {
      float acc[kTM][kTN] = {};
      cuda_detail::tile_gemm_nt<kBM, kBH, kBK, kTM, kTN>(X, a.n, m0, a.w1, a.h, h0, a.d, sA,
                                                          sB, acc);
#pragma unroll
      for (int i = 0; i < kTM; ++i) {
#pragma unroll
        for (int j = 0; j < kTN; ++j) {
          const int col = h0 + tx + j * (kBH / kTN);
          if (col < a.h) {
            const float z = acc[i][j] + (a.b1 ? a.b1[col] : 0.f);
            hidden[(ty * kTM + i) * hs + col] = activation(z, a.act);
          }
        }
      }
    }
    __syncthreads();
    for (int pidx = warp; pidx < kBM * gcount; pidx += kWarps) {
      const int r = pidx / gcount, cc = pidx % gcount, c = g0 + cc;
      const float* wr = a.w2 + static_cast<int64_t>(c) * a.h;
      float s = 0.f;
      for (int u = lane; u < a.h; u += 32) s = fmaf(hidden[r * hs + u], __ldg(wr + u), s);
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(cuda_detail::kFullMask, s, o);
      if (lane == 0) {
        const float z = s + (a.b2 ? a.b2[c] : 0.f);
        const float p = 1.f / (1.f + expf(-z));
        if (kTopM) {
          sP[r * a.group + cc] = p;
        } else if (m0 + r < a.n) {
          a.probs[(m0 + r) * a.c + c] = p;
        }
      }
    }
    if (kTopM) {
      __syncthreads();
      for (int g = warp; g < gcount; g += kWarps) {
        ListState st = lst[g];
        const float key = sP[lane * a.group + g];
        const bool valid = m0 + lane < a.n;
        cuda_detail::warp_offer(key, static_cast<int>(m0 + lane), valid, lkeys + g * a.m,
                                lids + g * a.m, a.m, st, cuda_detail::NoExclusion{});
        if (lane == 0) lst[g] = st;
      }
    }
    __syncthreads();  // hidden / sP are rewritten by the next tile
  }

  if (kTopM) {
    for (int g = warp; g < gcount; g += kWarps) {
      const int count = lst[g].count;
      const int64_t row = g0 + g;
      float* pk = a.part_keys + (row * a.splits + blockIdx.x) * a.m;
      int64_t* pi = a.part_ids + (row * a.splits + blockIdx.x) * a.m;
      for (int s = lane; s < a.m; s += 32) {
        const bool have = s < count;
        pk[s] = have ? lkeys[g * a.m + s] : cuda_detail::neg_inf();
        pi[s] = have ? static_cast<int64_t>(lids[g * a.m + s]) : -1;
      }
    }
  }
}

HeadsArgs make_args(const void* x, int64_t n, const HeadsWeights& w, const HeadsParams& p) {
  HeadsArgs a{};
  a.x = x;
  a.n = n;
  a.d = w.d;
  a.h = w.h;
  a.c = w.c;
  a.w1 = w.w1;
  a.b1 = w.b1;
  a.w2 = w.w2;
  a.b2 = w.b2;
  a.act = static_cast<int>(p.activation);
  return a;
}

template <typename TX>
void probs_impl(const void* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                float* probs, cudaStream_t stream) {
  heads_validate(n, w, 0);
  if (n == 0) return;
  HeadsArgs a = make_args(x, n, w, p);
  a.probs = probs;
  a.group = w.c;
  const size_t smem = heads_smem_bytes(w.h, false, 0, 0);
  const int64_t tiles = (n + kBM - 1) / kBM;
  if (tiles > 0x7fffffffLL) throw std::invalid_argument("heads: n too large");
  auto kern = heads_kernel<TX, false>;
  CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  kern<<<static_cast<unsigned>(tiles), kThreads, smem, stream>>>(a);
  CUDA_CHECK_LAUNCH();
}

template <typename TX>
void topm_impl(const void* x, int64_t n, const HeadsWeights& w, const HeadsParams& p, int m,
               float* out_probs, int64_t* out_ids, cudaStream_t stream) {
  heads_validate(n, w, m);
  if (n > 0x7fffffffLL - kBM) throw std::invalid_argument("heads: top-M needs n < 2^31");
  detail::topk_init_running_cuda(out_probs, out_ids, w.c, m, stream);
  if (n == 0) return;
  HeadsArgs a = make_args(x, n, w, p);
  a.m = m;
  // Largest head group whose lists fit next to the hidden tile.
  const int limit = cuda_detail::max_dynamic_smem();
  int group = w.c;
  while (group > 1 && static_cast<int>(heads_smem_bytes(w.h, true, group, m)) > limit)
    group = (group + 1) / 2;
  const size_t smem = heads_smem_bytes(w.h, true, group, m);
  if (static_cast<int>(smem) > limit)
    throw std::runtime_error("heads: h=" + std::to_string(w.h) + ", m=" + std::to_string(m) +
                             " needs " + std::to_string(smem) +
                             " bytes of shared memory per block; this GPU allows " +
                             std::to_string(limit));
  const int groups = (w.c + group - 1) / group;
  const int64_t tiles = (n + kBM - 1) / kBM;
  const int64_t want = std::max<int64_t>(1, 2LL * cuda_detail::sm_count() / groups);
  a.splits = static_cast<int>(std::min<int64_t>({tiles, want, 65535}));
  a.group = group;
  DeviceBuffer<float> pk(static_cast<size_t>(w.c) * a.splits * m, stream);
  DeviceBuffer<int64_t> pi(static_cast<size_t>(w.c) * a.splits * m, stream);
  a.part_keys = pk.get();
  a.part_ids = pi.get();
  auto kern = heads_kernel<TX, true>;
  CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  kern<<<dim3(static_cast<unsigned>(a.splits), static_cast<unsigned>(groups)), kThreads, smem,
         stream>>>(a);
  CUDA_CHECK_LAUNCH();
  // Probabilities are already "higher is better" keys; empty slots keep -inf / -1.
  detail::topk_merge_cuda(pk.get(), pi.get(), w.c, a.splits, m, out_probs, out_ids, stream);
}

}  // namespace

void heads_probs_cuda(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                      float* probs, cudaStream_t stream) {
  probs_impl<float>(x, n, w, p, probs, stream);
}
void heads_probs_cuda(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                      const HeadsParams& p, float* probs, cudaStream_t stream) {
  probs_impl<__nv_bfloat16>(x, n, w, p, probs, stream);
}
void heads_topm_cuda(const float* x, int64_t n, const HeadsWeights& w, const HeadsParams& p,
                     int m, float* out_probs, int64_t* out_ids, cudaStream_t stream) {
  topm_impl<float>(x, n, w, p, m, out_probs, out_ids, stream);
}
void heads_topm_cuda(const bf16_bits* x, int64_t n, const HeadsWeights& w,
                     const HeadsParams& p, int m, float* out_probs, int64_t* out_ids,
                     cudaStream_t stream) {
  topm_impl<__nv_bfloat16>(x, n, w, p, m, out_probs, out_ids, stream);
}

}  // namespace portrait::kernels
