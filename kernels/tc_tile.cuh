// Tensor-core block tile shared by the fused distance GEMMs (k-means assignment, top-k
// search): acc = A[a0 : a0+BM, 0:d] . B[b0 : b0+BN, 0:d]^T, both operands row-major with d
// contiguous ("NT"), computed with warp-level mma.sync (sm_80+; also runs on sm_90, where
// wgmma would be faster but needs a warp-specialised pipeline this code does not have yet).
//
// Kinds (precision consequences in common.h, MathMode):
//  * kTf32    m16n8k8 TF32 MMA; smem holds fp32, rounded to TF32 (cvt.rna) at fragment load.
//  * kTf32x3  same smem; each value is split into big + small TF32 halves at fragment load
//             and a.b = a_s.b_b + a_b.b_s + a_b.b_b (3 MMAs, small terms first).
//  * kBf16    m16n8k16 BF16 MMA; values are rounded to bf16 (RN) when staged into smem.
// Accumulation is fp32 in every kind.
//
// Pipeline: d is consumed in slabs of kBK columns (16 fp32 or 32 bf16 = 64 bytes per row).
// Global loads of slab s+1 go to registers while the warps run the MMAs of slab s out of one
// of two smem buffers; one __syncthreads() per slab. Loads are 16-byte vectors when d % 8 == 0
// and the base pointer is 16-byte aligned (`vec`), scalar otherwise; rows >= m / nb and
// columns >= d read as 0, so any d >= 1 and ragged tiles are handled (zero padding does not
// change dot products).
//
// Shared-memory rows are 80 bytes (64 data + 16 padding = 20 words): the fragment loads of a
// warp (lane = 4*g + t reads word 20*g + t (+const)) then hit 32 distinct banks, and every row
// start stays 16-byte aligned for the vector stores.
//
// Accumulator layout (PTX ISA, "mma.m16n8k8 / m16n8k16 fragment for C/D"): lane = 4*g + t
// holds acc[mt][nt][r] for row 16*mt + g + 8*(r/2) and column 8*nt + 2*t + (r%2) of its warp
// tile; row_of() / col_of() map them to block-tile coordinates.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/common.h"
#include "kernels/cuda_check.h"

namespace portrait::kernels::cuda_detail {

enum class TcKind { kTf32, kTf32x3, kBf16 };

/// Bytes per smem slab row (see file comment).
constexpr int kTcRowBytes = 80;

#if !defined(__CUDACC__)
// Host-only compilation of this header (tests/kernels/tc_tile_emulation_test.cpp checks the
// tile's indexing with a warp emulator, no GPU): the emulator defines these, following the
// PTX ISA fragment layouts.
void tc_emulate_mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
void tc_emulate_mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
#endif

/// fp32 -> TF32 (cvt.rna: round to nearest, ties away from zero), as fp32 bits with the low
/// 13 mantissa bits cleared.
__device__ __forceinline__ uint32_t f32_to_tf32(float x) {
#if defined(__CUDACC__)
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#else  // host emulation: same rounding on the bit pattern (inf / NaN pass through)
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;
  return (u + 0x1000u) & 0xffffe000u;
#endif
}

// big + small TF32 split of x (3xTF32). Non-finite values keep small = 0 so that inf - inf
// does not turn a valid +-inf product into NaN.
__device__ __forceinline__ void split_tf32(float x, uint32_t& big, uint32_t& small) {
  big = f32_to_tf32(x);
  const float b = __uint_as_float(big);
  small = isfinite(b) ? f32_to_tf32(x - b) : 0u;
}

__device__ __forceinline__ void mma_tf32_16x8x8(float (&c)[4], const uint32_t (&a)[4],
                                                const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(__CUDACC__)
  __trap();  // host code never launches tensor-core kernels below sm_80
#else
  tc_emulate_mma_tf32(c, a, b);
#endif
}

__device__ __forceinline__ void mma_bf16_16x8x16(float (&c)[4], const uint32_t (&a)[4],
                                                 const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(__CUDACC__)
  __trap();
#else
  tc_emulate_mma_bf16(c, a, b);
#endif
}

// 8 consecutive input elements of one row held in registers in their raw input format
// between the global load and the smem store (conversion to the smem type happens at store
// time, after the MMAs, so it never waits on an in-flight load): 8 floats, or 8 bf16 packed
// two per word (lower column in the low half, as in memory).
template <typename T> struct Raw8;
template <> struct Raw8<float> { float v[8]; };
template <> struct Raw8<__nv_bfloat16> { uint32_t w[4]; };

// Row `row`, columns [col, col + 8); 0 outside [0, rows) x [0, d).
__device__ __forceinline__ void load_raw8(const float* __restrict__ X, int64_t rows, int d,
                                          int64_t row, int col, bool vec, Raw8<float>& o) {
  if (row < rows && vec && col + 8 <= d) {
    const float4* p = reinterpret_cast<const float4*>(X + row * d + col);
    const float4 lo = __ldg(p), hi = __ldg(p + 1);
    o.v[0] = lo.x; o.v[1] = lo.y; o.v[2] = lo.z; o.v[3] = lo.w;
    o.v[4] = hi.x; o.v[5] = hi.y; o.v[6] = hi.z; o.v[7] = hi.w;
    return;
  }
#pragma unroll
  for (int u = 0; u < 8; ++u)
    o.v[u] = (row < rows && col + u < d) ? __ldg(X + row * d + col + u) : 0.f;
}

__device__ __forceinline__ void load_raw8(const __nv_bfloat16* __restrict__ X, int64_t rows,
                                          int d, int64_t row, int col, bool vec,
                                          Raw8<__nv_bfloat16>& o) {
  if (row < rows && vec && col + 8 <= d) {
    const uint4 w = __ldg(reinterpret_cast<const uint4*>(X + row * d + col));
    o.w[0] = w.x; o.w[1] = w.y; o.w[2] = w.z; o.w[3] = w.w;
    return;
  }
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int c = col + 2 * u;
    const uint32_t lo =
        (row < rows && c < d) ? __bfloat16_as_ushort(X[row * d + c]) : 0u;  // 0 = +0.0
    const uint32_t hi =
        (row < rows && c + 1 < d) ? __bfloat16_as_ushort(X[row * d + c + 1]) : 0u;
    o.w[u] = lo | (hi << 16);
  }
}

// Widen / narrow to the smem element type and store 8 elements (16-byte aligned p).
__device__ __forceinline__ void store8(float* p, const Raw8<float>& o) {
  reinterpret_cast<float4*>(p)[0] = make_float4(o.v[0], o.v[1], o.v[2], o.v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(o.v[4], o.v[5], o.v[6], o.v[7]);
}
__device__ __forceinline__ void store8(float* p, const Raw8<__nv_bfloat16>& o) {
  float v[8];
#pragma unroll
  for (int u = 0; u < 4; ++u) {  // bf16 -> fp32 is exact: the bits move up
    v[2 * u] = __uint_as_float(o.w[u] << 16);
    v[2 * u + 1] = __uint_as_float(o.w[u] & 0xffff0000u);
  }
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // one cvt.rn.bf16x2 on sm_80+
  return static_cast<uint32_t>(__bfloat16_as_ushort(h.x)) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(h.y)) << 16);
}
__device__ __forceinline__ void store8(__nv_bfloat16* p, const Raw8<float>& o) {
  *reinterpret_cast<uint4*>(p) =
      make_uint4(pack_bf16x2(o.v[0], o.v[1]), pack_bf16x2(o.v[2], o.v[3]),
                 pack_bf16x2(o.v[4], o.v[5]), pack_bf16x2(o.v[6], o.v[7]));
}
__device__ __forceinline__ void store8(__nv_bfloat16* p, const Raw8<__nv_bfloat16>& o) {
  *reinterpret_cast<uint4*>(p) = make_uint4(o.w[0], o.w[1], o.w[2], o.w[3]);
}

/// True when 16-byte vector loads of 8-element groups are valid for rows of width d.
template <typename T>
__host__ __device__ inline bool tc_vec_ok(const T* p, int d) {
  return d % 8 == 0 && (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

/// Block tile of BM x BN scores computed by WARPS_M x WARPS_N warps (blockDim.x must equal
/// kThreads). Instantiate per kernel; `acc` lives in registers.
template <int BM, int BN, int WARPS_M, int WARPS_N, TcKind K>
struct TcTile {
  static constexpr bool kIsBf16 = K == TcKind::kBf16;
  using Elem = std::conditional_t<kIsBf16, __nv_bfloat16, float>;
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int kWM = BM / WARPS_M, kWN = BN / WARPS_N;
  static constexpr int kMT = kWM / 16, kNT = kWN / 8;
  static constexpr int kBK = 64 / static_cast<int>(sizeof(Elem));   // 16 fp32 or 32 bf16
  static constexpr int kRow = kTcRowBytes / static_cast<int>(sizeof(Elem));  // row stride
  static constexpr int kGroups = kBK / 8;  // 8-element groups per slab row
  static constexpr int kSlotsA = BM * kGroups, kSlotsB = BN * kGroups;
  static constexpr int kPerA = (kSlotsA + kThreads - 1) / kThreads;
  static constexpr int kPerB = (kSlotsB + kThreads - 1) / kThreads;
  /// Dynamic shared memory the tile needs (two slab buffers).
  static constexpr size_t kSmemBytes = size_t{2} * (BM + BN) * kTcRowBytes;
  static_assert(kWM % 16 == 0 && kWN % 8 == 0, "warp tile must be a multiple of 16 x 8");

  float acc[kMT][kNT][4];

  __device__ static int warp_m() { return static_cast<int>(threadIdx.x >> 5) / WARPS_N; }
  __device__ static int warp_n() { return static_cast<int>(threadIdx.x >> 5) % WARPS_N; }
  /// Block-tile row of acc[mt][*][r] for this lane.
  __device__ static int row_of(int mt, int r) {
    return warp_m() * kWM + mt * 16 + static_cast<int>((threadIdx.x & 31) >> 2) + 8 * (r >> 1);
  }
  /// Block-tile column of acc[*][nt][r] for this lane.
  __device__ static int col_of(int nt, int r) {
    return warp_n() * kWN + nt * 8 + 2 * static_cast<int>(threadIdx.x & 3) + (r & 1);
  }

  /// acc = A[a0.., :] . B[b0.., :]^T. `smem` (kSmemBytes, 16-byte aligned) must not be in use
  /// by any thread of the block when called (callers put a barrier before reusing it); ends
  /// with __syncthreads(), so smem may be reused right after.
  template <typename TA, typename TB>
  __device__ __forceinline__ void compute(const TA* __restrict__ A, int64_t m, int64_t a0,
                                          bool vec_a, const TB* __restrict__ B, int64_t nb,
                                          int64_t b0, bool vec_b, int d,
                                          unsigned char* smem) {
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;
    Elem* buf = reinterpret_cast<Elem*>(smem);
    constexpr int kBufElems = (BM + BN) * kRow;
    Raw8<TA> sa[kPerA];
    Raw8<TB> sb[kPerB];
    const int slabs = (d + kBK - 1) / kBK;
    load_slab(A, m, a0, d, 0, vec_a, kSlotsA, sa);
    load_slab(B, nb, b0, d, 0, vec_b, kSlotsB, sb);
    store_slab(buf, kSlotsA, sa);
    store_slab(buf + BM * kRow, kSlotsB, sb);
    __syncthreads();
    for (int s = 0; s < slabs; ++s) {
      Elem* cur = buf + (s & 1) * kBufElems;
      const bool more = s + 1 < slabs;
      if (more) {  // next slab's global loads overlap this slab's MMAs
        load_slab(A, m, a0, d, (s + 1) * kBK, vec_a, kSlotsA, sa);
        load_slab(B, nb, b0, d, (s + 1) * kBK, vec_b, kSlotsB, sb);
      }
      mma_slab(cur, cur + BM * kRow);
      if (more) {
        Elem* nxt = buf + ((s + 1) & 1) * kBufElems;
        store_slab(nxt, kSlotsA, sa);
        store_slab(nxt + BM * kRow, kSlotsB, sb);
      }
      // nxt was last read by slab s-1's MMAs, which every warp finished before the barrier
      // that ended iteration s-1; this barrier publishes nxt and retires cur.
      __syncthreads();
    }
  }

 private:
  template <typename T, int PER>
  __device__ __forceinline__ static void load_slab(const T* __restrict__ X, int64_t rows,
                                                   int64_t base, int d, int k0, bool vec,
                                                   int slots, Raw8<T> (&st)[PER]) {
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int e = static_cast<int>(threadIdx.x) + i * kThreads;
      const int r = e / kGroups, g = e % kGroups;
      // Slots past the tile (only when slots % kThreads != 0) load nothing.
      const int64_t row = e < slots ? base + r : rows;
      load_raw8(X, rows, d, row, k0 + g * 8, vec, st[i]);
    }
  }

  template <typename T, int PER>
  __device__ __forceinline__ static void store_slab(Elem* dst, int slots,
                                                    const Raw8<T> (&st)[PER]) {
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int e = static_cast<int>(threadIdx.x) + i * kThreads;
      if (e >= slots) continue;
      const int r = e / kGroups, g = e % kGroups;
      store8(dst + r * kRow + g * 8, st[i]);
    }
  }

  __device__ __forceinline__ void mma_slab(const Elem* sA, const Elem* sB) {
    const int lane = static_cast<int>(threadIdx.x & 31);
    const int g = lane >> 2, t = lane & 3;
    const int ra = warp_m() * kWM + g;  // + 16*mt (+8)
    const int rb = warp_n() * kWN + g;  // + 8*nt
    if constexpr (kIsBf16) {
      // Word view: a row is 20 words; word w of a row holds columns 2w (low) and 2w+1.
      const uint32_t* A32 = reinterpret_cast<const uint32_t*>(sA);
      const uint32_t* B32 = reinterpret_cast<const uint32_t*>(sB);
      constexpr int kW = kTcRowBytes / 4;
#pragma unroll
      for (int kk = 0; kk < kBK / 2; kk += 8) {  // 16 columns = 8 words per MMA
        uint32_t a[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          const int r0 = ra + 16 * mt;
          a[mt][0] = A32[r0 * kW + kk + t];
          a[mt][1] = A32[(r0 + 8) * kW + kk + t];
          a[mt][2] = A32[r0 * kW + kk + t + 4];
          a[mt][3] = A32[(r0 + 8) * kW + kk + t + 4];
        }
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const int c0 = rb + 8 * nt;
          const uint32_t b[2] = {B32[c0 * kW + kk + t], B32[c0 * kW + kk + t + 4]};
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) mma_bf16_16x8x16(acc[mt][nt], a[mt], b);
        }
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < kBK; kk += 8) {
        uint32_t ab[kMT][4];
        [[maybe_unused]] uint32_t as[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          const int r0 = ra + 16 * mt;
          const float v[4] = {sA[r0 * kRow + kk + t], sA[(r0 + 8) * kRow + kk + t],
                              sA[r0 * kRow + kk + t + 4], sA[(r0 + 8) * kRow + kk + t + 4]};
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            if constexpr (K == TcKind::kTf32x3) {
              split_tf32(v[r], ab[mt][r], as[mt][r]);
            } else {
              ab[mt][r] = f32_to_tf32(v[r]);
            }
          }
        }
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const int c0 = rb + 8 * nt;
          const float w0 = sB[c0 * kRow + kk + t], w1 = sB[c0 * kRow + kk + t + 4];
          if constexpr (K == TcKind::kTf32x3) {
            uint32_t bb[2], bs[2];
            split_tf32(w0, bb[0], bs[0]);
            split_tf32(w1, bb[1], bs[1]);
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt) {
              mma_tf32_16x8x8(acc[mt][nt], as[mt], bb);
              mma_tf32_16x8x8(acc[mt][nt], ab[mt], bs);
              mma_tf32_16x8x8(acc[mt][nt], ab[mt], bb);
            }
          } else {
            const uint32_t bb[2] = {f32_to_tf32(w0), f32_to_tf32(w1)};
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt) mma_tf32_16x8x8(acc[mt][nt], ab[mt], bb);
          }
        }
      }
    }
  }
};

/// Compute capability major of the current device.
inline int device_cc_major() {
  int dev = 0, major = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major;
}

/// The math mode a launcher will use: kAuto -> `auto_choice` on sm_80+, kSimt below;
/// explicit tensor-core modes below sm_80 throw std::invalid_argument.
inline MathMode resolve_math(MathMode requested, MathMode auto_choice, const char* op) {
  const bool tc = device_cc_major() >= 8;
  if (requested == MathMode::kAuto) return tc ? auto_choice : MathMode::kSimt;
  if (requested != MathMode::kSimt && !tc)
    throw std::invalid_argument(std::string(op) + ": math=" + math_mode_name(requested) +
                                " needs compute capability 8.0 or newer");
  return requested;
}

}  // namespace portrait::kernels::cuda_detail
