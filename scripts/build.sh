#!/usr/bin/env bash
# Installs dependencies (idempotent) and builds Portrait into build/ (Ninja, RelWithDebInfo).
#   PORTRAIT_BUILD_DIR   build directory (default: build)
#   PORTRAIT_CMAKE_ARGS  extra CMake arguments, e.g. "-DPORTRAIT_CUDA=OFF"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PORTRAIT_BUILD_DIR:-$ROOT/build}"
bash "$ROOT/scripts/install_deps.sh"
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${PORTRAIT_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
echo "[build] done: $BUILD/bin/portrait"
