#!/usr/bin/env bash
# Every test: unit tests of the maths and integration tests with the real models and images.
# Benchmarks are not tests: run them with scripts/bench.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
log="$(mktemp)"
dotnet test EdgeInspector.sln -c Release --nologo "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# One closing line over all test assemblies, in the plain form CI reads.
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
skipped=$(grep -oE 'Skipped: +[0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "$rc" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then echo "test: no test ran" >&2; exit 1; fi
exit "$rc"
