#!/usr/bin/env python3
"""How much Recall@10 a trained model leaves on the table by under-using each user's own history.

Reads a `portrait prep` shard directory and a `portrait embed` export of the same split, ranks
every item for every user (full ranking, like models/eval.cpp: items 0 and 1 are padding/OOV and
never ranked; Recall@K = |top-K ∩ T| / |T| over the first `--max-targets` distinct targets of
the label window, averaged over users with a target) and prints, one JSON line:

  popularity        training positive counts (inputs' click/cart/purchase + train windows)
  model             user · item of the export
  model+history     model score + w * (the user's normalised history item counts), best w of
                    --weights: the gap session 3 found (0.432 -> 0.467 on the e2e data), which
                    the repeat channel (model.repeat_dim) narrowed to 0.452 -> 0.467
  catprof+history   no model: the user's smoothed category profile x within-category
                    popularity + 0.5 * history -- a simple non-learned reference

  portrait embed embed.model=RUN/model embed.shards=SHARDS embed.split=test embed.output=E.h5
  .venv/bin/python bench/train/history_gap.py --shards SHARDS --embeddings E.h5 --split test
"""
import argparse
import glob
import json
import os

import h5py
import numpy as np


def load_split(shards, split, max_targets):
    rows = []
    n_items = None
    for path in sorted(glob.glob(os.path.join(shards, "shard_*.h5"))):
        with h5py.File(path, "r") as f:
            ids = [x.decode() for x in f["users/id"][:]]
            g = f[split]
            io, to = g["input_offsets"][:], g["target_offsets"][:]
            item, event, cat = g["input_item"][:], g["input_event"][:], g["input_category"][:]
            target = g["target_item"][:]
            for i, u in enumerate(g["user"][:]):
                rows.append({"id": ids[u], "items": item[io[i]:io[i + 1]], "events": event[io[i]:io[i + 1]],
                             "cats": cat[io[i]:io[i + 1]], "targets": target[to[i]:to[i + 1]][:max_targets]})
            n_items = len(f["vocab/items"])
    return rows, n_items


def recall_at(rows, score, k):
    total, users = 0.0, 0
    for r in rows:
        t = {int(x) for x in r["targets"] if x >= 2}
        if not t:
            continue
        s = np.asarray(score(r), dtype=np.float64).copy()
        s[:2] = -np.inf
        top = np.argpartition(-s, k)[:k]
        total += len(t.intersection(top.tolist())) / len(t)
        users += 1
    return total / max(users, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, help="portrait prep output directory")
    ap.add_argument("--embeddings", required=True, help="portrait embed output (same split)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-targets", type=int, default=32, help="train.max_targets")
    ap.add_argument("--weights", default="1,2,5,10", help="history weights tried for model+history")
    a = ap.parse_args()

    rows, V = load_split(a.shards, a.split, a.max_targets)
    train, _ = load_split(a.shards, "train", a.max_targets)
    with h5py.File(a.embeddings, "r") as e:
        row_of = {u.decode(): i for i, u in enumerate(e["user_id"][:])}
        U, I = e["embedding"][:].astype(np.float32), e["item_embedding"][:].astype(np.float32)
    if I.shape[0] != V:
        raise SystemExit(f"{a.embeddings}: {I.shape[0]} item rows but the shards' vocabulary has {V}; "
                         "export the embeddings of the model trained on these shards")
    missing = [r["id"] for r in rows if r["id"] not in row_of]
    if missing:
        raise SystemExit(f"{len(missing)} users of split '{a.split}' are not in {a.embeddings}; "
                         f"run portrait embed with embed.split={a.split}")

    pop = np.zeros(V)
    item_cat = np.zeros(V, dtype=np.int64)
    for r in train + rows:
        item_cat[r["items"]] = r["cats"]
    for r in train:
        np.add.at(pop, r["items"][np.isin(r["events"], (2, 3, 4))], 1)
        np.add.at(pop, r["targets"], 1)
    C = int(item_cat.max()) + 1
    cat_total = np.bincount(item_cat, weights=pop, minlength=C)
    within = pop / np.maximum(cat_total[item_cat], 1)

    def history(r):
        h = np.bincount(r["items"], minlength=V).astype(np.float64)
        return h / max(h.sum(), 1.0)

    def model(r):
        return U[row_of[r["id"]]] @ I.T

    def catprof(r):
        p = np.bincount(r["cats"], minlength=C).astype(np.float64) + 2.0
        return (p / p.sum())[item_cat] * within + 0.5 * history(r)

    out = {"split": a.split, "users": len(rows), "items": V, "k": a.k,
           "popularity": recall_at(rows, lambda r: pop, a.k),
           "model": recall_at(rows, model, a.k),
           "catprof+history": recall_at(rows, catprof, a.k)}
    best = max(((recall_at(rows, lambda r, w=w: model(r) + w * history(r), a.k), w)
                for w in (float(x) for x in a.weights.split(","))))
    out["model+history"], out["history_weight"] = best
    print(json.dumps(out))


if __name__ == "__main__":
    main()
