#!/usr/bin/env bash
# Replays fuzz artefacts and says where each one fails:
#   fuzz/triage.sh <fuzz binary> <artefact>...
# prints "<where> <artefact>: <first frame>", where = ours (a frame with a source line of this
# repository, or any other library), hdf5 (the first frame that is not the sanitizer, libFuzzer
# or libc is inside libhdf5: a bug of libhdf5 on a corrupt file, not ours) or clean (no
# longer fails). Exit status 1 when any artefact is `ours`.
set -uo pipefail
bin="$1"; shift
rc=0
for f in "$@"; do
  # A malloc limit below the RSS limit: libFuzzer then prints the stack of the one allocation
  # that is too large (an RSS overrun only lists the live heap, which names no culprit).
  out=$(timeout 120 "$bin" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 "$f" 2>&1)
  status=$?
  # Frames of the report, without the fuzz binary's own runtime frames (sanitizer, libFuzzer:
  # no source line, "(<binary>+0x...)"), libc, libstdc++'s throw machinery and the C++ runtime.
  frame=$(grep -E '^ +#[0-9]+ 0x' <<<"$out" |
          grep -vE '\((/[^ )]*/)?fuzz_[a-z]+\+0x|libc\.so|sysdeps/|libstdc\+\+\.so|libgcc_s|in __cxa_|in std::terminate|in abort|in raise|in __interceptor_|in __asan|in __sanitizer' |
          head -1 | sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ //')
  if [ $status -eq 0 ]; then where=clean
  elif grep -q 'libhdf5' <<<"$frame"; then where=hdf5
  else where=ours; rc=1
  fi
  echo "$where $(basename "$f"): ${frame:-$(grep -m1 -E 'ERROR|SUMMARY|terminate|property' <<<"$out")}"
done
exit $rc
