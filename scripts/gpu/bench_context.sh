#!/usr/bin/env bash
# `megalith bench` at 1,024 and 8,192 tokens of context (the prompt), where attention's share
# of a step grows, on the issue's models in static mode; records appended to $OUT/decode.json
# with their prompt_tokens. One timed run after the warm-up (each run prefills the whole prompt
# a token a step: Qwen3-8B's 8,192 take about 50 s); no peers, to fit one device call.
#   scripts/gpu/bench_context.sh [CARRY_DIR] [extra megalith bench flags...]
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/carry_env.sh "${1:-}"
shift || true
status=0
for context in 1024 8192; do
  for model in qwen3-8b llama-3.2-1b qwen3-0.6b; do
    "$carry/tools/megalith/megalith" bench --preset "$model" --prompt-len "$context" --runs 1 \
      --no-peers --out "$OUT/decode.json" "$@" 2>&1 | grep -v -i "warn" || status=1
  done
done
exit $status
