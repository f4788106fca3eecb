#!/usr/bin/env bash
# The README's first command: install, build, then run the demo pipeline on CPU.
# Arguments are config overrides for `portrait demo` (e.g. synth.users=5000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PORTRAIT_BUILD_DIR:-$ROOT/build}"
bash "$ROOT/scripts/build.sh"
exec "$BUILD/bin/portrait" demo "$@"
