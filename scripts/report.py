#!/usr/bin/env python3
"""Self-contained HTML segment report for `portrait profile`.

    report.py --profile out/profile.json --output out/report.html

Reads profile.json (written by infer/profile.cpp) and the HDF5 files it names (embeddings,
segments, scores) plus an optional training metrics.jsonl, draws the charts with matplotlib
(Agg) and embeds them as base64 PNG data URIs, so the page has no external resources.
Charts: segment sizes; 2-D PCA projection of a sample of embeddings coloured by segment
(suppressed segments grey); propensity histograms per head; training curves.
"""
import argparse
import base64
import html
import io
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import h5py  # noqa: E402


def png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chart_sizes(prof):
    segs = [s for s in prof["segments"] if not s["suppressed"]]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ids = [str(s["segment"]) for s in segs]
    sizes = [s["size"] for s in segs]
    if prof.get("suppressed_users", 0):
        ids.append("suppressed")
        sizes.append(prof["suppressed_users"])
    ax.bar(ids, sizes, color="#4c72b0")
    ax.set_xlabel("segment")
    ax.set_ylabel("users")
    ax.set_title("Segment sizes")
    return png(fig)


def chart_pca(prof, rng):
    with h5py.File(prof["embeddings"], "r") as f:
        n = f["embedding"].shape[0]
        m = min(n, int(prof.get("pca_sample", 5000)))
        idx = np.sort(rng.choice(n, size=m, replace=False))
        x = f["embedding"][idx].astype(np.float64)
    with h5py.File(prof["segments_file"], "r") as f:
        seg = f["segment"][idx]
    published = {s["segment"] for s in prof["segments"] if not s["suppressed"]}
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    y = x @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6.5, 5))
    cmap = plt.get_cmap("tab20")
    hidden = np.array([s not in published for s in seg])
    if hidden.any():
        ax.scatter(y[hidden, 0], y[hidden, 1], s=6, c="#bbbbbb", label="suppressed")
    for k in sorted(published):
        sel = seg == k
        if sel.any():
            ax.scatter(y[sel, 0], y[sel, 1], s=6, color=cmap(k % 20), label=f"segment {k}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Embeddings, 2-D PCA ({m} users)")
    ax.legend(markerscale=2, fontsize=7, loc="best")
    return png(fig)


def chart_propensity(prof):
    if not prof.get("scores_file"):
        return None
    with h5py.File(prof["scores_file"], "r") as f:
        p = f["probability"][:]
        names = [t.decode() if isinstance(t, bytes) else t for t in f["target"][:]]
    means = p.mean(axis=0)
    # Heads for the padding / out-of-vocabulary category ids carry no meaning for marketing.
    real = [c for c in np.argsort(-means) if not names[c].startswith("<")]
    order = real[:6]
    cols = 3
    rows = max(1, math.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, c in zip(axes.flat, order):
        ax.set_visible(True)
        ax.hist(p[:, c], bins=30, color="#dd8452")
        ax.set_title(f"{names[c]} (mean {means[c]:.3f})", fontsize=9)
        ax.set_xlabel("purchase probability", fontsize=8)
    fig.suptitle("Propensity per head (6 highest means)")
    fig.tight_layout()
    return png(fig)


def chart_training(prof):
    path = prof.get("metrics")
    if not path or not os.path.exists(path):
        return None
    series = {}
    with open(path) as fh:
        for i, line in enumerate(fh):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            step = rec.get("step", i)
            for k, v in rec.items():
                if k == "step" or not isinstance(v, (int, float)) or isinstance(v, bool):
                    continue
                if "loss" in k or k.startswith("eval") or k.startswith("val"):
                    series.setdefault(k, []).append((step, v))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k)
    ax.set_xlabel("step")
    ax.set_title("Training curves")
    ax.legend(fontsize=7)
    return png(fig)


def table(prof):
    heads = prof.get("heads", [])
    rows = []
    for s in prof["segments"]:
        if s["suppressed"]:
            rows.append(f"<tr class='suppressed'><td>{s['segment']}</td>"
                        f"<td colspan='10'>suppressed (fewer than {prof['min_segment_size']} users)</td></tr>")
            continue
        cats = ", ".join(f"{html.escape(c['category'])} ({c['share']:.0%})" for c in s["top_categories"])
        terms = ", ".join(html.escape(t) for t in s["top_terms"])
        best = ""
        if heads and "mean_probability" in s:
            top = sorted(s["mean_probability"].items(), key=lambda kv: -kv[1])[:3]
            best = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in top)
        reps = "<br>".join(html.escape(r[:16]) + "…" for r in s["representatives"])
        name = f"<br><b>{html.escape(s['name'])}</b>" if s.get("name") else ""
        rules = "<br>".join(f"{html.escape(r['text'])} (precision {r['precision']:.2f}, covers {r['coverage']:.0%})"
                            for r in s.get("rules", []))
        for col, shares in s.get("tag_shares", {}).items():  # the two most common values per tag
            top = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
            rules += f"<br><i>{html.escape(col)}</i>: " + ", ".join(f"{html.escape(k)} {v:.0%}" for k, v in top)
        rows.append(
            f"<tr><td>{s['segment']}{name}</td><td>{s['size']}</td><td>{s['share']:.1%}</td>"
            f"<td>{s['recency_days']['median']:.1f}</td><td>{s['frequency']['mean']:.1f}</td>"
            f"<td>{s['monetary']['mean']:.1f}</td><td>{cats}</td><td>{terms}</td><td>{best}</td>"
            f"<td>{rules}</td><td class='ids'>{reps}</td></tr>")
    head = ("<tr><th>segment</th><th>users</th><th>share</th><th>recency (days, median)</th>"
            "<th>events / user</th><th>spend / user (est.)</th><th>top categories</th>"
            "<th>review terms</th><th>highest propensity</th><th>rules and tags (portrait tags)</th>"
            "<th>representatives</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    with open(a.profile) as fh:
        prof = json.load(fh)
    rng = np.random.default_rng(a.seed)
    charts = [("Segment sizes", "chart-sizes", chart_sizes(prof)),
              ("Embedding map", "chart-pca", chart_pca(prof, rng)),
              ("Propensities", "chart-propensity", chart_propensity(prof)),
              ("Training", "chart-training", chart_training(prof))]
    figs = "\n".join(
        f"<figure id='{cid}'><img alt='{html.escape(t)}' src='{uri}'><figcaption>{html.escape(t)}</figcaption></figure>"
        for t, cid, uri in charts if uri)
    title = html.escape(prof.get("title", "Portrait segment report"))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top}} th{{background:#f0f0f0}}
tr.suppressed td{{color:#888;font-style:italic}} td.ids{{font-family:monospace;font-size:11px}}
figure{{display:inline-block;margin:8px}} img{{max-width:100%}}
</style></head><body>
<h1>{title}</h1>
<p>{prof['users']} users, {prof['k']} segments ({prof['suppressed_segments']} suppressed below
{prof['min_segment_size']} users), split <b>{html.escape(prof.get('split', ''))}</b>, model
<code>{html.escape(prof.get('checkpoint_sha256', '')[:12])}</code>, created {html.escape(prof.get('created_utc', ''))}.</p>
{table(prof)}
{figs}
</body></html>
"""
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, a.output)
    print(f"report: {a.output} ({len(page)} bytes, {sum(1 for c in charts if c[2])} charts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
