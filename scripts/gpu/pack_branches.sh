#!/usr/bin/env bash
# Builds the carries of an A/B in one go, for scripts/gpu/ab_carries.sh: main's (build/carry-gpu90a)
# and one per branch (build/carry-NAME), all in the one sm_90a build directory, so that each
# branch rebuilds only what it changes. Checks the branches out in turn and returns to the one
# it started on; refuses to start with uncommitted changes.
#   scripts/gpu/pack_branches.sh NAME=BRANCH...   (e.g. overheads=exp/consumer-overheads)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! git diff --quiet HEAD; then
  echo "pack_branches: commit or stash the working tree's changes first" >&2
  exit 1
fi
start=$(git rev-parse --abbrev-ref HEAD)
trap 'git checkout -q "$start"' EXIT
for spec in "$@"; do
  name=${spec%%=*} branch=${spec#*=}
  if [[ $name == "$spec" || -z $name || -z $branch ]]; then
    echo "pack_branches: expected NAME=BRANCH, got '$spec'" >&2
    exit 1
  fi
  git checkout -q "$branch"
  echo "== $name: $branch ($(git rev-parse --short HEAD))"
  scripts/gpu/pack.sh 90a "$name" | tail -1
done
git checkout -q main
echo "== gpu90a: main ($(git rev-parse --short HEAD))"
scripts/gpu/pack.sh 90a | tail -1
