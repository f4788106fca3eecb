#!/usr/bin/env bash
# Every check still owed on a GPU, one phase per call so each fits the device tool's 10-minute
# command limit. Run on the GPU machine from the repository root, after carrying .debs/ and
# .whl/ (scripts/gpu_fetch_debs.sh fills both on a build machine):
#
#   scripts/gpu_checks.sh build      # unpack .debs, configure + build with CUDA (scripts/gpu_build.sh)
#   scripts/gpu_checks.sh test       # ctest -L gpu (kernels vs CPU references, CUDA training)
#   scripts/gpu_checks.sh sanitize   # compute-sanitizer memcheck / racecheck / synccheck on the kernel tests
#   scripts/gpu_checks.sh sass       # cuobjdump: tensor-core (HMMA) instructions per kernel
#   scripts/gpu_checks.sh kernels    # bench/kernels/baseline.py --ours: our kernels vs PyTorch, same run
#   scripts/gpu_checks.sh train      # bench/train/compare.py model=base bf16: tokens/s, MFU, ratio vs PyTorch
#   scripts/gpu_checks.sh embed      # portrait embed of the train phase's base model on CUDA: users/s
#   scripts/gpu_checks.sh all        # every phase above in order (longer than one 10-minute call)
#
# Not here: NCCL. At world size 1 the trainer builds no process group (distributed/context.h), and
# NCCL refuses two ranks on one GPU, so the multi-rank NCCL path needs a machine with >= 2 GPUs.
#
# Logs go to $OUT/<phase>.log when $OUT is set (the device tool fetches $OUT), else to
# gpu-results/. Environment: PORTRAIT_BUILD_DIR (default build-gpu), PORTRAIT_DEB_PREFIX
# (default /tmp/portrait-deps), PORTRAIT_GPU_PYTHON (default python3), BENCH_WORK (shards and
# runs of the train/embed phases, default /tmp/portrait_gpu_bench).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"
RES="${OUT:-$ROOT/gpu-results}"
WORK="${BENCH_WORK:-/tmp/portrait_gpu_bench}"
mkdir -p "$RES" "$WORK"

# h5py for the Python side, from the carried wheels when the machine's python lacks it.
python_env() {
  if ! "$PY" -c 'import h5py' 2>/dev/null; then
    local tgt=/tmp/portrait-pylib
    if [ ! -d "$tgt/h5py" ]; then
      "$PY" -m pip install --no-index --find-links "$ROOT/.whl" --target "$tgt" --no-deps h5py >/dev/null ||
        { echo "h5py is missing and no matching wheel is in .whl/: run scripts/gpu_fetch_debs.sh and carry .whl" >&2; exit 1; }
    fi
    export PYTHONPATH="$tgt${PYTHONPATH:+:$PYTHONPATH}"
  fi
}
tool() {  # a CUDA toolkit binary next to nvcc
  local d
  d="$(dirname "$(command -v nvcc)")"
  if [ -x "$d/$1" ]; then echo "$d/$1"; elif command -v "$1" >/dev/null; then command -v "$1"; else
    echo "no $1 next to nvcc ($d) or on PATH" >&2; return 1; fi
}

phase_build() {
  PORTRAIT_GPU_NO_TEST=1 bash "$ROOT/scripts/gpu_build.sh"
}

phase_test() {
  portrait_runtime_env
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  ctest --test-dir "$BUILD" -L gpu --output-on-failure
}

phase_sanitize() {
  portrait_runtime_env
  local cs bin
  cs="$(tool compute-sanitizer)"
  bin="$BUILD/tests/kernels/portrait_kernels_gpu_test"
  # Every gpu test under memcheck; racecheck/synccheck (much slower) on the shared-memory
  # kernels: the tensor-core tiles, k-means and top-k.
  "$cs" --tool memcheck --leak-check full --error-exitcode 9 "$bin"
  for t in racecheck synccheck; do
    "$cs" --tool "$t" --error-exitcode 9 "$bin" --gtest_filter='KMeansTc.*:TopKTc.*:KMeansCuda.AssignmentMatchesCpu:TopKCuda.MatchesCpuOnOddSizes'
  done
}

phase_sass() {
  local co lib
  co="$(tool cuobjdump)"
  lib="$BUILD/kernels/libportrait_kernels.a"
  "$co" --dump-sass "$lib" > "$RES/kernels.sass"
  echo "HMMA instructions: $(grep -c 'HMMA' "$RES/kernels.sass" || true)"
  # Per kernel function: name and HMMA count (the tensor-core kernels must have some).
  awk '/Function :/ {f=$3} /HMMA/ {n[f]++} END {for (k in n) print n[k], k}' "$RES/kernels.sass" | sort -rn | head -40
}

phase_kernels() {
  portrait_runtime_env
  "$PY" "$ROOT/bench/kernels/baseline.py" --ours "$BUILD/bench/kernels/portrait_bench_kernels"
}

phase_train() {
  portrait_runtime_env
  python_env
  nvidia-smi --query-gpu=name --format=csv,noheader
  # model=base, bf16 autocast on both sides; MFU against H100 SXM dense bf16 (989 TFLOP/s).
  "$PY" "$ROOT/bench/train/compare.py" --preset base --device cuda --batch-size "${BENCH_BATCH:-64}" \
    --steps "${BENCH_STEPS:-120}" --users "${BENCH_USERS:-6000}" --work "$WORK" \
    --portrait "$BUILD/bin/portrait" --python "$PY" --peak-tflops "${PEAK_TFLOPS:-989}"
}

phase_embed() {
  portrait_runtime_env
  local model="$WORK/train_base_cuda/model"
  [ -f "$model/model.json" ] || { echo "run the train phase first (it trains $model)" >&2; exit 1; }
  for dtype in float32 float16; do
    rm -rf "$WORK/emb_$dtype.h5" "$WORK/emb_$dtype.h5.parts"
    "$BUILD/bin/portrait" embed embed.model="$model" embed.shards="$WORK/shards" embed.split=test \
      embed.output="$WORK/emb_$dtype.h5" embed.dtype=$dtype embed.device=cuda embed.progress=false \
      hydra.run.dir="$WORK/embed_run_$dtype"
  done
}

run_phase() {
  local p=$1 t0 rc=0
  t0=$(date +%s)
  echo "== $p ($(date -u +%FT%TZ))"
  set +e
  ( set -euo pipefail; "phase_$p" ) 2>&1 | tee "$RES/$p.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "== $p: exit $rc, $(( $(date +%s) - t0 )) s" | tee -a "$RES/$p.log"
  return "$rc"
}

case "${1:-}" in
  build|test|sanitize|sass|kernels|train|embed) run_phase "$1" ;;
  all) for p in build test sanitize sass kernels train embed; do run_phase "$p" || true; done ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
