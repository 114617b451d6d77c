#!/usr/bin/env bash
# A/B of megakernel step times in one run: each round runs every variant on the three
# models, alternating, so clock and thermal drift hit them alike. A variant is a quoted
# command line of megalith_gpu_bench (plus its flags). Full outputs under $OUT/ab/; the
# headline per variant and model is printed. AB_STEPS sets the steps of each timed run (default
# 32); the headline is the median of three runs after 8 warm-up steps, the second: positions
# 40-72 with 32 steps, 72-136 with 64 (about where `megalith bench`, positions 32-160, decodes).
#   [AB_STEPS=N] scripts/gpu/ab_bench.sh ROUNDS "BENCH [FLAGS]" ["BENCH [FLAGS]" ...]
set -uo pipefail
rounds=$1
shift
out=${OUT:-$PWD/gpu-logs}/ab
mkdir -p "$out"
models="qwen3:qwen3-8b llama:llama-3.2-1b qwen3:qwen3-0.6b"
for round in $(seq "$rounds"); do
  v=0
  for variant in "$@"; do
    v=$((v + 1))
    log="$out/round${round}_variant$v.txt"
    # shellcheck disable=SC2086  # a variant is a command line
    timeout 240 $variant --steps "${AB_STEPS:-32}" $models >"$log" 2>&1 || echo "variant $v failed: see $log"
    echo "== round $round, variant $v: $variant"
    grep -E "^[a-z0-9]+:[a-z0-9.-]+ \(|us/step" "$log" | grep -v traced
  done
done
