#!/usr/bin/env bash
# Every test: unit tests of the maths (on x64, and on arm64 under qemu), and integration tests with the
# real models and images.
# Benchmarks are not tests: run them with scripts/bench.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
log="$(mktemp)"
dotnet test EdgeInspector.sln -c Release --nologo "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# The Core tests again on linux-arm64 under qemu (the Arm kernels), unless a filter names what to run.
# Only its closing line (dotnet test's form) joins the count.
if [ "$#" -eq 0 ]; then
  armlog="$(mktemp)"
  bash scripts/test-arm64.sh 2>&1 | tee "$armlog"
  arm=${PIPESTATUS[0]}
  tail -1 "$armlog" >> "$log"
  rm -f "$armlog"
  [ "$rc" -ne 0 ] || rc=$arm
fi
# One closing line over all test assemblies, in the plain form CI reads.
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
skipped=$(grep -oE 'Skipped: +[0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [ "$rc" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then echo "test: no test ran" >&2; exit 1; fi
exit "$rc"
