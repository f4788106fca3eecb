#!/usr/bin/env python3
"""Self-test of bench/real: python bench/real/test_ranking.py (plain asserts, a few seconds)."""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
import ranking  # noqa: E402

torch.set_num_threads(2)


def close(a, b, tol=1e-9):
    assert abs(a - b) <= tol, (a, b)


def one(scores, targets, seen=None, exclude=True, ks=(1, 2, 3, 10)):
    acc = ranking.Accumulator(ks, exclude_seen=exclude)
    acc.add(torch.tensor([scores], dtype=torch.float64), [np.array(targets)], [np.array(seen or [], dtype=np.int64)])
    return {k: v[0] for k, v in acc.arrays().items()}, acc


def test_single_target():
    # items 0, 1 never ranked (their huge scores must not count); order of 2..6: 5 > 3 > 6 > 2 > 4
    s = [100.0, 100.0, 0.2, 0.9, 0.1, 1.0, 0.5]
    m, _ = one(s, [6])  # rank 3
    close(m["hr@2"], 0.0); close(m["hr@3"], 1.0)
    close(m["ndcg@3"], 1 / math.log2(4)); close(m["recall@3"], 1.0); close(m["mrr"], 1 / 3)
    m, _ = one(s, [5])
    close(m["ndcg@1"], 1.0); close(m["mrr"], 1.0)
    # targets < 2 are not targets; duplicates count once
    m, _ = one(s, [1, 6, 6])
    close(m["recall@3"], 1.0); close(m["mrr"], 1 / 3)


def test_multi_target():
    s = [0, 0, 0.2, 0.9, 0.1, 1.0, 0.5]   # ranks: 5->1, 3->2, 6->3, 2->4, 4->5
    m, _ = one(s, [3, 2])
    close(m["hr@1"], 0.0); close(m["hr@2"], 1.0)
    close(m["recall@2"], 0.5); close(m["recall@10"], 1.0)
    idcg2 = 1 + 1 / math.log2(3)
    close(m["ndcg@2"], (1 / math.log2(3)) / idcg2)
    close(m["ndcg@10"], (1 / math.log2(3) + 1 / math.log2(5)) / idcg2)
    close(m["ndcg@1"], 0.0)
    close(m["mrr"], 0.5)


def test_ties():
    # items 2..6 all tied: the target's rank is the mean of the tie range 1..5 = 3
    m, _ = one([0, 0, 1, 1, 1, 1, 1], [4])
    close(m["mrr"], 1 / 3); close(m["hr@2"], 0.0); close(m["hr@3"], 1.0)
    # 5 strictly higher, 3 tied with the target (rank 2 + 1/2 * 1 = 2.5)
    m, _ = one([0, 0, 1, 2, 2, 3, 0], [4])
    close(m["mrr"], 1 / 2.5); close(m["hr@2"], 0.0); close(m["hr@3"], 1.0)


def test_exclude_seen():
    s = [0, 0, 0.2, 0.9, 0.1, 1.0, 0.5]
    # seen 5 and 3 are masked: 6 moves from rank 3 to 1
    m, acc = one(s, [6], seen=[5, 3])
    close(m["mrr"], 1.0); close(m["hr@1"], 1.0)
    assert acc.summary()["seen_target_users"] == 0
    # without exclusion the seen items stay
    m, _ = one(s, [6], seen=[5, 3], exclude=False)
    close(m["mrr"], 1 / 3)
    # a target that was seen is masked too: a miss (rank inf), counted as seen-target + unhittable
    m, acc = one(s, [5], seen=[5])
    close(m["mrr"], 0.0); close(m["hr@10"], 0.0); close(m["ndcg@10"], 0.0)
    su = acc.summary()
    assert su["seen_target_users"] == 1 and su["unhittable_users"] == 1
    # two targets, one seen: it stays in |T|, the other can still be hit
    m, acc = one(s, [5, 6], seen=[5])
    close(m["recall@10"], 0.5); close(m["hr@1"], 0.0); close(m["mrr"], 1 / 2)  # 3 > 6 after masking 5
    assert acc.summary()["unhittable_users"] == 0
    # kept when not excluding, still reported as a seen target
    m, acc = one(s, [5], seen=[5], exclude=False)
    close(m["mrr"], 1.0)
    assert acc.summary()["seen_target_users"] == 1


def test_batched_equals_single():
    rng = np.random.default_rng(0)
    S = torch.from_numpy(rng.normal(size=(7, 40)).astype(np.float32))
    S[:, 10] = S[:, 11]  # some ties
    T = [rng.integers(0, 40, size=rng.integers(1, 4)) for _ in range(7)]
    T = [np.append(t, 5) for t in T]
    seen = [rng.integers(0, 40, size=5) for _ in range(7)]
    acc = ranking.Accumulator(exclude_seen=True)
    acc.add(S, T, seen)
    for b in range(7):
        a1 = ranking.Accumulator(exclude_seen=True)
        a1.add(S[b:b + 1], [T[b]], [seen[b]])
        for k, v in a1.arrays().items():
            close(acc.arrays()[k][b], v[0])


def test_intervals():
    x = np.array([0.0, 1.0, 1.0, 0.0])
    c = ranking.mean_ci(x)
    se = np.std(x, ddof=1) / 2
    close(c["mean"], 0.5); close(c["lo"], 0.5 - ranking.Z95 * se); close(c["hi"], 0.5 + ranking.Z95 * se)
    a = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    b = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    d = ranking.paired_diff(a, b)
    close(d["mean"], 2 / 6)
    assert d["boot_lo"] <= d["mean"] <= d["boot_hi"] and d["lo"] < d["mean"] < d["hi"]
    d0 = ranking.paired_diff(a, a)
    close(d0["mean"], 0.0); close(d0["boot_lo"], 0.0); close(d0["boot_hi"], 0.0)


def test_popularity_hand_count():
    seqs = [np.array([2, 3, 3, 5]), np.array([5, 1, 0, 4]), np.array([5])]
    p = peers.Popularity().fit(seqs, 7)
    s = p.score([np.array([2])])[0].numpy()
    assert s.tolist() == [0, 0, 1, 2, 1, 3, 0], s
    # ranking it: 5 (3) > 3 (2) > 2 = 4 (1) > 6 (0); with exclude-seen {5}: target 2 ties with 4 -> rank 2.5
    m, _ = one(s.tolist(), [2], seen=[5])
    close(m["mrr"], 1 / 2.5)


def test_markov_and_knn():
    seqs = [np.array([2, 3, 4]), np.array([2, 3]), np.array([2, 4]), np.array([6, 5])]
    mk = peers.Markov().fit(seqs, 7)
    s = mk.score([np.array([5, 2]), np.array([]), np.array([1])]).numpy()
    assert s[0, 3] > s[0, 4] > s[0, 2] and s[0, 3] >= 2 and s[0, 4] >= 1 and s[0, 4] < 2
    # empty history and OOV last item fall back to popularity (2: 3 times, the maximum)
    assert s[1].argmax() == 2 and s[2].argmax() == 2 and s[1].max() < 1
    knn = peers.ItemKNN().fit(seqs, 7)
    s = knn.score([np.array([3])]).numpy()[0]
    # item 3 co-occurs with 2 (2 users: |U2|=3, |U3|=2) and 4 (1 user, |U4|=2)
    assert abs(s[2] - 2 / math.sqrt(6)) < 1e-5 and abs(s[4] - 1 / 2) < 1e-5 and s[6] < 1e-5
    sp = peers.ItemKNN(neighbours=1).fit(seqs, 7).score([np.array([3])]).numpy()[0]
    assert abs(sp[2] - 2 / math.sqrt(6)) < 1e-5 and sp[4] < 1e-5


def test_sasrec_runs():
    # cyclic sequences over items 2..41: the next item is always last + 1
    seqs = [np.array([2 + (i + j) % 40 for j in range(12)]) for i in range(120)]
    val = ([s[:-1] for s in seqs], [s[-1:] for s in seqs], False)
    m = peers.SASRecPeer(seed=1, d=32, max_len=10, max_epochs=60, eval_every=10, patience=3, lr=5e-3,
                         dropout=0.0, log=lambda *a: None).fit(seqs, 42, val=val)
    assert m.best_val_hr10 > 0.9, m.history
    h = np.array([2 + (5 + j) % 40 for j in range(11)])  # 7 .. 17 -> 18
    s = m.score([h, np.concatenate([np.zeros(0, np.int64), h[:-1]])])
    assert s.shape == (2, 42) and s[0].argmax().item() == 18 and s[1].argmax().item() == 17, s.argmax(1)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok", name)
    print("all tests passed")
