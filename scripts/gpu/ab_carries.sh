#!/usr/bin/env bash
# A/B of branch builds against main's in one device call: unpacks every build/carry-*.txz (main's
# from `scripts/gpu/pack.sh 90a`, each branch's from `scripts/gpu/pack.sh 90a NAME`, slimmed as
# docs/performance.md says), runs each branch's GPU tests, then ab_bench.sh with main's bench
# first. A variant is a carry's NAME, optionally with megalith_gpu_bench flags and environment
# settings in the same quoted word ("gpu90a --max-task-mb 16" is main's build with a flag,
# "bubble MEGALITH_BUBBLE_PREFETCH_KB=160" a branch's build with a setting). The ab_bench logs come
# back as one tarball, $OUT/ab.tgz. With AB_PROBE=1 each build's megalith_gpu_weight_stream runs
# first on one SM (copies only, products with copies, products only: GB/s per SM), so a change
# to the product loop is seen alone before the models.
#   [AB_PROBE=1] scripts/gpu/ab_carries.sh ROUNDS VARIANT...
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
rounds=$1
shift
scripts/gpu/unpack.sh
source scripts/gpu/carry_env.sh build/carry-gpu90a
bench=tests/gpu/megalith_gpu_bench
variants=("build/carry-gpu90a/$bench")
probed=() tested=()
probe() {
  [[ ${AB_PROBE:-0} == 1 && " ${probed[*]} " != *" $1 "* ]] || return 0
  probed+=("$1")
  echo "== weight stream probe of $1 ($(cat "build/carry-$1/COMMIT")), one SM"
  timeout 120 "build/carry-$1/tests/gpu/megalith_gpu_weight_stream" --sms 1 --scale 4 | tail -7
}
probe gpu90a
for variant in "$@"; do
  read -r name flags <<<"$variant"
  if [[ $name != gpu90a && " ${tested[*]} " != *" $name "* ]]; then
    tested+=("$name")
    echo "== GPU tests of $name ($(cat "build/carry-$name/COMMIT"))"
    start=$SECONDS
    timeout 120 "build/carry-$name/tests/gpu/megalith_gpu_tests" >"$OUT/tests_$name.log" 2>&1
    echo "$(tail -1 "$OUT/tests_$name.log") ($((SECONDS - start)) s)"
  fi
  probe "$name"
  settings="" options=""
  for word in $flags; do
    if [[ $word == [A-Z]*=* ]]; then settings+=" $word"; else options+=" $word"; fi
  done
  variants+=("${settings:+env$settings }build/carry-$name/$bench$options")
done
start=$SECONDS
# Each model's line cut to its name: the table (scripts/gpu/ab_table.py) reads the name.
scripts/gpu/ab_bench.sh "$rounds" "${variants[@]}" | sed -E 's/^([a-z0-9]+:[a-z0-9.-]+) \(.*/\1/'
echo "== the A/B took $((SECONDS - start)) s"
tar -czf "$OUT/ab.tgz" -C "$OUT" ab && rm -rf "$OUT/ab"
