#!/usr/bin/env bash
# Runs the megakernel's GPU tests on a machine with an NVIDIA GPU, then compute-sanitizer
# memcheck and racecheck on a small model. Logs go to $OUT (default ./gpu-logs); the last lines
# printed are the summary. Exit status 0 only when everything passed.
#
#   scripts/gpu/check_megakernel.sh [BUILD_DIR]     # default build/gpu
#
# Shared libraries the build machine linked against can travel in BUILD_DIR/lib.
set -uo pipefail

build=${1:-build/gpu}
out=${OUT:-$PWD/gpu-logs}
mkdir -p "$out"
tests="$build/tests/gpu/megalith_gpu_tests"
if [[ -d "$build/lib" ]]; then
  export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv \
  >"$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

status=0
"$tests" --gtest_color=no >"$out/gpu_tests.log" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED) |^\[==========\]|tokens equal|launches of|watchdog report|reached the host" \
  "$out/gpu_tests.log"

# The sanitizers slow every access, so the smallest model only. racecheck does not credit
# __syncwarp() with ordering the lanes' reads of a ring stage before lane 0 frees it, so it
# runs with every thread freeing stages itself (MEGALITH_PER_THREAD_RELEASE=1); memcheck
# runs the default.
# racecheck leaves out kernel-per-op mode: under it the test process dies at the first graph
# launch with no report (exit 9, H200, CUDA 13.0), while memcheck runs it cleanly; its tasks
# and worker loop are static mode's, which racecheck covers.
model='Architectures/GpuModelTest.SameTokensAsTheCpuExecutor/llama_bf16*'
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    release=0 filter=$model  # static, dynamic and kernel-per-op
    [[ $tool == racecheck ]] && release=1 filter="$model:-*kernel_per_op*"
    MEGALITH_PER_THREAD_RELEASE=$release \
      compute-sanitizer --tool "$tool" --error-exitcode 1 "$tests" --gtest_color=no \
      --gtest_filter="$filter" >"$out/$tool.log" 2>&1 || status=1
    echo "$tool: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/$tool.log" | tail -1)"
    grep -E "^\[  (PASSED|FAILED) " "$out/$tool.log"
  done
else
  echo "compute-sanitizer not found: memcheck skipped"
  status=1
fi

if [[ $status -eq 0 ]]; then echo "check_megakernel: PASS"; else echo "check_megakernel: FAIL"; fi
exit $status
