#!/usr/bin/env bash
# The README's test command: install, build, run every test (unit, slow; gpu tests skip
# cleanly without a device), then the sanitizer job (scripts/sanitize.sh: ASan + UBSan build
# of the torch-free libraries, their tests, a short run of every fuzz target). Extra arguments
# go to ctest (e.g. -L unit, -R Compose) and skip the sanitizer job unless PORTRAIT_SANITIZE=1;
# PORTRAIT_SANITIZE=0 skips it always.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PORTRAIT_BUILD_DIR:-$ROOT/build}"
start=$(date +%s)
bash "$ROOT/scripts/build.sh"
built=$(date +%s)
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
end=$(date +%s)
echo "[test] install+build $((built - start)) s, tests $((end - built)) s"
if [ "${PORTRAIT_SANITIZE:-$(( $# == 0 ))}" = 1 ]; then
  bash "$ROOT/scripts/sanitize.sh"
  echo "[test] sanitizer job $(( $(date +%s) - end )) s; all $(( $(date +%s) - start )) s"
fi
