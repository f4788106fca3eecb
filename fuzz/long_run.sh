#!/usr/bin/env bash
# The long fuzz run (the CI job runs each target for 25 s only): builds the fuzz targets
# without AddressSanitizer, for throughput (UBSan stays on, -fno-sanitize-recover, so undefined
# behaviour is still a crash), then runs every target for SECONDS from its seed corpus plus a
# scratch corpus that persists between runs, and prints the executions per target and in all.
#
#   fuzz/long_run.sh [SECONDS_PER_TARGET] [TARGET ...]        (default 600 s, every target)
#
# Environment:
#   PORTRAIT_FUZZ_BUILD_DIR   build directory (default: build-fuzz)
#   PORTRAIT_FUZZ_SAN         sanitizers (default: undefined; e.g. address,undefined)
#   PORTRAIT_FUZZ_JOBS        build parallelism (default 1)
# A crash, a timeout or a violated property in Portrait's code fails the run and leaves the
# input in <build>/fuzz-artifacts/; the HDF5 targets run in fork mode and only a failure whose
# first frame is Portrait's code counts (fuzz/triage.sh; libhdf5's own bugs: fuzz/README.md).
# Logs: <build>/fuzz-long-<target>.log; totals: <build>/fuzz-long-summary.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PORTRAIT_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECS="${1:-600}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(rows override compose shard embeddings)
SAN="-fsanitize=${PORTRAIT_FUZZ_SAN:-undefined} -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

CC_BIN="$(command -v clang-14 || command -v clang)"
CXX_BIN="$(command -v clang++-14 || command -v clang++)"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
    -DCMAKE_EXE_LINKER_FLAGS="$SAN -Wl,--as-needed" \
    -DPORTRAIT_TORCH=OFF -DPORTRAIT_CUDA=OFF -DPORTRAIT_FUZZ=ON >/dev/null
fi
cmake --build "$BUILD" -j "${PORTRAIT_FUZZ_JOBS:-1}" --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=0}"
ART="$BUILD/fuzz-artifacts"
mkdir -p "$ART"
SUMMARY="$BUILD/fuzz-long-summary.txt"
: >"$SUMMARY"
total=0
for t in "${TARGETS[@]}"; do
  work="$BUILD/fuzz-corpus/$t"
  mkdir -p "$work"
  log="$BUILD/fuzz-long-$t.log"
  args=("$work" "$ROOT/tests/fuzz_corpus/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$ART/fuzz_$t-" -print_final_stats=1)
  [ -f "$ROOT/fuzz/$t.dict" ] && args+=(-dict="$ROOT/fuzz/$t.dict")
  case $t in
    shard|embeddings) args+=(-max_len=65536 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
                             -malloc_limit_mb=1024) ;;
    *) args+=(-max_len=4096) ;;
  esac
  echo "[fuzz] fuzz_$t for $SECS s"
  ok=1
  "$BUILD/fuzz/fuzz_$t" "${args[@]}" >"$log" 2>&1 || ok=0
  saved=("$ART"/fuzz_"$t"-*)
  if [ -e "${saved[0]}" ]; then
    if bash "$ROOT/fuzz/triage.sh" "$BUILD/fuzz/fuzz_$t" "${saved[@]}" >"$BUILD/fuzz-long-$t.triage" 2>&1; then
      case $t in shard|embeddings) ok=1 ;; esac
    else
      ok=0
    fi
  fi
  n=$(awk '/^stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$log")
  if [ "$n" = 0 ]; then n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true); fi
  n=${n:-0}
  total=$((total + n))
  status=$([ $ok = 1 ] && echo "no crash in Portrait's code" || echo "FAILED (inputs in $ART)")
  echo "fuzz_$t: $n executions in $SECS s, $status" | tee -a "$SUMMARY"
  [ $ok = 1 ] || { tail -n 40 "$log"; exit 1; }
done
echo "all: $total executions" | tee -a "$SUMMARY"
