// Host emulation of kernels/tc_tile.cuh: compiles the tensor-core block tile as plain C++
// and runs one thread block on std::threads (one per CUDA thread, std::barrier for
// __syncthreads), with mma.sync emulated per warp from the PTX ISA's fragment layouts:
//   A (16 x K): register r of lane l holds row l/4 + 8*(r%2), k-column l%4 + 4*(r/2)
//               (TF32: one element; BF16: a word = k-columns 2c, 2c+1, low half first);
//   B (K x 8):  register r of lane l holds column l/4, k-row l%4 + 4*r (same word rule);
//   C/D:        register r of lane l holds row l/4 + 8*(r/2), column 2*(l%4) + r%2.
// This checks everything the tile does around the MMA instruction - slab loop and double
// buffering, zero padding of ragged rows / columns / d, scalar and 16-byte vector loads,
// bf16 packing, smem strides, fragment addressing, row_of()/col_of() - against a plain GEMM,
// without a GPU. It cannot check the hardware's own MMA semantics or timing (gpu tests do).
// Label unit; built only when the CUDA headers are present.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "kernels/common.h"
#include "core/rng.h"

// ---- device intrinsics the tile uses, for a host build ---------------------------------
thread_local uint3 threadIdx;
namespace {
std::barrier<>* g_block_barrier = nullptr;
struct WarpExchange {
  std::barrier<> bar{32};
  uint32_t a[32][4];
  uint32_t b[32][2];
};
WarpExchange* g_warps = nullptr;
}  // namespace
void __syncthreads() { g_block_barrier->arrive_and_wait(); }
template <typename T>
T __ldg(const T* p) {
  return *p;
}
float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
using std::isfinite;

#include "kernels/tc_tile.cuh"  // built with -Wno-unknown-pragmas (#pragma unroll is nvcc's)

namespace portrait::kernels::cuda_detail {
namespace {

float bits_to_float(uint32_t u) { return __uint_as_float(u); }
// TF32 operands: the MMA reads the top 19 bits.
float tf32_value(uint32_t u) { return bits_to_float(u & 0xffffe000u); }
float bf16_lo(uint32_t w) { return bits_to_float(w << 16); }
float bf16_hi(uint32_t w) { return bits_to_float(w & 0xffff0000u); }

// Gathers the warp's fragments; fn(A, B) then computes this lane's D from full matrices.
template <int K, typename Fill>
void warp_mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], Fill fill) {
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  WarpExchange& w = g_warps[warp];
  for (int r = 0; r < 4; ++r) w.a[lane][r] = a[r];
  for (int r = 0; r < 2; ++r) w.b[lane][r] = b[r];
  w.bar.arrive_and_wait();
  float A[16][K] = {}, B[K][8] = {};
  fill(w, A, B);
  w.bar.arrive_and_wait();  // every lane has read the exchange before it is reused
  for (int r = 0; r < 4; ++r) {
    const int row = lane / 4 + 8 * (r / 2), col = 2 * (lane % 4) + r % 2;
    double s = c[r];
    for (int k = 0; k < K; ++k) s += double(A[row][k]) * B[k][col];
    c[r] = static_cast<float>(s);
  }
}

}  // namespace

void tc_emulate_mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  warp_mma<8>(c, a, b, [](const WarpExchange& w, float (&A)[16][8], float (&B)[8][8]) {
    for (int l = 0; l < 32; ++l) {
      for (int r = 0; r < 4; ++r) A[l / 4 + 8 * (r % 2)][l % 4 + 4 * (r / 2)] = tf32_value(w.a[l][r]);
      for (int r = 0; r < 2; ++r) B[l % 4 + 4 * r][l / 4] = tf32_value(w.b[l][r]);
    }
  });
}

void tc_emulate_mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  warp_mma<16>(c, a, b, [](const WarpExchange& w, float (&A)[16][16], float (&B)[16][8]) {
    for (int l = 0; l < 32; ++l) {
      for (int r = 0; r < 4; ++r) {
        const int row = l / 4 + 8 * (r % 2), kw = l % 4 + 4 * (r / 2);
        A[row][2 * kw] = bf16_lo(w.a[l][r]);
        A[row][2 * kw + 1] = bf16_hi(w.a[l][r]);
      }
      for (int r = 0; r < 2; ++r) {
        const int col = l / 4, kw = l % 4 + 4 * r;
        B[2 * kw][col] = bf16_lo(w.b[l][r]);
        B[2 * kw + 1][col] = bf16_hi(w.b[l][r]);
      }
    }
  });
}

namespace {

// Runs fn() on `threads` std::threads that see threadIdx.x = 0..threads-1.
template <typename Fn>
void run_block(int threads, Fn fn) {
  std::barrier<> bar(threads);
  std::vector<WarpExchange> warps(static_cast<size_t>(threads / 32));
  g_block_barrier = &bar;
  g_warps = warps.data();
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&fn, t] {
      threadIdx = uint3{static_cast<unsigned>(t), 0u, 0u};
      fn();
    });
  for (auto& t : ts) t.join();
}

template <typename T>
struct Input {
  std::vector<T> data;     // what the kernel reads
  std::vector<float> ref;  // its exact fp32 value
};

// Rows of small integers (exact in TF32, BF16 and fp32 sums) or uniform floats.
template <typename T>
Input<T> make_input(int64_t rows, int d, uint64_t seed, bool integers) {
  Rng rng(seed);
  Input<T> in;
  in.data.resize(static_cast<size_t>(rows) * d);
  in.ref.resize(in.data.size());
  for (size_t i = 0; i < in.data.size(); ++i) {
    const float v = integers ? static_cast<float>(static_cast<int>(rng.below(9)) - 4)
                             : static_cast<float>(rng.uniform() * 2.0 - 1.0);
    if constexpr (std::is_same_v<T, float>) {
      in.data[i] = v;
      in.ref[i] = v;
    } else {
      const bf16_bits b = float_to_bf16(v);
      std::memcpy(static_cast<void*>(&in.data[i]), &b, sizeof b);
      in.ref[i] = bf16_to_float(b);
    }
  }
  return in;
}

struct Case {
  int64_t m, a0, nb, b0;
  int d;
};

// One tile: out[r][c] = acc at (row_of, col_of); compares with the double-precision GEMM of
// the operands as the kind sees them (rounded to TF32 / BF16, or exact for 3xTF32 up to
// its residual).
template <int BM, int BN, int WM, int WN, TcKind K, typename TA, typename TB>
void check_tile(const Case& cs, bool integers, bool misalign) {
  using Tile = TcTile<BM, BN, WM, WN, K>;
  const int d = cs.d;
  const auto A = make_input<TA>(cs.m, d, 1 + cs.m + d, integers);
  const auto B = make_input<TB>(cs.nb, d, 2 + cs.nb + d, integers);
  // Optionally shift the operands by one element so 16-byte vector loads are invalid.
  std::vector<TA> abuf(A.data.size() + 8);
  std::vector<TB> bbuf(B.data.size() + 8);
  const size_t shift = misalign ? 1 : 0;
  std::copy(A.data.begin(), A.data.end(), abuf.begin() + shift);
  std::copy(B.data.begin(), B.data.end(), bbuf.begin() + shift);
  const TA* pa = abuf.data() + shift;
  const TB* pb = bbuf.data() + shift;
  const bool vec_a = tc_vec_ok(pa, d), vec_b = tc_vec_ok(pb, d);

  constexpr size_t kCanary = 256;
  std::vector<unsigned char> smem_raw(Tile::kSmemBytes + kCanary + 16, 0xa5);
  unsigned char* smem = smem_raw.data() + (16 - reinterpret_cast<uintptr_t>(smem_raw.data()) % 16) % 16;
  std::vector<float> out(static_cast<size_t>(BM) * BN, std::nanf(""));
  run_block(Tile::kThreads, [&] {
    Tile tile;
    tile.compute(pa, cs.m, cs.a0, vec_a, pb, cs.nb, cs.b0, vec_b, d, smem);
    for (int mt = 0; mt < Tile::kMT; ++mt)
      for (int nt = 0; nt < Tile::kNT; ++nt)
        for (int r = 0; r < 4; ++r)
          out[static_cast<size_t>(Tile::row_of(mt, r)) * BN + Tile::col_of(nt, r)] =
              tile.acc[mt][nt][r];
  });
  for (size_t i = Tile::kSmemBytes; i < Tile::kSmemBytes + kCanary; ++i)
    ASSERT_EQ(smem[i], 0xa5) << "shared-memory overrun at byte " << i;

  auto as_kind = [&](float v) -> double {
    if constexpr (K == TcKind::kBf16) return bf16_to_float(float_to_bf16(v));
    if constexpr (K == TcKind::kTf32) return tf32_value(f32_to_tf32(v));
    return v;
  };
  for (int r = 0; r < BM; ++r) {
    for (int c = 0; c < BN; ++c) {
      const int64_t ar = cs.a0 + r, bc = cs.b0 + c;
      double want = 0, scale = 0;
      if (ar < cs.m && bc < cs.nb) {
        for (int j = 0; j < d; ++j) {
          const double x = as_kind(A.ref[ar * d + j]), y = as_kind(B.ref[bc * d + j]);
          want += x * y;
          scale += std::fabs(x * y);
        }
      }
      // Exact for integers; otherwise fp32 accumulation (and the 3xTF32 residual ~2^-21).
      const double tol = integers ? 0.0 : (K == TcKind::kTf32x3 ? 1e-5 : 1e-6) * (scale + 1);
      const float got = out[static_cast<size_t>(r) * BN + c];
      ASSERT_NEAR(got, want, tol) << "row " << r << " col " << c << " (m=" << cs.m
                                  << " a0=" << cs.a0 << " nb=" << cs.nb << " b0=" << cs.b0
                                  << " d=" << d << " vec=" << vec_a << vec_b << ")";
    }
  }
}

const Case kCases[] = {
    {1, 0, 1, 0, 1},          // a single element, d = 1
    {200, 64, 300, 128, 13},  // full tiles, d not a multiple of 8 (scalar loads)
    {70, 0, 5, 0, 16},        // ragged rows and columns, one TF32 slab
    {133, 128, 129, 0, 40},   // 5 rows / 129 columns left, d = 40: 2-3 slabs + tail
    {128, 0, 128, 0, 64},     // exact tiles, vector loads, several slabs
};

template <int BM, int BN, int WM, int WN, TcKind K, typename TA, typename TB>
void check_all() {
  for (const Case& cs : kCases) {
    for (bool integers : {true, false}) {
      for (bool misalign : {false, true}) {
        SCOPED_TRACE(std::string("integers=") + (integers ? "1" : "0") +
                     " misaligned=" + (misalign ? "1" : "0"));
        check_tile<BM, BN, WM, WN, K, TA, TB>(cs, integers, misalign);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

using bf16 = __nv_bfloat16;

// k-means tile: 128 x 128, 4 x 2 warps.
TEST(TcTileEmulation, KMeansTileTf32) { check_all<128, 128, 4, 2, TcKind::kTf32, float, float>(); }
TEST(TcTileEmulation, KMeansTileTf32x3) {
  check_all<128, 128, 4, 2, TcKind::kTf32x3, float, float>();
}
TEST(TcTileEmulation, KMeansTileBf16) { check_all<128, 128, 4, 2, TcKind::kBf16, float, float>(); }
TEST(TcTileEmulation, KMeansTileBf16InputFp32Centroids) {
  check_all<128, 128, 4, 2, TcKind::kBf16, bf16, float>();
  check_all<128, 128, 4, 2, TcKind::kTf32, bf16, float>();
}
// top-k tiles: 64 x 128 (2 x 4 warps) and 16 x 128 (1 x 8 warps).
TEST(TcTileEmulation, TopKWideTile) {
  check_all<64, 128, 2, 4, TcKind::kTf32x3, float, float>();
  check_all<64, 128, 2, 4, TcKind::kBf16, bf16, bf16>();
}
TEST(TcTileEmulation, TopKNarrowTile) {
  check_all<16, 128, 1, 8, TcKind::kTf32, float, float>();
  check_all<16, 128, 1, 8, TcKind::kBf16, bf16, bf16>();
  check_all<16, 128, 1, 8, TcKind::kTf32, bf16, bf16>();
}

TEST(TcTileEmulation, Tf32RoundingIsRoundToNearestTiesAway) {
  auto r = [](float x) { return tf32_value(f32_to_tf32(x)); };
  EXPECT_EQ(r(1.0f), 1.0f);
  EXPECT_EQ(r(1.0f + std::ldexp(1.0f, -11)), 1.0f + std::ldexp(1.0f, -10));  // tie: away
  EXPECT_EQ(r(-1.0f - std::ldexp(1.0f, -11)), -1.0f - std::ldexp(1.0f, -10));
  EXPECT_EQ(r(1.0f + std::ldexp(1.0f, -12)), 1.0f);
  EXPECT_TRUE(std::isinf(r(std::numeric_limits<float>::infinity())));
  EXPECT_TRUE(std::isnan(r(std::nanf(""))));
  // 3xTF32 split: big + small reproduces x to ~2^-22 relative.
  for (float x : {0.1f, -3.14159f, 1e-20f, 12345.678f}) {
    uint32_t big, small;
    split_tf32(x, big, small);
    EXPECT_NEAR(double(tf32_value(big)) + tf32_value(small), x, std::fabs(x) * 1e-6);
  }
}

}  // namespace
}  // namespace portrait::kernels::cuda_detail
