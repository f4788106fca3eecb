#!/usr/bin/env bash
# Installs everything Portrait needs on a fresh Debian 12 machine, idempotently:
#   1. Debian packages (compilers' friends, yaml-cpp, sentencepiece, HDF5, GoogleTest, ...);
#   2. a project virtual environment (.venv) with the pinned PyPI packages (torch = LibTorch).
# A second run only checks: it skips apt when every package is present and pip when the
# requirements file has not changed since the last successful install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PORTRAIT_VENV:-$ROOT/.venv}"

# Keep this list in step with scripts/gpu_fetch_debs.sh (the GPU machine has no registries),
# except the clang line: the sanitizer + fuzz job (scripts/sanitize.sh) runs on CI machines
# only. clang-14's libFuzzer and ASan/UBSan runtimes (libclang_rt.fuzzer/asan/ubsan*.a) are in
# libclang-rt-14-dev, which clang only recommends; llvm-14 has llvm-symbolizer (stack traces).
APT_PACKAGES=(
  cmake ninja-build pkg-config ccache g++
  clang-14 libclang-rt-14-dev llvm-14
  libyaml-cpp-dev libsentencepiece-dev
  libhdf5-dev hdf5-tools
  libgtest-dev libgmock-dev libgloo-dev
  nlohmann-json3-dev libssl-dev zlib1g-dev libfmt-dev
  chromium fonts-dejavu-core
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[install] apt packages missing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
else
  echo "[install] apt packages: all present"
fi

REQ="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.portrait-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "[install] venv $VENV: up to date"
else
  PY="${PYTHON:-python3}"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$REQ"
  echo "$want" > "$STAMP"
  echo "[install] venv $VENV: installed $(grep -v '^#' "$REQ" | xargs)"
fi
