#!/usr/bin/env bash
# The README's test command: install, build, run every test (unit, slow; gpu tests skip
# cleanly without a device). Extra arguments go to ctest (e.g. -L unit, -R Compose).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PORTRAIT_BUILD_DIR:-$ROOT/build}"
start=$(date +%s)
bash "$ROOT/scripts/build.sh"
built=$(date +%s)
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
end=$(date +%s)
echo "[test] install+build $((built - start)) s, tests $((end - built)) s"
