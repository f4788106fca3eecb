#!/usr/bin/env bash
# Run on the GPU machine, from the repository root, after .debs/ was filled by
# scripts/gpu_fetch_debs.sh (and carried over). Unpacks the .debs into a prefix (never into
# /), configures against the machine's preinstalled torch with CUDA on, builds, and runs the
# `gpu` test label. Extra arguments go to ctest.
#   PORTRAIT_DEB_PREFIX  where to unpack (default /tmp/portrait-deps)
#   PORTRAIT_BUILD_DIR   build directory (default build-gpu)
#   PORTRAIT_GPU_ARCH    CUDA architectures (default 90-real, i.e. H100/H200)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"
ARCH="${PORTRAIT_GPU_ARCH:-90-real}"
DEBS="${PORTRAIT_DEBS:-$ROOT/.debs}"

t0=$(date +%s)
if [ ! -f "$PREFIX/.unpacked" ]; then
  ls "$DEBS"/*.deb >/dev/null 2>&1 || { echo "no .deb files in $DEBS: run scripts/gpu_fetch_debs.sh on a build machine first" >&2; exit 1; }
  mkdir -p "$PREFIX"
  for f in "$DEBS"/*.deb; do dpkg -x "$f" "$PREFIX"; done
  # dpkg -x runs no maintainer scripts, so recreate the alternatives HDF5 registers.
  [ -e "$ML/pkgconfig/hdf5.pc" ] || ln -sf hdf5-serial.pc "$ML/pkgconfig/hdf5.pc" 2>/dev/null || true
  touch "$PREFIX/.unpacked"
fi
# Ask python before LD_LIBRARY_PATH points into the prefix (python must keep its own libs).
TORCH_CMAKE=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
NCCL_INC=$("$PY" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
echo "[gpu_build] torch $("$PY" -c 'import torch; print(torch.__version__)'), nvcc $(nvcc --version | tail -1)"
# Only this script's cmake/ninja/ctest see the prefix's libraries.
portrait_runtime_env
export PATH="$PREFIX/usr/bin:$PATH"
# .pc files say prefix=/usr: the sysroot maps their paths into the prefix.
export PKG_CONFIG_LIBDIR="$ML/pkgconfig:$PREFIX/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$PREFIX"

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPORTRAIT_PYTHON="$PY" -DPORTRAIT_CUDA=ON -DPORTRAIT_CUDA_ARCHITECTURES="$ARCH" \
  -DTORCH_CUDA_ARCH_LIST=9.0 \
  -DCMAKE_PREFIX_PATH="$PREFIX/usr;$TORCH_CMAKE" \
  -DHDF5_ROOT="$PREFIX/usr" \
  -DHDF5_C_INCLUDE_DIR="$PREFIX/usr/include/hdf5/serial" \
  -DHDF5_CXX_INCLUDE_DIR="$PREFIX/usr/include/hdf5/serial" \
  -DHDF5_hdf5_LIBRARY_RELEASE="$ML/hdf5/serial/libhdf5.so" \
  -DHDF5_hdf5_cpp_LIBRARY_RELEASE="$ML/hdf5/serial/libhdf5_cpp.so" \
  -DOPENSSL_ROOT_DIR="$PREFIX/usr" -DZLIB_ROOT="$PREFIX/usr" \
  -DPKG_CONFIG_EXECUTABLE="$PREFIX/usr/bin/pkgconf" \
  ${NCCL_INC:+-DPORTRAIT_NCCL_INCLUDE_DIR="$NCCL_INC"} ${PORTRAIT_CMAKE_ARGS:-}
t1=$(date +%s)
[ "${PORTRAIT_GPU_CONFIGURE_ONLY:-0}" = 1 ] && exit 0
cmake --build "$BUILD" -j "$(nproc)"
t2=$(date +%s)
echo "[gpu_build] configure $((t1 - t0)) s, build $((t2 - t1)) s"
[ "${PORTRAIT_GPU_NO_TEST:-0}" = 1 ] && exit 0
ctest --test-dir "$BUILD" -L gpu --output-on-failure "$@"
