"""Full-ranking next-item metrics shared by every method of bench/real (peers and Portrait).

Protocol (see README.md):
  * Every item token >= FIRST_ITEM (2) is ranked; 0 (padding) and 1 (OOV) never are, and a
    target < 2 is not a target. Users without a valid target are not evaluated.
  * exclude_seen: every item of the user's input sequence of the evaluated split gets score
    -inf, INCLUDING a target that also occurs in the input (the standard "seen items excluded"
    protocol; not unmasking the target, which would leak that it is among the seen items).
    A masked target can never be hit: it counts as a miss (rank = inf, reciprocal rank 0) and
    stays in |T|. `Accumulator` counts the users with a seen target so the table can report it.
  * Ties: the rank of a target is 1 + #(items scored strictly higher) + #(other items tied
    with it) / 2, the mean of its tie range -- neither optimistic nor pessimistic, and
    deterministic. A target is in the top-K iff that rank <= K.
  * Metrics per user, with T = the distinct valid targets and r_t their ranks:
      HR@K     = 1[min_t r_t <= K]
      Recall@K = |{t : r_t <= K}| / |T|
      NDCG@K   = sum_{t : r_t <= K} 1/log2(r_t + 1) / sum_{r=1}^{min(K,|T|)} 1/log2(r + 1)
      MRR      = 1 / min_t r_t  (full rank, not truncated; 0 when every target is masked)
    Without ties these are exactly models/eval.h's Recall@K and NDCG@K.
  * Intervals: `mean_ci` -- mean over users +- 1.96 * sample sd / sqrt(n) (normal
    approximation); `paired_diff` -- the same on per-user differences of two methods on the
    same users, plus a paired percentile bootstrap over users (2000 resamples, fixed seed).
"""
import math

import numpy as np
import torch

FIRST_ITEM = 2
KS = (10, 20, 50)
Z95 = 1.959963984540054


def metric_names(ks=KS):
    names = []
    for k in ks:
        names += [f"hr@{k}", f"recall@{k}", f"ndcg@{k}"]
    return names + ["mrr"]


def distinct_targets(targets):
    """Sorted distinct valid (>= FIRST_ITEM) target ids of one user."""
    t = np.unique(np.asarray(targets, dtype=np.int64))
    return t[t >= FIRST_ITEM]


def target_ranks(scores, targets, seen=None):
    """Ranks of each user's targets among all items >= FIRST_ITEM.

    scores  [B, V] torch tensor or numpy array (higher = better; any float dtype; NaN = -inf)
    targets list of B int arrays (the users' target items; duplicates and ids < 2 ignored)
    seen    None, or list of B int arrays: the users' input items, masked to -inf (exclude-seen)
    Returns (ranks, seen_target): ranks is a list of B float64 arrays (one rank per distinct
    valid target, inf where the target was masked), seen_target a bool array [B] (some target
    of the user is in its `seen` list).
    """
    S = torch.as_tensor(scores)
    if not torch.is_floating_point(S):
        S = S.double()
    S = S.clone()
    B, V = S.shape
    S[torch.isnan(S)] = -math.inf
    S[:, :FIRST_ITEM] = -math.inf
    seen_target = np.zeros(B, dtype=bool)
    T = [distinct_targets(t) for t in targets]
    if seen is not None:
        rows, cols = [], []
        for b, s in enumerate(seen):
            s = np.unique(np.asarray(s, dtype=np.int64))
            s = s[(s >= FIRST_ITEM) & (s < V)]
            rows.append(np.full(len(s), b))
            cols.append(s)
            seen_target[b] = bool(np.isin(T[b], s).any())
        if rows:
            r, c = np.concatenate(rows), np.concatenate(cols)
            S[torch.from_numpy(r), torch.from_numpy(c)] = -math.inf
    M = max((len(t) for t in T), default=0)
    ranks = [np.empty(len(t)) for t in T]
    if M == 0:
        return ranks, seen_target
    tgt = np.zeros((B, M), dtype=np.int64)
    valid = np.zeros((B, M), dtype=bool)
    for b, t in enumerate(T):
        if (t >= V).any():
            raise ValueError(f"target id {int(t.max())} >= number of items {V}")
        tgt[b, :len(t)] = t
        valid[b, :len(t)] = True
    st = S.gather(1, torch.from_numpy(tgt))  # [B, M]
    out = np.full((B, M), math.inf)
    for m in range(M):
        col = st[:, m:m + 1]
        greater = (S > col).sum(1).double()
        tied = (S == col).sum(1).double() - 1.0
        r = (1.0 + greater + 0.5 * tied).numpy()
        r[torch.isinf(st[:, m]).numpy() & (st[:, m] < 0).numpy()] = math.inf
        out[:, m] = r
    for b in range(B):
        ranks[b] = out[b, valid[b]]
    return ranks, seen_target


def user_metrics(ranks, ks=KS):
    """Metrics of one user from its target ranks (see module docstring). dict name -> float."""
    r = np.asarray(ranks, dtype=np.float64)
    n = len(r)
    m = {}
    best = r.min() if n else math.inf
    for k in ks:
        hit = r <= k
        idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, n) + 1))
        m[f"hr@{k}"] = float(best <= k)
        m[f"recall@{k}"] = float(hit.sum() / n) if n else 0.0
        m[f"ndcg@{k}"] = float((1.0 / np.log2(r[hit] + 1.0)).sum() / idcg) if n else 0.0
    m["mrr"] = 0.0 if math.isinf(best) else 1.0 / best
    return m


class Accumulator:
    """Collects per-user metrics over batches (users keep the order they were added in)."""

    def __init__(self, ks=KS, exclude_seen=True):
        self.ks, self.exclude_seen = tuple(ks), exclude_seen
        self.names = metric_names(self.ks)
        self.values = {k: [] for k in self.names}
        self.users = []
        self.seen_target = []    # some target is in the input (masked when exclude_seen)
        self.unhittable = []     # every target masked: the user can only score 0

    def add(self, scores, targets, seen_items, users=None):
        """scores [B, V]; targets / seen_items: lists of B int arrays; users: B ids (optional).
        seen_items is only used when exclude_seen (pass the inputs anyway: the seen-target count
        is reported in both modes)."""
        ranks, seen_t = target_ranks(scores, targets, seen_items if self.exclude_seen else None)
        if not self.exclude_seen:
            seen_t = np.array([bool(np.isin(distinct_targets(t), np.asarray(s)).any())
                               for t, s in zip(targets, seen_items)], dtype=bool)
        for b, r in enumerate(ranks):
            if len(r) == 0:
                raise ValueError("a user without a valid target was passed to Accumulator.add")
            um = user_metrics(r, self.ks)
            for k in self.names:
                self.values[k].append(um[k])
            self.unhittable.append(bool(np.isinf(r).all()))
        self.seen_target.extend(seen_t.tolist())
        self.users.extend(users if users is not None else [None] * len(ranks))

    def arrays(self):
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}

    def summary(self):
        a = self.arrays()
        out = {"users": len(self.users), "seen_target_users": int(np.sum(self.seen_target)),
               "unhittable_users": int(np.sum(self.unhittable))}
        for k, v in a.items():
            out[k] = mean_ci(v)
        return out


def mean_ci(x):
    """{"mean", "lo", "hi", "se"}: normal-approximation 95% interval of a mean over users."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    mu = float(x.mean()) if n else float("nan")
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mu, "lo": mu - Z95 * se, "hi": mu + Z95 * se, "se": se}


def paired_diff(a, b, n_boot=2000, seed=0):
    """a - b on the same users (arrays aligned by user): mean, paired-normal 95% interval
    (lo, hi) and paired percentile-bootstrap 95% interval (boot_lo, boot_hi)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired_diff needs the same users for both methods")
    d = a - b
    out = mean_ci(d)
    n = len(d)
    if n > 1 and n_boot > 0:
        rng = np.random.default_rng(seed)
        means = np.empty(n_boot)
        for i in range(0, n_boot, 200):
            idx = rng.integers(0, n, size=(min(200, n_boot - i), n))
            means[i:i + len(idx)] = d[idx].mean(1)
        out["boot_lo"], out["boot_hi"] = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    else:
        out["boot_lo"] = out["boot_hi"] = float("nan")
    return out


def evaluate(score_batch, targets, seen, users=None, exclude_seen=True, ks=KS, batch=256):
    """Evaluates one method. score_batch(idx) -> [len(idx), V] scores for the users at positions
    idx (a numpy int array) of the lists targets / seen (per-user int arrays). Returns the
    filled Accumulator."""
    acc = Accumulator(ks, exclude_seen)
    n = len(targets)
    for lo in range(0, n, batch):
        idx = np.arange(lo, min(n, lo + batch))
        acc.add(score_batch(idx), [targets[i] for i in idx], [seen[i] for i in idx],
                None if users is None else [users[i] for i in idx])
    return acc
