#!/usr/bin/env bash
# Where the megakernel's warps stall, instruction by instruction: an Nsight Compute
# source-counter profile (warp-state samples per SASS instruction) of one timed megakernel
# launch of megalith_gpu_bench, and the SASS with its source lines (nvdisasm -g -gi), so that
# scripts/gpu/stall_lines.py can add the samples up per source line of kernels/, inlined
# callers included. Outputs under $OUT: sass.csv.gz, lines.sass.gz, details.txt.
#   scripts/gpu/profile_source.sh [CARRY] [ARCH:PRESET] [STEPS] [BENCH FLAGS...]
#   (e.g. --claim-rows: the run with claimed rows, docs/megakernel.md)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
source scripts/gpu/carry_env.sh "${1:-build/carry-gpu}"
spec=${2:-qwen3:qwen3-8b}
steps=${3:-64}
shift $(($# < 3 ? $# : 3))
bench=$carry/tests/gpu/megalith_gpu_bench
# The bench launches the megakernel for a warm-up, then three timed runs: the third one has the
# longest context of the three.
timeout 420 ncu --clock-control none -k regex:megakernel --launch-skip 3 --launch-count 1 \
  --section SourceCounters --section WarpStateStats --section LaunchStats \
  -f -o "$OUT/profile" "$bench" --steps "$steps" "$@" "$spec" >"$OUT/ncu_run.txt" 2>&1
echo "ncu rc=$?"
tail -5 "$OUT/ncu_run.txt"
ncu -i "$OUT/profile.ncu-rep" --page details >"$OUT/details.txt" 2>&1
ncu -i "$OUT/profile.ncu-rep" --page source --csv --print-source sass 2>&1 | gzip >"$OUT/sass.csv.gz"
rm -f "$OUT/profile.ncu-rep"
work=$(mktemp -d)
(cd "$work" && cuobjdump -xelf all "$OLDPWD/$bench" >/dev/null)
# The cubin that holds the megakernel for sm_90a.
cubin=$(grep -l megakernel "$work"/*sm_90a*.cubin | head -1)
nvdisasm -g -gi -c "$cubin" | gzip >"$OUT/lines.sass.gz"
rm -rf "$work"
ls -la "$OUT"
