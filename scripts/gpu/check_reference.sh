#!/usr/bin/env bash
# Runs on the GPU machine, which has torch and transformers: Hugging Face transformers builds
# COUNT random models that no test has seen (random architecture, shapes, options, dtype and
# config style), and the CPU reference model and the compiled CPU executor are measured
# against them: log-probs and 32 greedy tokens.
#   scripts/gpu/check_reference.sh BIN_DIR [COUNT] [SEED]
# BIN_DIR holds megalith_unit_tests built on the development machine and the shared
# libraries it needs that the GPU machine lacks (spdlog, fmt).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1
count=${2:-12}
seed=${3:-$RANDOM}
models=$(mktemp -d)
log=${OUT:-/tmp}/check_reference.log
echo "unseen models: $count, seed $seed" | tee "$log"
PYTHONUNBUFFERED=1 python3 tests/golden/make_fixtures.py --unseen "$count" --seed "$seed" \
  --out "$models" 2>&1 | grep -v Warning | tee -a "$log"
LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" MEGALITH_GOLDEN_FIXTURES="$models" \
  "$bin/megalith_unit_tests" \
  --gtest_filter='Golden.ReferenceMatchesTransformers:Golden.CompiledExecutorMatchesTransformers' \
  2>&1 | tee -a "$log"
