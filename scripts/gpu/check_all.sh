#!/usr/bin/env bash
# The GPU machine's whole check, in one call: the megakernel's tests with memcheck and
# racecheck, then megalith on the GPU against Hugging Face transformers (64 greedy tokens and
# log-probs) on Qwen3-0.6B-, Llama-3.2-1B- and Qwen3-8B-shaped random models and on the
# golden fixtures. Logs under $OUT; the summary is the last lines printed.
#   scripts/gpu/check_all.sh [CARRY_DIR]      # default build/carry-gpu (scripts/gpu/pack.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/carry_env.sh "${1:-}"
status=0
scripts/gpu/check_megakernel.sh "$carry" 2>&1 | tee "$OUT/check_megakernel.txt"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
python3 scripts/gpu/compare_hf.py --megalith "$carry/tools/megalith/megalith" \
  --preset qwen3:qwen3-0.6b --preset llama:llama-3.2-1b --preset qwen3:qwen3-8b \
  --checkpoint tests/golden/fixtures/* --devices cuda,cpu 2>&1 | grep -v -i warn | tee "$OUT/compare_hf.txt"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
echo "== summary"
grep -hE "^check_megakernel|^memcheck|^racecheck|tests? ran|PASSED|FAILED" "$OUT/check_megakernel.txt"
grep -hE "^(PASS|FAIL) |^compare_hf" "$OUT/compare_hf.txt"
exit $status
