"""PyTorch baselines for bench/kernels (draft). Times the same problems as
portrait_bench_kernels with plain torch ops so the C++ numbers can be read as ratios.

    .venv/bin/python bench/kernels/baseline.py [--reps 20] [--scale 1.0]
"""
import argparse

import torch


def median_ms(fn, reps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # the kernels are fp32 today
    dev = "cuda"
    n = int(4_000_000 * args.scale)
    x = torch.rand(n, 128, device=dev) * 2 - 1
    ms = median_ms(lambda: torch.nn.functional.normalize(x, dim=1), args.reps)
    print(f"l2_normalize n={n} d=128: {ms:.3f} ms")

    q = torch.rand(4096, 128, device=dev) * 2 - 1
    db = torch.rand(int(1_000_000 * args.scale), 128, device=dev) * 2 - 1
    for k in (10, 100, 1024):
        # Chunk the database so the q x n matrix stays bounded, as a fair unfused baseline.
        def run():
            best = None
            for c in db.split(262_144):
                s, i = torch.topk(q @ c.T, k, dim=1)
                best = (s, i) if best is None else torch.topk(torch.cat([best[0], s], 1), k, dim=1)
            return best
        print(f"topk ip q=4096 n={db.shape[0]} k={k}: {median_ms(run, args.reps):.3f} ms")

    mlp = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.GELU(),
                              torch.nn.Linear(256, 8)).to(dev)
    with torch.no_grad():
        ms = median_ms(lambda: torch.sigmoid(mlp(x)), args.reps)
        print(f"heads probs n={n} d=128 h=256 C=8: {ms:.3f} ms")
        ms = median_ms(lambda: torch.topk(torch.sigmoid(mlp(x)), 1000, dim=0), args.reps)
        print(f"heads top-1000: {ms:.3f} ms")

    cen = torch.rand(1024, 128, device=dev) * 2 - 1
    ms = median_ms(lambda: torch.cdist(x, cen).argmin(dim=1), args.reps)
    print(f"kmeans assign l2 n={n} K=1024 (cdist+argmin): {ms:.3f} ms")


if __name__ == "__main__":
    main()
