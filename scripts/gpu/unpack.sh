#!/usr/bin/env bash
# Unpacks every carried build/carry-*.txz (scripts/gpu/pack.sh) into build/; with python3's
# tarfile where the GPU machine has no xz binary. A carry already unpacked from the same tarball
# (on a machine kept warm between calls) is left as it is.
#   scripts/gpu/unpack.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for t in build/carry-*.txz; do
  [[ -e $t ]] || continue
  stamp=${t%.txz}/.unpacked sum=$(cksum <"$t")
  if [[ -f $stamp && $(cat "$stamp") == "$sum" ]]; then continue; fi
  if command -v xz >/dev/null; then
    tar xJf "$t" -C build
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall("build", filter="tar")' "$t"
  fi
  echo "$sum" >"$stamp"
done
