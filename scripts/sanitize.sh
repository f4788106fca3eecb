#!/usr/bin/env bash
# The sanitizer job of CI (called by scripts/test.sh after the main ctest; runs alone too):
#   1. configures build-asan/ with clang, ASan + UBSan (-fno-sanitize-recover=undefined), no
#      CUDA and no LibTorch (PORTRAIT_TORCH=OFF: core, kernels' CPU paths, tokenizer, data),
#      plus the libFuzzer targets of fuzz/ (PORTRAIT_FUZZ=ON: every library also carries
#      libFuzzer's coverage instrumentation, so one build serves both);
#   2. runs the torch-free tests under the sanitizers (ctest, labels unit and slow);
#   3. runs every fuzz target for PORTRAIT_FUZZ_SECONDS (default 25) from its seed corpus in
#      tests/fuzz_corpus/<target>/ (single process; a crash, a sanitizer report or a timeout
#      fails the job and leaves the input in build-asan/fuzz-artifacts/; the two HDF5 targets
#      fail it only for a failure in Portrait's code, not inside libhdf5: fuzz/README.md).
# Measured on the 2-core build machine (busy, -j1, nice 10): cold build 10 min (8.6 min CPU,
# so about 5 min at -j2 on an idle machine), 233 tests 40-70 s, fuzz 5 x 25 s + triage.
# Environment:
#   PORTRAIT_ASAN_BUILD_DIR   build directory (default: build-asan)
#   PORTRAIT_FUZZ_SECONDS     seconds per fuzz target (default 25; 0 skips fuzzing)
#   PORTRAIT_SANITIZE_JOBS    build and ctest parallelism (default: nproc)
#   PORTRAIT_SANITIZE_NICE    nice level for the build, tests and fuzzers (default 0)
# Extra arguments go to ctest (e.g. -R Text).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PORTRAIT_ASAN_BUILD_DIR:-$ROOT/build-asan}"
SECONDS_PER_TARGET="${PORTRAIT_FUZZ_SECONDS:-25}"
JOBS="${PORTRAIT_SANITIZE_JOBS:-$(nproc)}"
NICE=(nice -n "${PORTRAIT_SANITIZE_NICE:-0}")
start=$(date +%s)

bash "$ROOT/scripts/install_deps.sh" >/dev/null
CC_BIN="$(command -v clang-14 || command -v clang)"
CXX_BIN="$(command -v clang++-14 || command -v clang++)"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# --as-needed: no library that no code uses is loaded. The HDF5 C++ library was one (CMake now
# finds the C component only): its exit-time H5close re-closed a file whose close failed (a full
# disk) and segfaulted inside libhdf5 1.10 (tests: *.AFullDisk*). The stamp reconfigures old dirs.
if [ ! -f "$BUILD/build.ninja" ] || [ ! -f "$BUILD/.portrait-as-needed" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined -Wl,--as-needed" \
    -DPORTRAIT_TORCH=OFF -DPORTRAIT_CUDA=OFF -DPORTRAIT_FUZZ=ON >/dev/null
  touch "$BUILD/.portrait-as-needed"
fi
"${NICE[@]}" cmake --build "$BUILD" -j "$JOBS"
built=$(date +%s)

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0}"
# bench_real_ranking is a Python test (no sanitized code); gpu tests need CUDA (not built).
"${NICE[@]}" ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 900 -LE gpu \
  -E '^bench_real_ranking$' "$@"
tested=$(date +%s)

fuzzed=$tested
if [ "$SECONDS_PER_TARGET" -gt 0 ]; then
  ART="$BUILD/fuzz-artifacts"
  rm -rf "$ART"
  mkdir -p "$ART"
  total_execs=0
  for t in rows override compose shard embeddings; do
    # New inputs go to a scratch corpus; the committed seeds stay as they are.
    work="$BUILD/fuzz-corpus/$t"
    mkdir -p "$work"
    args=("$work" "$ROOT/tests/fuzz_corpus/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10
          -rss_limit_mb=2048 -artifact_prefix="$ART/fuzz_$t-" -print_final_stats=1)
    [ -f "$ROOT/fuzz/$t.dict" ] && args+=(-dict="$ROOT/fuzz/$t.dict")
    case $t in
      shard|embeddings)
        # libhdf5 1.10.8 itself crashes or hangs on some corrupt files (out-of-bounds memcpy in
        # H5HG_read, endless loops in its metadata cache: fuzz/README.md). Those cannot be fixed
        # here, so these targets run in fork mode, which carries on past a crash, and every
        # saved input is replayed by fuzz/triage.sh: one that fails in Portrait's code fails
        # the job. ASan returns NULL for libhdf5's absurd allocations (it checks for NULL), and an
        # allocation over 1 GiB is saved with its stack (ours: a finding; libhdf5's: not);
        # LeakSanitizer ignores libhdf5's own leaks (fuzz/lsan.supp).
        args+=(-max_len=65536 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
               -malloc_limit_mb=1024)
        env=(ASAN_OPTIONS="$ASAN_OPTIONS:allocator_may_return_null=1") ;;
      *) args+=(-max_len=4096); env=() ;;
    esac
    echo "[sanitize] fuzz_$t for ${SECONDS_PER_TARGET} s"
    ok=1
    env "${env[@]}" "${NICE[@]}" "$BUILD/fuzz/fuzz_$t" "${args[@]}" >"$BUILD/fuzz-$t.log" 2>&1 || ok=0
    saved=("$ART"/fuzz_"$t"-*)
    if [ -e "${saved[0]}" ]; then
      if env "${env[@]}" ASAN_OPTIONS="$ASAN_OPTIONS:allocator_may_return_null=1" \
          bash "$ROOT/fuzz/triage.sh" "$BUILD/fuzz/fuzz_$t" "${saved[@]}" >"$BUILD/fuzz-$t.triage" 2>&1; then
        case $t in shard|embeddings) ok=1 ;; esac  # only libhdf5's own failures were saved
      else
        ok=0
      fi
      sed 's/^/[sanitize]   /' "$BUILD/fuzz-$t.triage"
    fi
    if [ $ok = 0 ]; then
      tail -n 60 "$BUILD/fuzz-$t.log"
      echo "[sanitize] fuzz_$t FAILED: inputs saved under $ART/ (replay: $BUILD/fuzz/fuzz_$t <file>)" >&2
      exit 1
    fi
    # Executions: stat line (plain mode) or the last "#N:" progress line (fork mode).
    n=$(awk '/^stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$BUILD/fuzz-$t.log")
    if [ "$n" = 0 ]; then n=$(grep -oE '^#[0-9]+' "$BUILD/fuzz-$t.log" | tail -1 | tr -d '#' || true); fi
    total_execs=$((total_execs + ${n:-0}))
    echo "[sanitize] fuzz_$t: ${n:-0} executions, no crash in Portrait's code"
  done
  echo "[sanitize] fuzz: $total_execs executions in all"
  fuzzed=$(date +%s)
fi
echo "[sanitize] build $((built - start)) s, tests $((tested - built)) s, fuzz $((fuzzed - tested)) s," \
     "total $((fuzzed - start)) s"
