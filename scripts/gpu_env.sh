# Sourced (not run) by scripts/gpu_build.sh and scripts/gpu_checks.sh: where the GPU machine's
# pieces live. Override with PORTRAIT_DEB_PREFIX (unpacked .debs, default /tmp/portrait-deps),
# PORTRAIT_BUILD_DIR (default build-gpu), PORTRAIT_GPU_PYTHON (python with torch, default python3).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${PORTRAIT_DEB_PREFIX:-/tmp/portrait-deps}"
BUILD="${PORTRAIT_BUILD_DIR:-$ROOT/build-gpu}"
PY="${PORTRAIT_GPU_PYTHON:-$(command -v python3)}"
ML="$PREFIX/usr/lib/x86_64-linux-gnu"

# The unpacked Debian libraries (HDF5 and its libcurl etc., yaml-cpp, sentencepiece) for the
# tools and binaries. Ask python what you need first: it must keep its own libraries.
portrait_runtime_env() {
  export LD_LIBRARY_PATH="$ML:$ML/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
