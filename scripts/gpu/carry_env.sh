# Sourced by the GPU machine's scripts, from the repository root, with their first argument:
# the carry directory (default build/carry-gpu, scripts/gpu/pack.sh), $OUT (default
# ./gpu-logs), the commit the binaries were built from, and the carried shared libraries.
carry=${1:-build/carry-gpu}
export OUT=${OUT:-$PWD/gpu-logs} PYTHONUNBUFFERED=1 MEGALITH_COMMIT=$(cat "$carry/COMMIT")
export LD_LIBRARY_PATH="$PWD/$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$OUT"
