#!/usr/bin/env bash
# Builds the CUDA-enabled release here and packs what the GPU machine needs into build/carry-gpu
# (the device tool carries it): the megalith CLI, the GPU tests and benchmark, the shared
# libraries the GPU machine lacks, and the commit they were built from. With an architecture
# list, device code for those only, in build/gpuARCHS and build/carry-gpuARCHS (80: the
# Ampere path, which runs on Hopper too: scripts/gpu/check_megakernel.sh build/carry-gpu80).
# The dual-architecture binaries outgrow what the device tool carries (64 MiB), so the carry
# also goes as an xz tarball (a third of gzip's size, so that an A/B's six carries fit with the
# tree): carry build/carry-gpu.txz and start the GPU command with `scripts/gpu/unpack.sh`. With
# a NAME, the carry is build/carry-NAME: a variant (another branch, built in the same build
# directory) to set beside main's in one call of scripts/gpu/ab_bench.sh. CARRY_FILES (paths in
# the carry, space-separated) puts only those in the tarball (scripts/gpu/pack_branches.sh).
#   [CARRY_FILES="..."] scripts/gpu/pack.sh [ARCHS [NAME]]
set -euo pipefail
cd "$(dirname "$0")/../.."
archs=${1:-}
build=build/gpu$archs
carry=build/carry-${2:-gpu$archs}
flags=()
[[ -z $archs ]] || flags=(-DCMAKE_CUDA_ARCHITECTURES="$archs")
[[ -f $build/build.ninja ]] || cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release "${flags[@]}" >/dev/null
source scripts/gpu/stale_objects.sh
remove_stale_objects $build
cmake --build $build
check_no_stale_objects $build
rm -rf $carry
mkdir -p $carry/tools/megalith $carry/tests/gpu $carry/lib
cp $build/tools/megalith/megalith $carry/tools/megalith/
cp $build/tests/gpu/megalith_gpu_tests $build/tests/gpu/megalith_gpu_bench \
  $build/tests/gpu/megalith_gpu_weight_stream $build/tests/gpu/megalith_gpu_read_patterns \
  $build/tests/gpu/megalith_gpu_event_latency $build/tests/gpu/megalith_gpu_fence_wait \
  $build/tests/gpu/megalith_gpu_cluster_exchange \
  $carry/tests/gpu/
for lib in libspdlog.so.1.10 libfmt.so.9 libgomp.so.1; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" $carry/lib/
done
git rev-parse --short HEAD >$carry/COMMIT
git diff --quiet HEAD || echo "$(cat $carry/COMMIT)+dirty" >$carry/COMMIT
files=("${carry#build/}")
if [[ -n ${CARRY_FILES:-} ]]; then
  files=()
  for f in $CARRY_FILES; do files+=("${carry#build/}/$f"); done
fi
XZ_OPT=-9 tar -cJf $carry.txz -C build "${files[@]}"
du -sh $carry $carry.txz
