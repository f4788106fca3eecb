#!/usr/bin/env python3
"""Next-item recommendation on Portrait's prepared shards: peers vs Portrait's exported user
embeddings, every method ranked by the same code (bench/real/ranking.py) on the same users.

  .venv/bin/python bench/real/compare.py --shards SHARDS --split test \\
      [--embeddings E.h5 ...] [--label NAME ...] [--peers popularity,itemknn,markov,sasrec] \\
      [--sasrec-seeds 1,2,3] [--exclude-seen | --no-exclude-seen] [--json out.json]

Data (see bench/real/README.md). Peers are fit on the TRAINING sequences only: per user of the
train split, its train inputs followed by its train targets (>= 2). A user's history at scoring
time is its input sequence of the evaluated split (--split), as for Portrait, which trains on
the train split and embeds the evaluated split's inputs. SASRec is early-stopped on the val
split (val inputs -> val target, HR@10); evaluating --split val is then optimistic for SASRec
(a warning is printed).

Users evaluated: every row of --split with >= 1 valid target (item >= 2), intersected with the
users of every --embeddings file (rows are matched by user id); all methods use exactly these
users, so the per-user differences are paired.

Ranking: all items >= 2, full ranking (no sampling). --exclude-seen (default): the items of the
user's input sequence of the split get -inf, a target among them included (it then counts as a
miss; the header reports how many users have a seen target). Ties: a target's rank is the mean
of its tie range. Metrics per user: HR@K, Recall@K, NDCG@K (binary relevance over the distinct
targets, as models/eval.h), MRR (full rank), K = 10, 20, 50; means over users with normal 95%
intervals (1.96 standard errors). For each embeddings file: paired difference against the best
peer on HR@10 (the peer with the highest mean HR@10; each SASRec seed counts as a peer) for
HR@10 and NDCG@10, paired-normal interval and paired bootstrap interval (2000 resamples).

Portrait scores = /embedding @ /item_embedding.T (float32); /item_embedding must have one row
per vocabulary item of the shards.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers as peers_mod  # noqa: E402
import ranking  # noqa: E402
from shards import Shards, load_embeddings  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fmt_ci(s, w=6):
    return f"{s['mean']:.4f} [{s['lo']:.4f},{s['hi']:.4f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, help="`portrait prep` output directory (shard_*.h5)")
    ap.add_argument("--split", default="test", choices=["val", "test"], help="split evaluated (default test)")
    ap.add_argument("--embeddings", nargs="*", default=[], metavar="E.h5",
                    help="`portrait embed` exports of --split (several allowed)")
    ap.add_argument("--label", nargs="*", default=[], metavar="NAME",
                    help="table names of the --embeddings files, same order (default: file name)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--exclude-seen", dest="exclude_seen", action="store_true", default=True,
                   help="mask the items of the user's input sequence (default)")
    g.add_argument("--no-exclude-seen", dest="exclude_seen", action="store_false",
                   help="rank seen items too (repeat consumption counts)")
    ap.add_argument("--peers", default="popularity,itemknn,markov,sasrec",
                    help="comma list of popularity, itemknn, markov, sasrec ('' = none)")
    ap.add_argument("--knn-neighbours", type=int, default=0,
                    help="itemknn: keep each item's top-N neighbours (0 = all; needs <= 20000 items)")
    ap.add_argument("--sasrec-seeds", default="1", help="comma list of seeds; one SASRec row per seed")
    ap.add_argument("--sasrec-dim", type=int, default=64)
    ap.add_argument("--sasrec-blocks", type=int, default=2)
    ap.add_argument("--sasrec-heads", type=int, default=1)
    ap.add_argument("--sasrec-dropout", type=float, default=0.2)
    ap.add_argument("--sasrec-max-len", type=int, default=200)
    ap.add_argument("--sasrec-lr", type=float, default=1e-3)
    ap.add_argument("--sasrec-batch", type=int, default=128)
    ap.add_argument("--sasrec-max-epochs", type=int, default=200)
    ap.add_argument("--sasrec-eval-every", type=int, default=2, help="epochs between val evaluations")
    ap.add_argument("--sasrec-patience", type=int, default=8, help="val evaluations without improvement")
    ap.add_argument("--sasrec-crop", default="last", choices=["last", "random"],
                    help="training window of sequences longer than max_len+1: the last one, or a "
                         "random one per epoch")
    ap.add_argument("--sasrec-cache", metavar="DIR",
                    help="keep trained SASRec weights here, keyed by the shards (paths, sizes, mtimes), "
                         "every SASRec option, the seed and --exclude-seen; a later run with the same key "
                         "loads them instead of training (its reported training seconds are the original's)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--batch", type=int, default=256, help="users per scoring batch")
    ap.add_argument("--json", help="write every figure (per method summaries, differences, SASRec runs) here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.label and len(a.label) != len(a.embeddings):
        ap.error("--label needs one name per --embeddings file")
    labels = a.label or [os.path.splitext(os.path.basename(e))[0] for e in a.embeddings]
    peer_names = [p for p in a.peers.split(",") if p]
    for p in peer_names:
        if p not in ("popularity", "itemknn", "markov", "sasrec"):
            ap.error(f"unknown peer {p!r}")

    t0 = time.time()
    sh = Shards(a.shards, splits=("train", "val", "test"))
    V = sh.n_items
    ev, tr, va = sh.splits[a.split], sh.splits["train"], sh.splits["val"]
    train_seqs = tr.sequences()
    has_t = [len(ranking.distinct_targets(t)) > 0 for t in ev.targets]
    rows = [i for i, ok in enumerate(has_t) if ok]
    log(f"shards {a.shards}: protocol {sh.protocol}, {V} vocabulary items, split {a.split}: {len(ev)} users, "
        f"{len(rows)} with a valid target; {len(train_seqs)} training sequences, "
        f"{sum(len(s) for s in train_seqs)} events")

    embs = []
    for path, lab in zip(a.embeddings, labels):
        ids, U, I, split = load_embeddings(path)
        if split is not None and split != a.split:
            log(f"warning: {path} is an export of split '{split}', evaluating '{a.split}'")
        if I.shape[0] != V:
            raise SystemExit(f"{path}: {I.shape[0]} item rows but the shards have {V} items; export the "
                             "model trained on these shards")
        embs.append((lab, {u: i for i, u in enumerate(ids)}, U, I))
        present = set(ids)
        before = len(rows)
        rows = [i for i in rows if ev.user_id[i] in present]
        if len(rows) < before:
            log(f"{path}: {before - len(rows)} evaluated users are missing from the export; dropped")
    if not rows:
        raise SystemExit("no user to evaluate")
    users = [ev.user_id[i] for i in rows]
    hist = [ev.inputs[i] for i in rows]
    targets = [ev.targets[i] for i in rows]

    results, sasrec_runs = {}, []

    def run(name, score_fn):
        t = time.time()
        acc = ranking.evaluate(lambda idx: score_fn([hist[i] for i in idx], idx), targets, hist, users,
                               exclude_seen=a.exclude_seen, batch=a.batch)
        results[name] = acc
        s = acc.summary()
        log(f"{name}: HR@10 {s['hr@10']['mean']:.4f} NDCG@10 {s['ndcg@10']['mean']:.4f} "
            f"MRR {s['mrr']['mean']:.4f} ({time.time() - t:.1f}s scoring)")

    peer_rows = []
    for p in peer_names:
        if p == "sasrec":
            if a.split == "val":
                log("warning: SASRec is early-stopped on the val split; its val figures are optimistic")
            vrows = [i for i, t in enumerate(va.targets) if len(ranking.distinct_targets(t))]
            val = ([va.inputs[i] for i in vrows], [va.targets[i] for i in vrows], a.exclude_seen)
            for seed in (int(x) for x in a.sasrec_seeds.split(",") if x):
                m = peers_mod.SASRecPeer(seed=seed, d=a.sasrec_dim, blocks=a.sasrec_blocks, heads=a.sasrec_heads,
                                         dropout=a.sasrec_dropout, max_len=a.sasrec_max_len, lr=a.sasrec_lr,
                                         batch=a.sasrec_batch, max_epochs=a.sasrec_max_epochs,
                                         eval_every=a.sasrec_eval_every, patience=a.sasrec_patience,
                                         crop=a.sasrec_crop, log=log)
                cache = None
                if a.sasrec_cache:
                    key = json.dumps({"shards": [(os.path.abspath(p), os.path.getsize(p), os.path.getmtime(p))
                                                 for p in sh.paths], "exclude_seen": a.exclude_seen,
                                      "config": m.config()}, sort_keys=True)
                    os.makedirs(a.sasrec_cache, exist_ok=True)
                    cache = os.path.join(a.sasrec_cache, f"sasrec_{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt")
                loaded = bool(cache and os.path.exists(cache))
                if loaded:
                    m.load(cache)
                    log(f"{m.name}: loaded {cache}")
                else:
                    m.fit(train_seqs, V, val=val)
                    if cache:
                        m.save(cache)
                sasrec_runs.append({"name": m.name, "seed": seed, "best_epoch": m.best_epoch,
                                    "epochs_run": m.epochs_run, "best_val_hr@10": m.best_val_hr10,
                                    "train_seconds": round(m.train_seconds, 1), "loaded_from_cache": loaded,
                                    "history": [{"epoch": e, "loss": l, "val_hr@10": h} for e, l, h in m.history]})
                log(f"{m.name}: best epoch {m.best_epoch} of {m.epochs_run} (val HR@10 {m.best_val_hr10:.4f}), "
                    f"{m.train_seconds:.0f}s training")
                run(m.name, lambda h, idx, m=m: m.score(h))
                peer_rows.append(m.name)
        else:
            t = time.time()
            m = peers_mod.make(p, knn_neighbours=a.knn_neighbours).fit(train_seqs, V)
            log(f"{p}: fit in {time.time() - t:.1f}s")
            run(p, lambda h, idx, m=m: m.score(h))
            peer_rows.append(p)

    for lab, row_of, U, I in embs:
        It = torch.from_numpy(I)
        Ut = torch.from_numpy(U)
        run(lab, lambda h, idx, row_of=row_of, Ut=Ut, It=It:
            Ut[torch.tensor([row_of[users[i]] for i in idx])] @ It.t())

    # ------------------------------------------------------------------ report
    summ = {k: v.summary() for k, v in results.items()}
    any_acc = next(iter(results.values()))
    n = len(users)
    seen_t = int(np.sum(any_acc.seen_target))
    header = (f"protocol {sh.protocol}, split {a.split}, {n} users, full ranking over {V - 2} items, "
              f"seen items {'excluded' if a.exclude_seen else 'kept'}; {seen_t} users have a target in their "
              f"input{' (unhittable: %d)' % int(np.sum(any_acc.unhittable)) if a.exclude_seen else ''}; "
              f"95% normal intervals over users")
    print(header)
    print(f"{'method':<22} {'HR@10':<24} {'NDCG@10':<24} {'MRR':<24} {'HR@50':<8} {'users':>6}")
    for name, s in summ.items():
        print(f"{name:<22} {fmt_ci(s['hr@10']):<24} {fmt_ci(s['ndcg@10']):<24} {fmt_ci(s['mrr']):<24} "
              f"{s['hr@50']['mean']:<8.4f} {s['users']:>6}")
    for r in sasrec_runs:
        print(f"  {r['name']}: best epoch {r['best_epoch']} (ran {r['epochs_run']}), val HR@10 "
              f"{r['best_val_hr@10']:.4f}, {r['train_seconds']:.0f}s training")
    A = {k: v.arrays() for k, v in results.items()}

    def paired(lab, ref):
        """lab - ref on the same users, HR@10 and NDCG@10, printed and returned."""
        out = {"against": ref}
        for met in ("hr@10", "ndcg@10"):
            d = out[met] = ranking.paired_diff(A[lab][met], A[ref][met])
            print(f"{lab} - {ref} {met.upper()}: {d['mean']:+.4f} paired-normal [{d['lo']:+.4f},{d['hi']:+.4f}] "
                  f"bootstrap [{d['boot_lo']:+.4f},{d['boot_hi']:+.4f}]")
        return out

    diffs = {}
    if embs and peer_rows:
        best = max(peer_rows, key=lambda p: summ[p]["hr@10"]["mean"])
        diffs = {lab: paired(lab, best) for lab, *_ in embs}
    # Several exports: each later one against the first (e.g. a changed default against the old).
    diffs_vs_first = {lab: paired(lab, embs[0][0]) for lab, *_ in embs[1:]}
    log(f"total {time.time() - t0:.0f}s")
    if a.json:
        out = {"shards": os.path.abspath(a.shards), "protocol": sh.protocol, "split": a.split,
               "exclude_seen": a.exclude_seen, "users": n, "n_items_ranked": V - 2,
               "seen_target_users": seen_t, "unhittable_users": int(np.sum(any_acc.unhittable)),
               "ties": "mean of tie range", "intervals": "normal, 1.96 * sd / sqrt(n) over users",
               "methods": summ, "differences_vs_best_peer": diffs,
               "differences_vs_first_export": diffs_vs_first, "sasrec": sasrec_runs,
               "args": vars(a)}
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
