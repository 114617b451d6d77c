#!/usr/bin/env bash
# Batch > 1 on the GPU: the GPU tests (every task kernel, whole models, the batch cases), decode
# speed of Llama-3.2-1B and Qwen3-8B at batch 1, 2, 4 and 8 (records in $OUT/batch.json), and
# the serve load test (scripts/gpu/serve_load.py) at batch 1 and 4. Logs in $OUT.
#
#   scripts/gpu/check_batch.sh build/carry-gpu90a
set -uo pipefail
carry=$1
out=${OUT:-$PWD/gpu-logs}
mkdir -p "$out"
source scripts/gpu/carry_env.sh "$carry"
megalith=$carry/tools/megalith/megalith

"$carry/tests/gpu/megalith_gpu_tests" --gtest_color=no ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} \
  >"$out/gpu_tests.log" 2>&1
echo "gpu tests: exit $?"
grep -E "^\[  (PASSED|FAILED) |^\[==========\]|on the GPU matches" "$out/gpu_tests.log"
grep -A6 "Failure" "$out/gpu_tests.log" | head -60

for model in llama-3.2-1b qwen3-8b; do
  for batch in 1 2 4 8; do
    "$megalith" bench --preset "$model" --batch "$batch" --no-peers --runs 3 \
      --out "$out/batch.json" >"$out/bench.log" 2>&1
    echo "bench $model batch $batch: exit $?"
    grep -E "ms/token|tokens/s|rror" "$out/bench.log"
  done
done

for batch in 1 4; do
  python3 scripts/gpu/serve_load.py "$megalith" --device cuda --batch "$batch" --requests 16 \
    --max-tokens 64 2>"$out/serve.log"
  tail -3 "$out/serve.log"
done
