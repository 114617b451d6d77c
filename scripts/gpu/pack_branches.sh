#!/usr/bin/env bash
# Builds the carries of an A/B in one go, for scripts/gpu/ab_carries.sh: one per branch
# (build/carry-NAME.txz, slimmed to what ab_carries.sh runs: the bench, the GPU tests and the
# weight-stream probe, so that five fit in what the device tool carries) and main's
# (build/carry-gpu90a.txz, whole), all in the one sm_90a build directory, so that each
# branch rebuilds only what it changes. Checks the branches out in turn and returns to the
# one it started on; refuses to start with uncommitted changes. With WHOLE=1 each branch's
# carry is whole (the CLI too, 3.8 MB instead of about 3), as scripts/gpu/ab_check.sh needs for
# the check_all.sh of its winner.
#   [WHOLE=1] scripts/gpu/pack_branches.sh NAME=BRANCH...   (e.g. overheads=exp/consumer-overheads)
set -euo pipefail

# All in one function: bash has read it whole before the first checkout changes this file.
main() {
  cd "$(dirname "$0")/../.."
  # Main's version, read before any checkout: a branch's own pack.sh may predate it.
  source scripts/gpu/stale_objects.sh
  if ! git diff --quiet HEAD; then
    echo "pack_branches: commit or stash the working tree's changes first" >&2
    exit 1
  fi
  local spec name branch
  start=$(git rev-parse --abbrev-ref HEAD)  # global: the EXIT trap runs after main returns
  trap 'git checkout -q "$start"' EXIT
  for spec in "$@"; do
    name=${spec%%=*} branch=${spec#*=}
    if [[ $name == "$spec" || -z $name || -z $branch ]]; then
      echo "pack_branches: expected NAME=BRANCH, got '$spec'" >&2
      exit 1
    fi
    git checkout -q "$branch"
    echo "== $name: $branch ($(git rev-parse --short HEAD))"
    local files="COMMIT lib tests/gpu/megalith_gpu_bench tests/gpu/megalith_gpu_tests
      tests/gpu/megalith_gpu_weight_stream"
    [[ ${WHOLE:-0} != 1 ]] || files=""  # pack.sh packs the whole carry without CARRY_FILES
    remove_stale_objects build/gpu90a
    CARRY_FILES="$files" scripts/gpu/pack.sh 90a "$name" >/dev/null
    check_no_stale_objects build/gpu90a
    du -h "build/carry-$name.txz"
  done
  git checkout -q main
  echo "== gpu90a: main ($(git rev-parse --short HEAD))"
  scripts/gpu/pack.sh 90a | tail -1
}

main "$@"
exit
