#!/usr/bin/env bash
# An A/B and the landing check in one device call: scripts/gpu/ab_carries.sh (each variant's GPU
# tests, then the models' step times against main's build) and, if a variant wins by the rule
# scripts/gpu/ab_table.py --best applies, scripts/gpu/check_all.sh on that variant's carry, which
# must then be a whole one (WHOLE=1 scripts/gpu/pack_branches.sh: the CLI too). The table goes to
# $OUT/ab_table.md. About 20 s a variant plus 330 s for the check.
#   [AB_STEPS=N] scripts/gpu/ab_check.sh ROUNDS VARIANT...
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
AB_STEPS=${AB_STEPS:-64} scripts/gpu/ab_carries.sh "$@" | tee "$OUT/ab.txt"
python3 scripts/gpu/ab_table.py "$OUT/ab.txt" | tee "$OUT/ab_table.md"
winner=$(python3 scripts/gpu/ab_table.py "$OUT/ab.txt" --best "$OUT")
echo "== winner: ${winner:-none}"
[[ -n $winner ]] || exit 0
scripts/gpu/check_all.sh "build/carry-$winner" 2>&1 | tail -25
