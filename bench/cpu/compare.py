#!/usr/bin/env python3
"""Portrait's CPU paths against faiss-cpu, scikit-learn, numpy and torch, in one run.

Every side reads the same float32 data (written here once), uses the same thread count and is
timed around the compute call only (no file reads, no imports). Rounds are interleaved
(Portrait, then each peer, then the next round), and the report gives medians and the
median of the per-round ratios peer_time / portrait_time (> 1: Portrait is faster).

Agreement:
  * k-means: every side starts from the same initial centroids and runs `iters` Lloyd
    updates (Portrait: segment.tol = 0); the inertia of each side's returned centroids is
    recomputed here in fp64 over all points (relative difference printed; the target is
    Portrait <= peer * (1 + 1e-4)).
  * top-k: recall@k of every side against an fp64 numpy reference on a query sample; a
    returned id counts when its fp64 score is within 1e-6 of the reference k-th score
    (ties aside), and the strict set recall is printed beside it.
  * heads: max |p - p_torch| and top-M agreement with torch's probabilities.

  .venv/bin/python bench/cpu/compare.py --bin build-notorch/bench/cpu/portrait_bench_cpu
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def log(*a):
    print(*a, flush=True)


def make_users(n, d, planted, seed):
    """Unit-length users around `planted` directions (a clustered embedding, like an export)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((planted, d)).astype(np.float32)
    x = np.empty((n, d), np.float32)
    step = 1 << 18
    for s in range(0, n, step):
        e = min(n, s + step)
        lab = rng.integers(0, planted, e - s)
        x[s:e] = centres[lab] + 0.8 * rng.standard_normal((e - s, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def fp64_inertia(x, c):
    c64 = c.astype(np.float64)
    cn = (c64 * c64).sum(1)
    tot = 0.0
    for s in range(0, len(x), 65536):
        xb = x[s:s + 65536].astype(np.float64)
        dist = (xb * xb).sum(1)[:, None] + cn[None, :] - 2.0 * xb @ c64.T
        tot += np.maximum(dist.min(1), 0.0).sum()
    return tot


class Portrait:
    def __init__(self, binary, threads):
        self.binary, self.threads = binary, threads

    def run(self, op, **kw):
        cmd = [self.binary, op, "--threads", str(self.threads), "--reps", "1"]
        for k, v in kw.items():
            cmd += ["--" + k, str(v)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])


# ---- k-means peers ---------------------------------------------------------------------------
def faiss_kmeans(x, init, iters):
    import faiss
    km = faiss.Kmeans(x.shape[1], init.shape[0], niter=iters, seed=1, verbose=False,
                      max_points_per_centroid=1 << 30, min_points_per_centroid=1)
    t0 = time.perf_counter()
    km.train(x, init_centroids=init)
    return time.perf_counter() - t0, np.array(km.centroids)


def sklearn_kmeans(x, init, iters):
    from sklearn.cluster import KMeans
    km = KMeans(n_clusters=init.shape[0], init=init, n_init=1, max_iter=iters, tol=0.0,
                algorithm="lloyd", random_state=0)
    t0 = time.perf_counter()
    km.fit(x)
    return time.perf_counter() - t0, km.cluster_centers_.astype(np.float32)


def torch_kmeans(x, init, iters):
    import torch
    xt, c = torch.from_numpy(x), torch.from_numpy(init.copy())
    k = c.shape[0]
    t0 = time.perf_counter()
    for _ in range(iters):
        a = torch.argmin((c * c).sum(1)[None, :] - 2.0 * xt @ c.T, dim=1)
        sums = torch.zeros_like(c).index_add_(0, a, xt)
        cnt = torch.bincount(a, minlength=k).to(c.dtype)
        c = torch.where(cnt[:, None] > 0, sums / cnt.clamp(min=1)[:, None], c)
    return time.perf_counter() - t0, c.numpy()


# ---- top-k peers ------------------------------------------------------------------------------
def faiss_topk(q, db, k):
    import faiss
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    _, ids = index.search(q, k)
    return time.perf_counter() - t0, ids


def numpy_topk(q, db, k, block=1024):
    t0 = time.perf_counter()
    out = np.empty((len(q), k), np.int64)
    dbt = np.ascontiguousarray(db.T)
    for s in range(0, len(q), block):
        sc = q[s:s + block] @ dbt
        part = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(sc, part, 1)
        out[s:s + block] = np.take_along_axis(part, np.argsort(-ps, axis=1, kind="stable"), 1)
    return time.perf_counter() - t0, out


def torch_topk(q, db, k, block=4096):
    import torch
    qt, dbt = torch.from_numpy(q), torch.from_numpy(db)
    t0 = time.perf_counter()
    out = [torch.topk(qt[s:s + block] @ dbt.T, k, dim=1).indices for s in range(0, len(q), block)]
    ids = torch.cat(out).numpy()
    return time.perf_counter() - t0, ids


def recall(q, db, ids, k, sample):
    sel = np.linspace(0, len(q) - 1, min(sample, len(q))).astype(np.int64)
    s64 = q[sel].astype(np.float64) @ db.astype(np.float64).T
    kth = -np.partition(-s64, k - 1, axis=1)[:, k - 1]
    ref = np.argpartition(-s64, k - 1, axis=1)[:, :k]
    got = ids[sel]
    ok = np.take_along_axis(s64, got, 1) >= (kth[:, None] - 1e-6)
    strict = np.mean([len(set(a) & set(b)) / k for a, b in zip(got, ref)])
    return float(ok.mean()), float(strict)


# ---- heads peer ------------------------------------------------------------------------------
def torch_heads(x, w1, b1, w2, b2, m, block=65536):
    import torch
    xt = torch.from_numpy(x)
    W1, B1, W2, B2 = (torch.from_numpy(a) for a in (w1, b1, w2, b2))
    t0 = time.perf_counter()
    with torch.no_grad():
        p = torch.cat([torch.sigmoid(torch.nn.functional.linear(
            torch.nn.functional.gelu(torch.nn.functional.linear(xt[s:s + block], W1, B1)), W2, B2))
            for s in range(0, len(x), block)])
    t_probs = time.perf_counter() - t0
    t0 = time.perf_counter()
    top = torch.topk(p.T, m, dim=1)
    return t_probs, time.perf_counter() - t0, p.numpy(), top.indices.numpy()


def summarise(name, rows, base="portrait"):
    """rows: list of per-round dicts side -> seconds. Medians and median paired ratios."""
    sides = list(rows[0].keys())
    log(f"\n== {name}: median seconds over {len(rows)} rounds (ratio = peer / Portrait, "
        f"median of per-round ratios; > 1 means Portrait is faster)")
    res = {}
    for s in sides:
        med = statistics.median(r[s] for r in rows)
        ratio = statistics.median(r[s] / r[base] for r in rows) if s != base else 1.0
        res[s] = (med, ratio)
        log(f"  {s:<22} {med:9.4f} s   x{ratio:6.2f}")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build-notorch/bench/cpu/portrait_bench_cpu")
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=64, help="k-means clusters")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--topk", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--top-m", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ops", default="kmeans,topk,heads")
    ap.add_argument("--peers", default="faiss,sklearn,torch,numpy")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    peers = set(a.peers.split(","))
    if "faiss" in peers:
        import faiss
        faiss.omp_set_num_threads(a.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(a.threads)

    work = a.workdir or tempfile.mkdtemp(prefix="portrait_bench_cpu_")
    os.makedirs(work, exist_ok=True)
    port = Portrait(a.bin, a.threads)
    log(f"[bench/cpu] n={a.n} d={a.d} threads={a.threads} rounds={a.rounds} work={work}")
    log(f"[bench/cpu] load average before: {os.getloadavg()}")
    x = make_users(a.n, a.d, 64, 1)
    xf = os.path.join(work, "x.f32")
    x.tofile(xf)
    ops = a.ops.split(",")
    summary = {}

    if "kmeans" in ops:
        # k-means++ seeds (sklearn, fixed random_state) on a 20k sample: with them no cluster
        # empties on this data, so every side runs the same Lloyd trajectory and the inertia
        # comparison measures arithmetic, not empty-cluster policies (faiss splits a random
        # cluster, Portrait the largest, sklearn relocates to far points, torch keeps it).
        from sklearn.cluster import kmeans_plusplus
        sub = x[np.random.default_rng(2).choice(a.n, min(a.n, 20000), replace=False)]
        init = np.ascontiguousarray(kmeans_plusplus(sub, a.k, random_state=0)[0], dtype=np.float32)
        initf = os.path.join(work, "init.f32")
        init.tofile(initf)
        rows, cents = [], {}
        for r in range(a.rounds):
            row = {}
            j = port.run("kmeans", x=xf, n=a.n, d=a.d, k=a.k, iters=a.iters, init=initf,
                         out=os.path.join(work, "cent.f32"))
            row["portrait"] = j["seconds"]
            reseeded = j["reseeded"]
            cents["portrait"] = np.fromfile(os.path.join(work, "cent.f32"), np.float32).reshape(a.k, a.d)
            for name, fn in (("faiss Kmeans", faiss_kmeans), ("sklearn KMeans", sklearn_kmeans),
                             ("torch", torch_kmeans)):
                if name.split()[0] not in peers:
                    continue
                gc.collect()
                t, c = fn(x, init, a.iters)
                row[name], cents[name] = t, c
            rows.append(row)
            log(f"  round {r}: " + ", ".join(f"{k} {v:.3f}s" for k, v in row.items()))
        res = summarise(f"k-means K={a.k}, {a.iters} iterations, N={a.n}", rows)
        log(f"  Portrait re-seeded {reseeded} empty cluster(s)")
        ine = {s: fp64_inertia(x, c) for s, c in cents.items()}
        for s, v in ine.items():
            log(f"  inertia (fp64 recomputed) {s:<16} {v:.8g}   rel. vs Portrait {(v - ine['portrait']) / ine['portrait']:+.2e}")
        summary["kmeans"] = {"times": res, "inertia": ine}

    if "topk" in ops:
        q = x[:a.queries].copy()
        db = make_users(a.items, a.d, 64, 3)
        qf, dbf = os.path.join(work, "q.f32"), os.path.join(work, "db.f32")
        q.tofile(qf)
        db.tofile(dbf)
        rows, ids = [], {}
        for r in range(a.rounds):
            row = {}
            out = os.path.join(work, "ids.i64")
            j = port.run("topk", q=qf, nq=len(q), db=dbf, n=len(db), d=a.d, k=a.topk, out=out)
            row["portrait"] = j["seconds"]
            ids["portrait"] = np.fromfile(out, np.int64).reshape(len(q), a.topk)
            for name, fn in (("faiss IndexFlatIP", faiss_topk), ("numpy blocks", numpy_topk),
                             ("torch topk", torch_topk)):
                if name.split()[0] not in peers:
                    continue
                gc.collect()
                t, i = fn(q, db, a.topk)
                row[name], ids[name] = t, i
            rows.append(row)
            log(f"  round {r}: " + ", ".join(f"{k} {v:.3f}s" for k, v in row.items()))
        res = summarise(f"top-k IP, {len(q)} queries x {len(db)} items, k={a.topk}", rows)
        rec = {s: recall(q, db, i, a.topk, 2000) for s, i in ids.items()}
        for s, (rt, rs) in rec.items():
            log(f"  recall@{a.topk} vs fp64 {s:<18} {rt:.4f} (ties aside)   strict set {rs:.4f}")
        summary["topk"] = {"times": res, "recall": rec}

    if "heads" in ops:
        rng = np.random.default_rng(4)
        h, c = a.hidden, a.heads
        w1 = (rng.standard_normal((h, a.d)) / np.sqrt(a.d)).astype(np.float32)
        b1 = (0.1 * rng.standard_normal(h)).astype(np.float32)
        w2 = (rng.standard_normal((c, h)) / np.sqrt(h)).astype(np.float32)
        b2 = (0.1 * rng.standard_normal(c)).astype(np.float32)
        files = {}
        for nm, arr in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
            files[nm] = os.path.join(work, nm + ".f32")
            arr.tofile(files[nm])
        rows, rows_m = [], []
        for r in range(a.rounds):
            out, out_ids = os.path.join(work, "probs.f32"), os.path.join(work, "topm.i64")
            j = port.run("heads", x=xf, n=a.n, d=a.d, h=h, c=c, m=a.top_m, out=out, out_ids=out_ids, **files)
            rows.append({"portrait": j["seconds"]})
            rows_m.append({"portrait": j["topm_seconds"]})
            if "torch" in peers:
                gc.collect()
                tp, tm, p_t, top_t = torch_heads(x, w1, b1, w2, b2, a.top_m)
                rows[-1]["torch"], rows_m[-1]["torch"] = tp, tp + tm
            log(f"  round {r}: probs " + ", ".join(f"{k} {v:.3f}s" for k, v in rows[-1].items()) +
                "; top-M " + ", ".join(f"{k} {v:.3f}s" for k, v in rows_m[-1].items()))
        res = summarise(f"heads probabilities, N={a.n}, d={a.d} -> {h} -> {c}", rows)
        res_m = summarise(f"heads top-M={a.top_m} per head (torch: probabilities + topk)", rows_m)
        if "torch" in peers:
            p_p = np.fromfile(out, np.float32).reshape(a.n, c)
            top_p = np.fromfile(out_ids, np.int64).reshape(c, a.top_m)
            same = np.mean([len(set(u) & set(v)) / a.top_m for u, v in zip(top_p, top_t)])
            log(f"  max |p_portrait - p_torch| = {np.abs(p_p - p_t).max():.3g}; top-M overlap {same:.4f}")
        summary["heads"] = {"probs": res, "topm": res_m}

    log(f"\n[bench/cpu] load average after: {os.getloadavg()}")
    return summary


if __name__ == "__main__":
    main()
