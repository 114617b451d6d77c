#!/usr/bin/env bash
# `megalith bench` on the issue's models, with the Hugging Face peers, on the GPU machine, in
# static mode, then in dynamic mode, then in kernel-per-op mode (the megakernel's ablation:
# "mode": "kernel-per-op" records).
# Records are appended to $OUT/decode.json (copy them to bench/results/decode.json).
#   scripts/gpu/bench_all.sh [CARRY_DIR] [extra megalith bench flags...]
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/carry_env.sh "${1:-}"
shift || true
status=0
for model in qwen3-8b llama-3.2-1b qwen3-0.6b; do
  "$carry/tools/megalith/megalith" bench --preset "$model" --out "$OUT/decode.json" "$@" \
    2>&1 | grep -v -i "warn" || status=1
done
# Dynamic mode, whose schedulers take one SM (the peers are the same as above).
for model in qwen3-8b llama-3.2-1b qwen3-0.6b; do
  "$carry/tools/megalith/megalith" bench --preset "$model" --out "$OUT/decode.json" \
    --schedule dynamic --no-peers "$@" 2>&1 | grep -v -i "warn" || status=1
done
# The same tasks, one kernel launch per fused op from a CUDA graph.
for model in qwen3-8b llama-3.2-1b qwen3-0.6b; do
  "$carry/tools/megalith/megalith" bench --preset "$model" --out "$OUT/decode.json" \
    --schedule kernel-per-op --no-peers "$@" 2>&1 | grep -v -i "warn" || status=1
done
exit $status
