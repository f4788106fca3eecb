#!/usr/bin/env python3
"""Plain-PyTorch twin of Portrait's training step, for a tokens/s comparison with the C++
trainer (train/trainer.cpp) on the same shapes.

Same model as models/encoder.cpp: [CLS] e_1..e_L t_1..t_T with item + category + event type +
gap bucket + price bucket + position + segment embeddings; pre-LN transformer layers with
F.scaled_dot_product_attention and one boolean mask (CLS sees all, causal events, text sees
text, padded keys never attended); final LN; user_proj MLP (d -> d -> D) and tied item_proj;
L2-normalised outputs; the repeat channel (model.repeat_dim: the last R dimensions are a
learned item sketch of the user's history, prefix means for the event states). Same objectives: dense all-action + future-window sampled softmax
(in-batch + uniform negatives, logQ, owner masking), purchase BCE heads, CLIP between the
behaviour and text views, learned temperature. AdamW with the same decay groups, grad clip,
bf16 autocast on CUDA.

Sizes come from configs/model/<preset>.yaml (the same file `portrait train model=<preset>`
reads) and loss sizes default to configs/train/default.yaml. Batches are random with the shard
layout (left-aligned events); with --lengths-from SHARDS the padded widths, vocabulary sizes and
every user's event and text lengths are those of the prepared shards `portrait train` reads,
so both see the same shapes. The numbers measure compute, not data loading. Tokens/s counts
real (non-padded) tokens + CLS, as the C++ trainer's metrics.jsonl does.
bench/train/compare.py runs both on the same shards and prints the ratio.

  .venv/bin/python bench/train/torch_baseline.py --device cpu --steps 20            # model=tiny
  .venv/bin/python bench/train/torch_baseline.py --device cuda --preset base --lengths-from SHARDS
Prints one JSON line: {"tokens_per_s": ..., "users_per_s": ..., "step_ms": ..., ...}
"""
import argparse
import glob
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs")


def load_model_yaml(name):
    """configs/model/<name>.yaml: flat `key: value  # comment` lines, as the C++ side reads them."""
    out = {}
    with open(os.path.join(CONFIG_DIR, "model", name + ".yaml")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if ":" not in line:
                continue
            k, v = (x.strip() for x in line.split(":", 1))
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return dict(d_model=out["d_model"], n_layers=out["n_layers"], n_heads=out["n_heads"], d_ff=out["d_ff"],
                max_events=out["max_events"], max_text=out["max_text_tokens"], embed_dim=out["embed_dim"],
                repeat_dim=out.get("repeat_dim", 0), dropout=out.get("dropout", 0.1),
                pooling=out.get("pooling", "cls"))


def shard_shapes(shards, L, T):
    """Padded widths, vocabularies and per-user (events, text tokens) of the train split."""
    import h5py
    import numpy as np
    ev, tx = [], []
    for path in sorted(glob.glob(os.path.join(shards, "shard_*.h5"))):
        with h5py.File(path, "r") as f:
            seq_len, text_len = int(f.attrs["seq_len"]), int(f.attrs["text_len"])
            g = f["train"]
            ev.append(np.diff(g["input_offsets"][:]))
            tx.append(np.diff(g["text_offsets"][:]))
            items, cats = len(f["vocab/items"]), len(f["vocab/categories"])
            vocab = int(g["text_tokens"][:].max(initial=0)) + 1
    L, T = min(L, seq_len), min(T, text_len)
    return dict(L=L, T=T, items=items, categories=cats, text_vocab=max(vocab, 2),
                events=np.minimum(np.concatenate(ev), L), text=np.minimum(np.concatenate(tx), T))


class Layer(nn.Module):
    def __init__(self, d, h, ff, p):
        super().__init__()
        self.h, self.p = h, p
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.drop = nn.Dropout(p)

    def forward(self, x, mask):
        B, S, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, S, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        y = x + self.drop(self.out(a.transpose(1, 2).reshape(B, S, d)))
        return y + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(y))))))


class Encoder(nn.Module):
    def __init__(self, n_items, n_cats, n_text, d_model, n_layers, n_heads, d_ff, max_events, max_text,
                 embed_dim, repeat_dim=0, dropout=0.1, pooling="cls", n_types=6, n_gap=32, n_price=64):
        super().__init__()
        self.pooling = pooling
        self.pool_query = nn.Parameter(torch.randn(d_model) * 0.02)
        self.R = repeat_dim
        sem = embed_dim - repeat_dim
        emb = lambda n: nn.Embedding(n, d_model, padding_idx=0)
        self.item, self.cat, self.etype = emb(n_items), emb(n_cats), emb(n_types)
        self.gap, self.price, self.text = emb(n_gap), emb(n_price), emb(n_text)
        self.pos = nn.Embedding(1 + max_events + max_text, d_model)
        self.seg = nn.Embedding(3, d_model)
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        self.layers = nn.ModuleList(Layer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.user_proj = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, sem))
        self.item_proj = nn.Linear(d_model, sem)
        self.drop = nn.Dropout(dropout)
        if self.R:
            self.repeat = nn.Embedding(n_items, self.R, padding_idx=0)
            self.repeat_type = nn.Parameter(torch.zeros(n_types))
            self.repeat_scale = nn.Parameter(torch.zeros(1))

    def item_vectors(self, ids):
        v = F.normalize(self.item_proj(self.item(ids)), dim=-1)
        if not self.R:
            return v
        return torch.cat([v, F.normalize(self.repeat(ids).to(v.dtype), dim=-1)], -1) * (0.5 ** 0.5)

    def forward(self, item, cat, typ, gap, price, ev_mask, text, tx_mask):
        B, L = item.shape
        T = text.shape[1]
        dev = item.device
        ev = self.item(item) + self.cat(cat) + self.etype(typ) + self.gap(gap) + self.price(price) + self.seg.weight[1]
        cls = (self.cls + self.seg.weight[0]).expand(B, 1, -1)
        tx = self.text(text) + self.seg.weight[2]
        x = torch.cat([cls, ev, tx], 1)
        S = x.shape[1]
        x = self.drop(x + self.pos(torch.arange(S, device=dev)))
        key_valid = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=dev), ev_mask, tx_mask], 1)
        st = torch.zeros(S, S, dtype=torch.bool, device=dev)
        st[0] = True
        st[1:1 + L, 1:1 + L] = torch.tril(torch.ones(L, L, dtype=torch.bool, device=dev))
        st[1 + L:, 1 + L:] = True
        mask = (st[None] & key_valid[:, None]) | torch.eye(S, dtype=torch.bool, device=dev)[None]
        mask = mask[:, None]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.ln(x)
        proj = lambda h: F.normalize(self.user_proj(h), dim=-1)
        if self.pooling == "attention":
            scores = (x @ self.pool_query) / math.sqrt(x.shape[-1])
            scores = scores.masked_fill(~key_valid, float("-inf"))
            user = proj((scores.softmax(1)[..., None] * x).sum(1))
        else:
            user = proj(x[:, 0])
        states = proj(x[:, 1:1 + L])
        last = (ev_mask.sum(1) - 1).clamp_min(0)
        if self.R:
            r = F.normalize(self.repeat(item).float(), dim=-1)
            w = self.repeat_type.float().exp()[typ] * ev_mask.float()
            hist = (r * w[..., None]).cumsum(1) / w.cumsum(1).clamp_min(1e-6)[..., None]
            h_user = hist[torch.arange(B, device=dev), last] * ev_mask.any(1, keepdim=True)
            beta = self.repeat_scale.float().exp()
            join = lambda sem, h: F.normalize(torch.cat([sem.float(), beta * h], -1), dim=-1)
            user, states = join(user, h_user), join(states, hist)
        behaviour = states[torch.arange(B, device=dev), last]
        w = tx_mask.to(x.dtype)[..., None]
        text_view = proj((x[:, 1 + L:] * w).sum(1) / w.sum(1).clamp_min(1)) * tx_mask.any(1, keepdim=True)
        if self.R:
            text_view = F.pad(text_view, (0, self.R))
        return user, states, behaviour, text_view


def sampled_softmax(q, pos, pos_ids, owner, neg, neg_ids, log_q_pos, log_q_uni, inv_t):
    N = q.shape[0]
    logits = (q @ pos.T) * inv_t - log_q_pos[None]
    eye = torch.eye(N, dtype=torch.bool, device=q.device)
    same_owner = owner[:, None] == owner[None]
    logits = logits.masked_fill((same_owner | (pos_ids[:, None] == pos_ids[None])) & ~eye, float("-inf"))
    uni = (q @ neg.T) * inv_t - log_q_uni
    hit = (pos_ids[:, None] == neg_ids[None]).float()
    uni = uni.masked_fill((same_owner.float() @ hit) > 0, float("-inf"))
    return F.cross_entropy(torch.cat([logits, uni], 1).float(), torch.arange(N, device=q.device))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=("tiny", "small", "base"), help="configs/model/<preset>.yaml")
    ap.add_argument("--lengths-from", metavar="SHARDS", help="a `portrait prep` output: shapes and lengths from it")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--categories", type=int, default=22)
    ap.add_argument("--text-vocab", type=int, default=2000)
    ap.add_argument("--positions", type=int, default=8)
    ap.add_argument("--future", type=int, default=8)
    ap.add_argument("--uniform-negatives", type=int, default=512)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = load_model_yaml(a.preset)
    lengths_pool = None
    if a.lengths_from:
        sh = shard_shapes(a.lengths_from, cfg["max_events"], cfg["max_text"])
        cfg["max_events"], cfg["max_text"] = sh["L"], sh["T"]
        a.items, a.categories, a.text_vocab = sh["items"], sh["categories"], sh["text_vocab"]
        lengths_pool = (torch.as_tensor(sh["events"]), torch.as_tensor(sh["text"]))
    dev = torch.device(a.device)
    bf16 = dev.type == "cuda" and not a.fp32
    enc = Encoder(a.items, a.categories, a.text_vocab, **cfg).to(dev)
    head = nn.Sequential(nn.Linear(cfg["embed_dim"], 64), nn.ReLU(), nn.Linear(64, a.categories)).to(dev)
    log_inv_t = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=dev))
    params = list(enc.named_parameters()) + [("head." + n, p) for n, p in head.named_parameters()]
    decay = [p for n, p in params if p.dim() >= 2 and "item." not in n and not n.split(".")[0] in
             ("cat", "etype", "gap", "price", "text", "pos", "seg", "repeat")]
    ids = {id(p) for p in decay}
    no_decay = [p for _, p in params if id(p) not in ids] + [log_inv_t]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-3, fused=dev.type == "cuda")
    fwd = torch.compile(enc) if a.compile else enc
    B, L, T = a.batch_size, cfg["max_events"], cfg["max_text"]
    log_q = torch.log(torch.full((a.items,), 1.0 / a.items, device=dev))

    def batch():
        if lengths_pool is not None:
            pick = torch.randint(0, len(lengths_pool[0]), (B,))
            lengths, tl = lengths_pool[0][pick].to(dev).clamp_min(1), lengths_pool[1][pick].to(dev)
        else:
            lengths = torch.randint(1, L + 1, (B,), device=dev)
            tl = torch.randint(0, T + 1, (B,), device=dev)
        ev_mask = torch.arange(L, device=dev)[None] < lengths[:, None]
        tx_mask = torch.arange(T, device=dev)[None] < tl[:, None]
        r = lambda n, shape, m: torch.randint(1, n, shape, device=dev) * m
        return (r(a.items, (B, L), ev_mask), r(a.categories, (B, L), ev_mask), r(6, (B, L), ev_mask),
                r(32, (B, L), ev_mask), r(64, (B, L), ev_mask), ev_mask, r(a.text_vocab, (B, T), tx_mask),
                tx_mask), int(lengths.sum() + tx_mask.sum() + B)

    def step(b):
        inputs = b
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            user, states, behaviour, text_view = fwd(*inputs)
            inv_t = log_inv_t.exp().clamp(1, 100)
            D = user.shape[1]
            neg_ids = torch.randint(2, a.items, (a.uniform_negatives,), device=dev)
            neg = enc.item_vectors(neg_ids)
            P = a.positions
            owner = torch.arange(B, device=dev).repeat_interleave(P)
            posn = torch.randint(0, L - 1, (B * P,), device=dev)
            q = states.reshape(B * L, D)[owner * L + posn]
            tgt = torch.randint(2, a.items, (B * P,), device=dev)
            loss = sampled_softmax(q, enc.item_vectors(tgt), tgt, owner, neg, neg_ids, log_q[tgt],
                                   -math.log(a.items - 2), inv_t)
            fo = torch.arange(B, device=dev).repeat_interleave(a.future)
            ft = torch.randint(2, a.items, (B * a.future,), device=dev)
            loss = loss + sampled_softmax(user[fo], enc.item_vectors(ft), ft, fo, neg, neg_ids, log_q[ft],
                                          -math.log(a.items - 2), inv_t)
            labels = (torch.rand(B, a.categories, device=dev) < 0.1).float()
            loss = loss + F.binary_cross_entropy_with_logits(head(user).float(), labels)
            valid = inputs[7].any(1)
            bv, tv = behaviour[valid], text_view[valid]
            lg = (bv @ tv.T).float() * inv_t
            t = torch.arange(lg.shape[0], device=dev)
            loss = loss + 0.1 * 0.5 * (F.cross_entropy(lg, t) + F.cross_entropy(lg.T, t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()
        return loss

    batches = [batch() for _ in range(8)]
    for i in range(a.warmup):
        step(batches[i % 8][0])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    tokens = 0
    for i in range(a.steps):
        b, n = batches[i % 8]
        step(b)
        tokens += n
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(json.dumps({"preset": a.preset, "lengths_from": a.lengths_from, "items": a.items, "device": str(dev), "bf16": bf16, "batch_size": B, "L": L, "T": T,
                      "steps": a.steps, "step_ms": 1000 * dt / a.steps, "users_per_s": B * a.steps / dt,
                      "tokens_per_s": tokens / dt, "compile": a.compile, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
