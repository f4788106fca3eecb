#!/usr/bin/env bash
# Run on a Debian 12 build machine (with registries). Downloads every Debian package the build
# needs on a GPU machine that has torch/nvcc/cmake/ninja but no package registries, together
# with their library dependencies, into .debs/ (git-ignored). Base-system packages every
# Linux already has (libc, libstdc++, ...) are left out: unpacking those would shadow the GPU
# machine's own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/.debs}"
WANT=(
  libyaml-cpp-dev libsentencepiece-dev libhdf5-dev libgtest-dev libgmock-dev libgloo-dev
  nlohmann-json3-dev libfmt-dev libssl-dev zlib1g-dev pkgconf pkg-config
)
# Present on any glibc system; never shipped into the prefix.
SKIP_RE='^(libc6|libc6-dev|libc-dev-bin|libgcc-s1|libstdc\+\+6|libstdc\+\+-12-dev|gcc-12-base|libcrypt1|libcrypt-dev|linux-libc-dev|rpcsvc-proto|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|debconf|dpkg|perl-base|tar|install-info|libselinux1|libpcre2-8-0|zlib1g|libzstd1|liblzma5|libbz2-1.0|libgssapi-krb5-2|libkrb5-3|libk5crypto3|libkrb5support0|libkeyutils1|libcom-err2|libssl3|libgcc-12-dev|g\+\+-12|gcc-12|cpp-12|libisl23|libmpc3|libmpfr6|libgmp10|binutils.*|libbinutils|libctf.*|libgprofng0|libjansson4|libasan8|libatomic1|libcc1-0|libgomp1|libitm1|liblsan0|libquadmath0|libtsan2|libubsan1|libhwasan0|libsframe0|libelf1|libdebuginfod1|libc-bin|libgfortran5|gfortran-12|libgfortran-12-dev|libjpeg.*|hdf5-helpers|libhdf5-fortran-102|libhdf5-hl-fortran-100|mpi-default-dev|libopenmpi.*|openmpi.*)$'
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
         --no-replaces --no-enhances "${WANT[@]}" 2>/dev/null | grep -E '^[a-z0-9]' | sort -u |
       grep -Ev "$SKIP_RE" || true)
mkdir -p "$OUT"
cd "$OUT"
# shellcheck disable=SC2086
apt-get download $pkgs >/dev/null
echo "[gpu_fetch_debs] $(ls "$OUT"/*.deb | wc -l) packages, $(du -sh "$OUT" | cut -f1) in $OUT"
# h5py wheels (the GPU machine's python has torch but maybe not h5py; bench/train reads the
# shards with it): one per likely CPython version, ~5 MB each, into .whl/ (git-ignored).
WHL="${PORTRAIT_WHEELS:-$ROOT/.whl}"
PIP="${PORTRAIT_PIP:-$ROOT/.venv/bin/pip}"
H5PY=$(grep -E '^h5py==' "$ROOT/scripts/requirements.txt")
mkdir -p "$WHL"
for v in 3.10 3.11 3.12 3.13; do
  "$PIP" download "$H5PY" --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version "$v" \
    --no-deps -d "$WHL" -q
done
echo "[gpu_fetch_debs] $(ls "$WHL"/*.whl | wc -l) wheels, $(du -sh "$WHL" | cut -f1) in $WHL"
