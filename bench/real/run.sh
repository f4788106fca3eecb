#!/usr/bin/env bash
# A public real data set through the public CLI, then Portrait next to its peers, ranked by one
# code:
#   fetch (scripts/fetch_data.sh) -> portrait prep (data=<name>, column mapping only) ->
#   portrait train (shipped defaults) -> portrait embed (the evaluated split) ->
#   bench/real/compare.py (popularity, item-kNN, Markov, SASRec-CE; same users, same ranking).
#
#   bench/real/run.sh [--data ml100k|ciao] [--protocol leave_last_out|temporal] [--out DIR]
#                     [--seeds 1,2,3] [--peers LIST] [-- extra `portrait train` overrides]
# Data sets: ml100k (MovieLens-100K ratings + film catalogue), ciao (Ciao product ratings, no
# catalogue). Both use the same shipped model and training defaults.
# Defaults: ml100k, leave_last_out, seen items excluded (the SASRec protocol),
# out = outputs/<data>-<protocol>.
# Under temporal the evaluated split is test (label window after the global cut-off) and seen
# items are ranked too (repeats are real there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dataset=ml100k
protocol=leave_last_out
out=""
seeds="1"
peers="popularity,itemknn,markov,sasrec"
train_extra=()
while (($#)); do
  case "$1" in
    --data) dataset="$2"; shift 2 ;;
    --protocol) protocol="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --) shift; train_extra=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$dataset" in
  ml100k) data_dir="$ROOT/.cache/datasets/ml-100k"
          prep_data=("prep.input=[$data_dir/ml-100k.inter]" "prep.catalogue=$data_dir/ml-100k.item") ;;
  ciao)   data_dir="$ROOT/.cache/datasets/ciao"
          prep_data=("prep.input=[$data_dir/ciao.csv]") ;;
  *) echo "unknown --data '$dataset' (ml100k | ciao)" >&2; exit 2 ;;
esac
out="${out:-$ROOT/outputs/$dataset-$protocol}"
P="$ROOT/build/bin/portrait"
PY="$ROOT/.venv/bin/python"
[ -x "$P" ] || { echo "build Portrait first: bash scripts/build.sh" >&2; exit 2; }
bash "$ROOT/scripts/fetch_data.sh" "$dataset"
export PORTRAIT_HASH_KEY="${PORTRAIT_HASH_KEY:-real-benchmark-key}"
seen_flag=--exclude-seen
seen_cfg=true
if [ "$protocol" = temporal ]; then seen_flag=--no-exclude-seen; seen_cfg=false; fi
# Only a directory this script made (marker file) is replaced; anything else is left alone.
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ] && [ ! -f "$out/.real-run" ]; then
  echo "$out exists and was not made by this script; choose another --out" >&2
  exit 2
fi
rm -rf "$out"
mkdir -p "$out"
touch "$out/.real-run"
t0=$(date +%s)
"$P" prep "data=$dataset" "${prep_data[@]}" "prep.protocol=$protocol" prep.progress=false "hydra.run.dir=$out/prep"
t1=$(date +%s)
"$P" train "shards=$out/prep" "train.eval_exclude_seen=$seen_cfg" train.final_eval_splits=[test] \
  train.progress=false "hydra.run.dir=$out/train" "${train_extra[@]}"
t2=$(date +%s)
"$P" embed "embed.model=$out/train/model" "embed.shards=$out/prep" embed.split=test \
  "embed.output=$out/embed/test.h5" embed.progress=false "hydra.run.dir=$out/embed"
t3=$(date +%s)
echo "[$dataset] prep $((t1 - t0)) s, train $((t2 - t1)) s, embed $((t3 - t2)) s"
"$PY" "$ROOT/bench/real/compare.py" --shards "$out/prep" --split test "$seen_flag" \
  --embeddings "$out/embed/test.h5" --label portrait --peers "$peers" --sasrec-seeds "$seeds" \
  --json "$out/compare.json"
