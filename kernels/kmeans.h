// k-means (Lloyd) over [n, d] row-major fp32 or bf16 points, squared-L2 or cosine (spherical).
//
// Determinism: the same input, parameters and seed give bit-identical results for any
// thread count, on every platform. Per-cluster sums are accumulated exactly in 64-bit fixed
// point (scale 2^e chosen from max|x| and n so nothing can overflow; resolution about
// n*max|x|*2^-62), so summation order does not matter; inertia is summed in double over
// fixed 4096-point blocks. The CUDA backends use the same fixed-point sums, so for kL2 the
// CPU and GPU centroids are bit-identical whenever the assignments are (for kCosine the GPU
// computes 1/|x| in float, so they agree only to rounding). Only an allreduce hook that sums
// doubles in a varying order (e.g. NCCL) can break bit-reproducibility across ranks.
//
// Loop: c = init; repeat { assign all points to c (+ accumulate sums/counts/inertia);
// allreduce hook; stop if relative inertia decrease <= tol or max_iter updates were done;
// c = sums / counts; re-seed empty clusters }. The returned assignments and inertia
// therefore always belong to the returned centroids.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/common.h"

namespace portrait::kernels {

/// Called once per pass (every iteration, including the initial assignment) with this
/// rank's per-cluster coordinate sums [k, d] (double), counts [k] and inertia [1]; it must
/// replace them in place by their sums over all ranks (e.g. NCCL/MPI allreduce).
using KMeansAllReduce =
    std::function<void(double* sums, int64_t* counts, double* inertia, int k, int d)>;

/// Options for k-means.
struct KMeansParams {
  /// Number of clusters, 1 <= k <= n.
  int k = 8;
  /// Maximum number of centroid updates (0 = just assign to the initial centroids).
  int max_iter = 25;
  /// Stop when (previous - current) inertia <= tol * previous inertia. tol = 0 disables the
  /// test: exactly max_iter updates are done (as faiss's niter), whatever the inertia does.
  double tol = 1e-4;
  /// kL2 (squared Euclidean) or kCosine (spherical k-means: unit-norm centroids,
  /// distance 1 - cos). kInnerProduct is rejected.
  Metric metric = Metric::kL2;
  /// Seed for k-means++ and for perturbing re-seeded empty clusters.
  uint64_t seed = 1234;
  /// Points sampled (without replacement) for k-means++; 0 = min(n, 64 * k).
  int64_t init_sample = 0;
  /// Optional host [k, d] initial centroids (skips k-means++). With several ranks, pass
  /// rank 0's centroids to every rank: k-means++ only sees local data.
  const float* initial_centroids = nullptr;
  /// Optional cross-rank allreduce of sums / counts / inertia (see KMeansAllReduce).
  KMeansAllReduce allreduce = nullptr;
  /// CPU threads (0 = all cores); the CUDA backends use them only for host-side steps.
  int num_threads = 0;
  /// CUDA host-streaming path only: points copied to the GPU per chunk (0 = 1<<18 rows),
  /// rounded up to a multiple of 4096 (the inertia block), so 4096 is the smallest chunk.
  /// Two chunks live on the device and two in pinned host staging buffers (double
  /// buffering): 4 x 128 MiB at the default for d = 128 fp32.
  int64_t chunk_rows = 0;
  /// CUDA backends only: arithmetic of the assignment GEMM (see MathMode in common.h).
  /// kAuto = kTf32 for fp32 input and kBf16 for bf16 input (kSimt on GPUs below sm_80).
  /// Why: k-means is an approximate optimiser and the tensor-core paths are 4-12x faster
  /// than fp32 SIMT at d = 128 (performance.md §3.1). What changes: only which centroid wins
  /// among near-equidistant ones (|d1 - d2| within ~2u * sum_j |x_j c_j|, u = 2^-11 for TF32,
  /// 2^-9 for bf16); `dist`, inertia, sums and counts are always computed in fp32 for the
  /// chosen centroid, so inertia and the stopping rule keep fp32 accuracy, and results stay
  /// bit-reproducible run to run on the same GPU model. A near-tie flip can make inertia
  /// rise by at most that bound per flipped point (Lloyd's monotonicity holds only up to
  /// it); the stopping rule treats a rise like convergence. Use kSimt (or kTf32x3) to match
  /// the CPU twin's assignments on data with near-ties.
  MathMode math = MathMode::kAuto;
};

/// k-means output.
struct KMeansResult {
  /// [n] cluster of each point, in [0, k).
  std::vector<int32_t> assignments;
  /// [k, d] row-major centroids (unit norm for cosine).
  std::vector<float> centroids;
  /// Sum over points of the distance to their centroid (squared L2 or 1 - cos).
  double inertia = 0.0;
  /// Number of centroid updates performed.
  int iterations = 0;
  /// [n] distance of each point to its returned centroid, from the last assignment pass
  /// (CPU backend; empty for backends that do not keep it).
  std::vector<float> distances;
  /// Inertia after each assignment pass (iterations + 1 entries).
  std::vector<double> inertia_history;
  /// Total number of empty clusters re-seeded over all iterations.
  int reseeded = 0;
};

/// CPU fallback: blocks of 256 points against the packed centroids (kernels/cpu_gemm.h
/// micro-kernel fused with the argmin; arithmetic in kernels/kmeans_assign.h), parallel over
/// 4096-point blocks with kernels/parallel.h threads; |x|^2 (or 1/|x|) computed once per run.
/// x: host [n, d]. Throws std::invalid_argument for bad sizes / metric or when x contains
/// NaN or inf.
KMeansResult kmeans_cpu(const float* x, int64_t n, int d, const KMeansParams& params);

/// Same with bf16 input (raw bits, see common.h): every value is widened to fp32 exactly and
/// the fp32 algorithm runs on it, so results equal kmeans_cpu on the widened copy. This is
/// the reference for the CUDA bf16 paths.
KMeansResult kmeans_cpu(const bf16_bits* x, int64_t n, int d, const KMeansParams& params);

/// Assignment step alone (CPU): for every point, the nearest centroid (lowest index on
/// ties) and its distance, by the arithmetic of kernels/kmeans_assign.h (L2 through
/// |c|^2 - 2 x.c, so distances carry an absolute error ~ 2^-24 (|x|^2 + |c|^2)).
/// centroids [k, d] must already be unit-norm for kCosine.
void kmeans_assign_cpu(const float* x, int64_t n, int d, const float* centroids, int k,
                       Metric metric, int num_threads, int32_t* assign, float* dist);
/// Same with bf16 points (widened to fp32).
void kmeans_assign_cpu(const bf16_bits* x, int64_t n, int d, const float* centroids, int k,
                       Metric metric, int num_threads, int32_t* assign, float* dist);

namespace detail {

/// Data-side operations of one k-means run; the host loop (kmeans_drive) is shared by the
/// CPU backend and the CUDA backends (device-resident and host-streaming).
class KMeansBackend {
 public:
  virtual ~KMeansBackend() = default;
  /// max |x| over all points, or NaN/inf if any coordinate is not finite.
  virtual double max_abs() = 0;
  /// Copies points idx[0..m) (ascending) into out [m, d] (host).
  virtual void gather(const int64_t* idx, int64_t m, float* out) = 0;
  /// Assigns every point to the nearest of centroids (host [k, d], unit-norm for cosine),
  /// keeps the assignments, and returns fixed-point sums (x * scale rounded to int64; for
  /// cosine the unit-normalised x), counts and the inertia of this pass.
  virtual double assign_accumulate(const float* centroids, double scale, int64_t* sums_fx,
                                   int64_t* counts) = 0;
  /// Copies the assignments of the last pass into out [n].
  virtual void fetch_assignments(int32_t* out) = 0;
  /// Copies each point's distance to its centroid in the last pass into out [n]; false when
  /// the backend does not keep them (KMeansResult::distances is then empty).
  virtual bool fetch_distances(float* /*out*/) { return false; }
};

/// The Lloyd loop, init and empty-cluster handling, independent of where the data lives.
KMeansResult kmeans_drive(KMeansBackend& backend, int64_t n, int d, const KMeansParams& p);

/// Fixed-point scale 2^e for sums of n values bounded by max_abs (see file comment).
double kmeans_fixed_point_scale(int64_t n, double max_abs);

}  // namespace detail
}  // namespace portrait::kernels
