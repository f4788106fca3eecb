"""Next-item peers for bench/real/compare.py. Every peer is fit on the TRAINING sequences only
(per user of the train split: train inputs + train targets >= 2, oldest first) and scores a
user from its history = the input sequence of the evaluated split (the same rule as Portrait,
which trains on the train split and embeds the evaluated split's inputs).

  popularity  item counts over the training sequences
  itemknn     cosine similarity of items over the binary user x item matrix of the training
              sequences, sim(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|), diagonal 0, optionally only
              each item's top-N neighbours; score(j) = sum over the distinct history items i of
              sim(i, j), plus 1e-6 * normalised popularity (tie-break / empty history)
  markov      first-order transitions: counts of a -> b over consecutive events of the training
              sequences; score = the row of the user's last input item, + 1e-3 * popularity /
              max popularity (< 1, so it only breaks ties and is the fallback when the row is
              empty or the history is)
  sasrec      SASRec (Kang & McAuley 2018) trained with full softmax cross-entropy over all items
              at every position ("SASRec+", Klenitskiy & Vasilev, RecSys'23), early-stopped on
              the val split's HR@10 with the shared ranking code; see SASRecPeer.

Scores are returned as [B, V] float64 / float32 torch tensors, V = vocabulary size; items 0 and
1 are masked by ranking.py.
"""
import copy
import math
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import ranking

warnings.filterwarnings("ignore", message="Sparse invariant checks")


def _pop_counts(seqs, V):
    c = np.zeros(V, dtype=np.float64)
    for s in seqs:
        np.add.at(c, s, 1.0)
    c[:ranking.FIRST_ITEM] = 0.0
    return c


class Popularity:
    name = "popularity"

    def fit(self, train_seqs, V, **_):
        self.V = V
        self.pop = torch.from_numpy(_pop_counts(train_seqs, V))
        return self

    def score(self, histories):
        return self.pop.unsqueeze(0).expand(len(histories), -1)


class ItemKNN:
    """Cosine item-kNN. neighbours=0 keeps every similarity (dense V x V, only for V <= 20000)."""
    name = "itemknn"

    def __init__(self, neighbours=0, block=1024):
        self.neighbours, self.block = neighbours, block

    def fit(self, train_seqs, V, **_):
        self.V = V
        us, its = [], []
        for u, s in enumerate(train_seqs):
            s = np.unique(s[s >= ranking.FIRST_ITEM])
            us.append(np.full(len(s), u)); its.append(s)
        us, its = np.concatenate(us), np.concatenate(its)
        n_users = len(train_seqs)
        X = torch.sparse_coo_tensor(torch.from_numpy(np.stack([us, its])), torch.ones(len(us)),
                                    (n_users, V), check_invariants=True).coalesce()
        XT = X.t().coalesce()
        deg = np.bincount(its, minlength=V).astype(np.float64)
        norm = torch.from_numpy(np.sqrt(np.maximum(deg, 1.0))).float()
        dense = self.neighbours == 0
        if dense and V > 20000:
            raise SystemExit(f"itemknn: {V} items; pass --knn-neighbours N (sparse top-N) for V > 20000")
        order = np.argsort(its, kind="stable")
        its_s, us_s = its[order], us[order]
        starts = np.searchsorted(its_s, np.arange(V + 1))
        S = torch.zeros(V, V) if dense else None
        rows, cols, vals = [], [], []
        for lo in range(0, V, self.block):
            hi = min(V, lo + self.block)
            D = torch.zeros(n_users, hi - lo)
            a, b = starts[lo], starts[hi]
            D[torch.from_numpy(us_s[a:b]), torch.from_numpy(its_s[a:b] - lo)] = 1.0
            C = torch.sparse.mm(XT, D).t()  # [hi-lo, V]: co-occurrence of items lo..hi with all
            C = C / norm[lo:hi, None] / norm[None, :]
            C[torch.arange(hi - lo), torch.arange(lo, hi)] = 0.0
            C[:, :ranking.FIRST_ITEM] = 0.0
            if dense:
                S[lo:hi] = C
            else:
                v, j = C.topk(min(self.neighbours, V), dim=1)
                keep = v > 0
                rows.append((torch.arange(lo, hi)[:, None].expand_as(j))[keep]); cols.append(j[keep]); vals.append(v[keep])
        if not dense:
            S = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals), (V, V),
                                        check_invariants=True).coalesce()
        self.S = S
        pop = _pop_counts(train_seqs, V)
        self.tie = torch.from_numpy(1e-6 * pop / max(pop.max(), 1.0))
        return self

    def score(self, histories):
        B = len(histories)
        H = torch.zeros(B, self.V)
        for b, h in enumerate(histories):
            h = np.unique(h[(h >= ranking.FIRST_ITEM) & (h < self.V)])
            H[b, torch.from_numpy(h)] = 1.0
        out = H @ self.S if isinstance(self.S, torch.Tensor) and not self.S.is_sparse else torch.sparse.mm(self.S.t(), H.t()).t()
        return out.double() + self.tie


class Markov:
    name = "markov"

    def fit(self, train_seqs, V, **_):
        self.V = V
        a = np.concatenate([s[:-1] for s in train_seqs if len(s) > 1])
        b = np.concatenate([s[1:] for s in train_seqs if len(s) > 1])
        ok = (a >= ranking.FIRST_ITEM) & (b >= ranking.FIRST_ITEM)
        key = a[ok] * V + b[ok]
        key, cnt = np.unique(key, return_counts=True)
        src, dst = key // V, key % V
        self.indptr = np.searchsorted(src, np.arange(V + 1))
        self.dst, self.cnt = dst, cnt.astype(np.float64)
        pop = _pop_counts(train_seqs, V)
        self.tie = torch.from_numpy(1e-3 * pop / max(pop.max(), 1.0))
        self.n_pairs = int(ok.sum())
        return self

    def score(self, histories):
        out = torch.zeros(len(histories), self.V, dtype=torch.float64)
        for b, h in enumerate(histories):
            if len(h) and ranking.FIRST_ITEM <= h[-1] < self.V:
                lo, hi = self.indptr[h[-1]], self.indptr[h[-1] + 1]
                out[b, torch.from_numpy(self.dst[lo:hi])] = torch.from_numpy(self.cnt[lo:hi])
        return out + self.tie


# ----------------------------------------------------------------------------- SASRec


class _Block(nn.Module):
    """SASRec block as in the paper's reference code: queries are layer-normed, keys/values are
    not; attention output + normed queries; then LN -> point-wise FFN with residual."""

    def __init__(self, d, heads, dropout):
        super().__init__()
        self.h = heads
        self.ln1 = nn.LayerNorm(d, eps=1e-8)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.attn_drop = dropout
        self.drop = nn.Dropout(dropout)
        self.ln2 = nn.LayerNorm(d, eps=1e-8)
        self.ff1, self.ff2 = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x, mask):  # x [B, L, d]; mask [B, 1, L, L] bool (True = attend)
        B, L, d = x.shape
        q_in = self.ln1(x)
        split = lambda t: t.view(B, L, self.h, d // self.h).transpose(1, 2)
        a = F.scaled_dot_product_attention(split(self.q(q_in)), split(self.k(x)), split(self.v(x)), attn_mask=mask,
                                           dropout_p=self.attn_drop if self.training else 0.0)
        x = q_in + self.drop(self.o(a.transpose(1, 2).reshape(B, L, d)))
        x = self.ln2(x)
        return x + self.drop(self.ff2(self.drop(F.relu(self.ff1(x)))))


class SASRec(nn.Module):
    def __init__(self, V, d=64, blocks=2, heads=1, dropout=0.2, max_len=200):
        super().__init__()
        self.V, self.d, self.max_len = V, d, max_len
        self.item = nn.Embedding(V, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(d, heads, dropout) for _ in range(blocks))
        self.ln = nn.LayerNorm(d, eps=1e-8)
        for n, p in self.named_parameters():  # xavier-normal init, as the reference PyTorch port
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq):  # seq [B, L] left-padded with 0 -> hidden [B, L, d]
        B, L = seq.shape
        keep = (seq != 0)
        x = self.item(seq) * math.sqrt(self.d) + self.pos.weight[self.max_len - L:].unsqueeze(0)
        x = self.drop(x) * keep.unsqueeze(-1)
        causal = torch.ones(L, L, dtype=torch.bool).tril()
        mask = (causal.unsqueeze(0) & keep.unsqueeze(1)) | torch.eye(L, dtype=torch.bool).unsqueeze(0)
        mask = mask.unsqueeze(1)
        for blk in self.blocks:
            x = blk(x, mask) * keep.unsqueeze(-1)
        return self.ln(x)

    def logits(self, h):  # h [..., d] -> [..., V], items 0 and 1 masked
        z = h @ self.item.weight.t()
        z[..., :ranking.FIRST_ITEM] = -math.inf
        return z


def _left_pad(seqs, L):
    out = np.zeros((len(seqs), L), dtype=np.int64)
    for b, s in enumerate(seqs):
        s = s[-L:]
        if len(s):
            out[b, L - len(s):] = s
    return torch.from_numpy(out)


class SASRecPeer:
    """SASRec-CE. Training: each user's training sequence s (last max_len + 1 events, or a
    random window of that length per epoch with crop="random") gives inputs s[:-1] and targets
    s[1:] at every position; loss = mean full-softmax cross-entropy over all items >= 2.
    Adam(lr, betas 0.9/0.98), batch 128. Every eval_every epochs, HR@10 on the val split (inputs
    -> val target, through ranking.py, same exclude_seen as the evaluation); the best weights
    are kept; stop after `patience` evaluations without improvement or max_epochs."""
    name = "sasrec"

    def __init__(self, seed=1, d=64, blocks=2, heads=1, dropout=0.2, max_len=200, lr=1e-3, batch=128,
                 max_epochs=200, eval_every=2, patience=8, crop="last", weight_decay=0.0, log=print):
        self.seed, self.d, self.blocks, self.heads, self.dropout = seed, d, blocks, heads, dropout
        self.max_len, self.lr, self.batch, self.max_epochs = max_len, lr, batch, max_epochs
        self.eval_every, self.patience, self.crop, self.wd, self.log = eval_every, patience, crop, weight_decay, log
        self.name = f"sasrec[seed={seed}]"

    def _val_hr10(self, val):
        inputs, targets, exclude_seen = val
        acc = ranking.evaluate(lambda idx: self.score([inputs[i] for i in idx]), targets, inputs,
                               exclude_seen=exclude_seen, ks=(10,))
        return float(acc.arrays()["hr@10"].mean())

    def fit(self, train_seqs, V, val=None, **_):
        """val = (inputs, targets, exclude_seen) of the val split users with a valid target."""
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.V = V
        self.model = SASRec(V, self.d, self.blocks, self.heads, self.dropout, self.max_len)
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr, betas=(0.9, 0.98), weight_decay=self.wd)
        seqs = [s for s in train_seqs if len(s) >= 2]
        L = self.max_len
        lengths = np.array([min(len(s), L + 1) for s in seqs], dtype=np.float64)
        best, best_state, best_epoch, bad = -1.0, None, 0, 0
        t0 = time.time()
        self.history = []
        for epoch in range(1, self.max_epochs + 1):
            self.model.train()
            # length-bucketed batches (sort by length + noise, shuffle the batches): each batch
            # is padded only to its longest sequence, which changes no result but the speed
            key = lengths + rng.uniform(0, 0.25 * L, size=len(seqs))
            order = np.argsort(key, kind="stable")
            starts = rng.permutation(np.arange(0, len(order), self.batch))
            tot, cnt = 0.0, 0
            for lo in starts:
                chunk = []
                for i in order[lo:lo + self.batch]:
                    s = seqs[i]
                    if self.crop == "random" and len(s) > L + 1:
                        end = int(rng.integers(L + 1, len(s) + 1))
                        s = s[end - L - 1:end]
                    else:
                        s = s[-(L + 1):]
                    chunk.append(s)
                Lb = max(len(s) for s in chunk) - 1
                x = _left_pad([s[:-1] for s in chunk], Lb)
                y = _left_pad([s[1:] for s in chunk], Lb)
                h = self.model(x)
                sel = y >= ranking.FIRST_ITEM
                loss = F.cross_entropy(self.model.logits(h[sel]), y[sel])
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * int(sel.sum()); cnt += int(sel.sum())
            if val is not None and (epoch % self.eval_every == 0 or epoch == self.max_epochs):
                hr = self._val_hr10(val)
                self.history.append((epoch, tot / max(cnt, 1), hr))
                self.log(f"  {self.name} epoch {epoch:3d} loss {tot / max(cnt, 1):.4f} val HR@10 {hr:.4f} "
                         f"({time.time() - t0:.0f}s)")
                if hr > best:
                    best, best_epoch, bad = hr, epoch, 0
                    best_state = copy.deepcopy(self.model.state_dict())
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        else:
            best_epoch = epoch
        self.best_epoch, self.best_val_hr10, self.epochs_run = best_epoch, best, epoch
        self.train_seconds = time.time() - t0
        self.model.eval()
        return self

    def config(self):
        return {"seed": self.seed, "d": self.d, "blocks": self.blocks, "heads": self.heads, "dropout": self.dropout,
                "max_len": self.max_len, "lr": self.lr, "batch": self.batch, "max_epochs": self.max_epochs,
                "eval_every": self.eval_every, "patience": self.patience, "crop": self.crop, "weight_decay": self.wd}

    def save(self, path):
        torch.save({"config": self.config(), "V": self.V, "state": self.model.state_dict(),
                    "best_epoch": self.best_epoch, "best_val_hr10": self.best_val_hr10,
                    "epochs_run": self.epochs_run, "train_seconds": self.train_seconds,
                    "history": self.history}, path)

    def load(self, path):
        c = torch.load(path, weights_only=False)
        if c["config"] != self.config():
            raise ValueError(f"{path}: saved with another configuration")
        self.V = c["V"]
        self.model = SASRec(self.V, self.d, self.blocks, self.heads, self.dropout, self.max_len)
        self.model.load_state_dict(c["state"])
        self.model.eval()
        for k in ("best_epoch", "best_val_hr10", "epochs_run", "train_seconds", "history"):
            setattr(self, k, c[k])
        return self

    @torch.no_grad()
    def score(self, histories):
        self.model.eval()
        hs = [np.asarray(h)[-self.max_len:] for h in histories]
        x = _left_pad(hs, max(1, max(len(h) for h in hs)))
        h = self.model(x)[:, -1]
        return self.model.logits(h)


def make(name, **kw):
    if name == "popularity":
        return Popularity()
    if name == "itemknn":
        return ItemKNN(neighbours=kw.get("knn_neighbours", 0))
    if name == "markov":
        return Markov()
    raise ValueError(f"unknown peer {name!r}")
