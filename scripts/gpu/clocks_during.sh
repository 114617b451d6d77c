#!/usr/bin/env bash
# Runs a command while nvidia-smi samples GPU 0 every 100 ms, then prints the command's output
# and the median and range of the SM clock, power draw and temperature over the run, and the
# throttle reasons seen: whether a slower phase runs at a lower clock (power or heat).
#   scripts/gpu/clocks_during.sh COMMAND [ARGS...]
set -uo pipefail
samples=$(mktemp)
nvidia-smi -i 0 --query-gpu=clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active \
  --format=csv,noheader,nounits -lms 100 >"$samples" &
sampler=$!
"$@"
status=$?
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
python3 - "$samples" <<'PY'
import statistics, sys
rows = [l.split(", ") for l in open(sys.argv[1]) if l.strip()]
busy = [r for r in rows if float(r[1]) > 150]  # watts: the samples while a kernel ran
if not busy:
    sys.exit("clocks_during: no busy samples")
for name, col in (("SM clock MHz", 0), ("power W", 1), ("temperature C", 2)):
    v = [float(r[col]) for r in busy]
    print(f"{name:14} median {statistics.median(v):7.1f}  min {min(v):7.1f}  max {max(v):7.1f}")
print("throttle reasons:", sorted({r[3].strip() for r in busy}), f"({len(busy)} busy samples)")
PY
rm -f "$samples"
exit $status
