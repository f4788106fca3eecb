// Deterministic, platform-independent random numbers (no std:: distributions, whose output
// differs between standard libraries): splitmix64 for seeding/hashing, xoshiro256** for
// streams, and hand-written uniform / exponential / normal / choice helpers. Header-only and
// torch-free, so data/, kernels/ and train/ share one generator (and one stream per seed).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace portrait {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
/// Stateless 64-bit mix (a hash of x).
inline uint64_t mix64(uint64_t x) { return splitmix64(x); }
inline uint64_t mix64(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x632be59bd9b4e019ULL)); }

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t s = seed;
    for (auto& x : s_) x = splitmix64(s);
  }
  uint64_t next() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  /// Uniform in [0, 1).
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n) (n > 0), Lemire's multiply-shift (tiny bias is irrelevant here).
  uint64_t below(uint64_t n) { return uint64_t((__uint128_t(next()) * n) >> 64); }
  bool bernoulli(double p) { return uniform() < p; }
  /// Exponential with the given rate (> 0).
  double exponential(double rate) { return -std::log1p(-uniform()) / rate; }
  /// Standard normal (Box-Muller; one value per call for simplicity).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  /// Index drawn from a cumulative weight table (last entry = total).
  size_t pick_cdf(const std::vector<double>& cdf) {
    double x = uniform() * cdf.back();
    size_t lo = 0, hi = cdf.size() - 1;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (cdf[mid] > x) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace portrait
