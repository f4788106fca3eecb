"""PyTorch baselines for bench/kernels, and the one-run comparison with our kernels.

    .venv/bin/python bench/kernels/baseline.py [--reps 20] [--scale 1.0]
    .venv/bin/python bench/kernels/baseline.py --ours build/bench/kernels/portrait_bench_kernels

Times the problems portrait_bench_kernels times, with the obvious PyTorch code at the same
precision (fp32 with TF32 off, TF32 on, bf16), on the same GPU, in the same process run.
With --ours the C++ benchmark runs first (same --reps/--scale); its "RESULT key ms" lines are
joined with the baselines and printed as one table with speedups. Nothing is cached or
copied from elsewhere: every number printed is measured by this run.
"""
import argparse
import subprocess
import sys

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


class Precision:
    """fp32 (TF32 off), tf32 (TF32 matmuls) or bf16 (operands cast to bf16)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = self.name == "tf32"
        return self

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self.saved

    def cast(self, t):
        return t.bfloat16() if self.name == "bf16" else t


PRECISIONS = ("fp32", "tf32", "bf16")


def run_baselines(reps, scale):
    """Returns {key: ms}; keys mirror portrait_bench_kernels' with torch_<precision> modes."""
    out = {}
    dev = "cuda"
    d = 128

    def put(key, ms):
        out[key] = ms
        print(f"{key:<60} {ms:9.3f} ms", flush=True)

    n = int(4_000_000 * scale)
    x = torch.rand(n, d, device=dev) * 2 - 1
    put(f"l2_normalize/n={n}/d=128/torch",
        median_ms(lambda: torch.nn.functional.normalize(x, dim=1), reps))

    # top-k: chunked matmul + torch.topk, merging the running best (bounded q x chunk).
    q = 4096
    nb = int(1_000_000 * scale)
    qs = torch.rand(q, d, device=dev) * 2 - 1
    db = torch.rand(nb, d, device=dev) * 2 - 1
    for k in (10, 100, 1024):
        for prec in PRECISIONS:
            with Precision(prec) as p:
                qc, dbc = p.cast(qs), p.cast(db)

                def run():
                    best = None
                    for i, c in enumerate(dbc.split(262_144)):
                        s, idx = torch.topk((qc @ c.T).float(), min(k, c.shape[0]), dim=1)
                        idx = idx + i * 262_144
                        if best is not None:
                            s, j = torch.topk(torch.cat([best[0], s], 1), k, dim=1)
                            idx = torch.gather(torch.cat([best[1], idx], 1), 1, j)
                        best = (s, idx)
                    return best

                put(f"topk_ip/q=4096/n={nb}/d=128/k={k}/fp32/torch_{prec}",
                    median_ms(run, reps))

    # heads: Linear -> GELU -> Linear -> sigmoid.
    mlp = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.GELU(),
                              torch.nn.Linear(256, 8)).to(dev)
    with torch.no_grad(), Precision("fp32"):
        put(f"heads_probs/n={n}/d=128/h=256/C=8/torch",
            median_ms(lambda: torch.sigmoid(mlp(x)), reps))
        put(f"heads_top1000/n={n}/d=128/h=256/C=8/torch",
            median_ms(lambda: torch.topk(torch.sigmoid(mlp(x)), 1000, dim=0), reps))

    # k-means: assignment = matmul + argmin of |c|^2 - 2 x.c (chunked so the N x K block
    # stays ~4 GB); iteration = assignment + index_add_ sums + bincount counts + divide.
    k = 1024
    cen = torch.rand(k, d, device=dev) * 2 - 1
    shape = f"n={n}/d=128/K=1024"
    chunk = 1_000_000
    for prec in PRECISIONS:
        with Precision(prec) as p:
            xc, cc = p.cast(x), p.cast(cen)
            csq = (cen * cen).sum(1)

            def assign(cc=cc, xc=xc, csq=csq):
                parts = []
                for part in xc.split(chunk):
                    parts.append((csq - 2 * (part @ cc.T).float()).argmin(dim=1))
                return torch.cat(parts)

            put(f"kmeans_assign_l2/{shape}/fp32/torch_{prec}", median_ms(assign, reps))

            def iteration(assign=assign):
                a = assign()
                sums = torch.zeros(k, d, device=dev).index_add_(0, a, x)
                counts = torch.bincount(a, minlength=k).clamp_(min=1)
                return sums / counts[:, None]

            put(f"kmeans_iter_l2/{shape}/fp32/torch_{prec}", median_ms(iteration, reps))
    put(f"kmeans_assign_l2/{shape}/fp32/torch_cdist_fp32",
        median_ms(lambda: torch.cdist(x, cen).argmin(dim=1), reps))
    return out


# Our math mode (last key component) -> the PyTorch baseline at the same precision.
BASELINE_FOR = {"simt": "torch_fp32", "tf32x3": "torch_fp32", "auto": "torch_fp32",
                "tf32": "torch_tf32", "bf16": "torch_bf16"}


def run_ours(binary, reps, scale):
    proc = subprocess.run([binary, "--reps", str(reps), "--scale", str(scale)],
                          capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{binary} exited with {proc.returncode}")
    ours = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT\t"):
            _, key, ms = line.split("\t")
            ours[key] = float(ms)
    return ours


def baseline_key(key):
    """Our key -> the baseline key (bf16 input and streaming compare with the fp32-input
    baseline of the same precision, i.e. against what a user would run instead)."""
    parts = key.split("/")
    if parts[-1] not in BASELINE_FOR:  # no math mode (l2_normalize, heads)
        return key + "/torch"
    parts[0] = parts[0].replace("_streaming", "")
    if parts[-2] == "bf16in":
        parts[-2] = "fp32"
    parts[-1] = BASELINE_FOR[parts[-1]]
    return "/".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--ours", help="path of portrait_bench_kernels: run it and compare")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    ours = run_ours(args.ours, args.reps, args.scale) if args.ours else {}
    base = run_baselines(args.reps, args.scale)
    if not ours:
        return
    print()
    print(f"{'kernel (ours)':<60} {'ours ms':>9} {'torch ms':>9} {'speedup':>8}  baseline")
    for key, ms in ours.items():
        bkey = baseline_key(key)
        b = base.get(bkey)
        if b is None:
            print(f"{key:<60} {ms:9.3f} {'-':>9} {'-':>8}  (no baseline)")
        else:
            print(f"{key:<60} {ms:9.3f} {b:9.3f} {b / ms:7.2f}x  {bkey.split('/')[-1]}")


if __name__ == "__main__":
    main()
