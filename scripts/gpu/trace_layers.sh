#!/usr/bin/env bash
# Where a decode step's time goes, on the GPU machine: `megalith trace` of a few steps on each
# of the issue's models (the summary per task kind), then the per-operator timeline of one
# layer of the middle step (phase_timeline.py). Traces are gzipped under $OUT.
#   scripts/gpu/trace_layers.sh [CARRY_DIR] [STEPS]    # default build/carry-gpu, 4 steps
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/carry_env.sh "${1:-}"
steps=${2:-4}
status=0
for model in qwen3-8b llama-3.2-1b qwen3-0.6b; do
  trace="$OUT/trace_$model.json"
  echo "== $model"
  "$carry/tools/megalith/megalith" trace --preset "$model" --steps "$steps" --out "$trace" 2>&1 |
    grep -v -i "warn" || status=1
  # The second layer: past the first layer's start-up, like every layer after it.
  python3 scripts/gpu/phase_timeline.py "$trace" --ops '^layers\.1\.' || status=1
  gzip -f "$trace"
done
exit $status
