#!/usr/bin/env bash
# The suite under the conditions that differ between machines, one row each: 1 and 2 torch threads per worker,
# `precision: auto` resolving to fp32 + channels_last and to bf16 + channels_last (the native-bf16 branch, run
# on any CPU), and the golden tests with the reference data one ulp off (a CPU whose libm rounds the last bit
# otherwise). Writes results/test_matrix.md; exits non-zero if a row fails. About 55 min on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1
mkdir -p results
report=results/test_matrix.md
golden_tests=$(grep -l "golden" tests/test_*.py | tr '\n' ' ')
rows=(
  "1 thread per worker|SRDIFF_TEST_THREADS=1|tests"
  "2 threads per worker|SRDIFF_TEST_THREADS=2|tests"
  "auto = fp32 + channels_last|SRDIFF_AUTO_EXECUTION=fp32+channels_last|tests"
  "auto = bf16 + channels_last (native-bf16 branch)|SRDIFF_AUTO_EXECUTION=bf16+channels_last|tests"
  "golden data 1 ulp off|SRDIFF_GOLDEN_ULP=1|$golden_tests"
)
{
  echo "# The suite under machine-dependent conditions"
  echo
  echo "$(nproc) cores; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
       "native bf16: $(grep -m1 -ow -e avx512_bf16 -e amx_bf16 /proc/cpuinfo | sort -u | xargs || true)"
  echo
  echo "| condition | environment | result |"
  echo "|---|---|---|"
} > "$report"
status=0
for row in "${rows[@]}"; do
  IFS='|' read -r name env targets <<< "$row"
  log=$(mktemp)
  # shellcheck disable=SC2086  (targets: several files)
  env $env "${SRDIFF_VENV:-.venv}/bin/python" -m pytest $targets -n auto --dist loadfile -q -p no:cacheprovider \
    > "$log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$log" | tail -1 | sed 's/=//g' | xargs)
  echo "| $name | \`$env\` | ${summary:-exit $rc} |" >> "$report"
  echo "$name: ${summary:-exit $rc}"
  grep -E '^FAILED' "$log" | sed 's/^/  /'
  rm -f "$log"
done
cat "$report"
exit $status
