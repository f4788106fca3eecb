"""Reading `portrait prep` shard directories (shard_*.h5) and `portrait embed` exports with h5py.

A Split holds the ragged per-user arrays of one split of every shard, concatenated in shard
name order: row i = one user of that split.
"""
import glob
import os

import h5py
import numpy as np


def _s(x):
    return x.decode() if isinstance(x, (bytes, np.bytes_)) else str(x)


class Split:
    def __init__(self, name):
        self.name = name
        self.user_id = []                       # pseudonymous ids (str), one per row
        self.inputs, self.input_ts = [], []     # per row: int64 item array, int64 ts array (oldest first)
        self.targets, self.target_ts = [], []   # per row: target items / timestamps

    def __len__(self):
        return len(self.user_id)

    def sequences(self):
        """Per row: inputs followed by the targets >= 2 (the full training sequence of a user when
        this is the train split)."""
        out = []
        for x, t in zip(self.inputs, self.targets):
            t = t[t >= 2]
            out.append(np.concatenate([x, t]) if len(t) else x)
        return out


class Shards:
    """All shards of a directory. attrs: root attributes of the first shard (protocol etc.)."""

    def __init__(self, directory, splits=("train", "val", "test")):
        self.paths = sorted(glob.glob(os.path.join(directory, "shard_*.h5")))
        if not self.paths:
            raise SystemExit(f"{directory}: no shard_*.h5 files (run `portrait prep`)")
        self.splits = {s: Split(s) for s in splits}
        self.n_items = None
        self.attrs = {}
        for p in self.paths:
            with h5py.File(p, "r") as f:
                if not self.attrs:
                    self.attrs = {k: (_s(v) if isinstance(v, (bytes, str, np.bytes_)) else
                                      (v.item() if hasattr(v, "item") else v)) for k, v in f.attrs.items()}
                if _s(f.attrs.get("format", "")) != "portrait-shard":
                    raise SystemExit(f"{p}: not a portrait shard (attribute format)")
                V = len(f["vocab/items"])
                if self.n_items is None:
                    self.n_items = V
                elif self.n_items != V:
                    raise SystemExit(f"{p}: vocabulary of {V} items, other shards have {self.n_items}")
                ids = f["users/id"][:]
                for s, sp in self.splits.items():
                    if s not in f:
                        raise SystemExit(f"{p}: no split '{s}'")
                    g = f[s]
                    io, to = g["input_offsets"][:], g["target_offsets"][:]
                    item = g["input_item"][:].astype(np.int64)
                    its = g["input_ts"][:]
                    tgt = g["target_item"][:].astype(np.int64)
                    tts = g["target_ts"][:] if "target_ts" in g else np.zeros(len(tgt), np.int64)
                    for i, u in enumerate(g["user"][:]):
                        sp.user_id.append(_s(ids[u]))
                        sp.inputs.append(item[io[i]:io[i + 1]])
                        sp.input_ts.append(its[io[i]:io[i + 1]])
                        sp.targets.append(tgt[to[i]:to[i + 1]])
                        sp.target_ts.append(tts[to[i]:to[i + 1]])

    @property
    def protocol(self):
        return self.attrs.get("protocol", "temporal")

    def item_names(self):
        with h5py.File(self.paths[0], "r") as f:
            return [_s(x) for x in f["vocab/items"][:]]


def load_embeddings(path):
    """(user_ids list[str], U [N, D] float32, I [n_items, D] float32, split attr or None)."""
    with h5py.File(path, "r") as f:
        ids = [_s(x).rstrip("\x00") for x in f["user_id"][:]]
        U = f["embedding"][:].astype(np.float32)
        I = f["item_embedding"][:].astype(np.float32)
        split = _s(f.attrs["split"]) if "split" in f.attrs else None
    if U.shape[0] != len(ids):
        raise SystemExit(f"{path}: {U.shape[0]} embedding rows but {len(ids)} user ids "
                         "(is the '.parts/' folder beside the file?)")
    return ids, U, I, split
