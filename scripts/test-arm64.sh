#!/usr/bin/env bash
# The Core tests again on linux-arm64, the Jetson's architecture, under qemu-aarch64 with every Arm
# extension it emulates (-cpu max): the sdot byte kernels, the NEON float kernels and every vector path
# are held to their plain twins as they are on x64. scripts/test.sh calls it; it installs what it needs:
# qemu-user, and the arm64 C runtime and OpenSSL (the xUnit runner hashes with it) as Debian multiarch
# packages. The tests are a self-running xUnit v3 program (tests/EdgeInspector.Core.Tests.Arm64), so
# no test host runs under the emulator. Prints its result in dotnet test's own closing form.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "test-arm64: adding Debian's arm64 architecture (multiarch) for the arm64 C runtime"
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
need=()
for pkg in qemu-user libc6:arm64 libstdc++6:arm64 libssl3:arm64; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "test-arm64: installing ${need[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
out=out/arm64-tests
log="$(mktemp)"
# Quiet when it builds; the whole build output when it does not.
if ! dotnet publish tests/EdgeInspector.Core.Tests.Arm64 -c Release -r linux-arm64 --self-contained --nologo -o "$out" >"$log" 2>&1; then
  cat "$log" >&2
  echo "test-arm64: the arm64 test program did not build (above)" >&2
  rm -f "$log"
  exit 1
fi
set +e
# W^X double-maps the JIT's code pages, which qemu's user mode does not follow.
DOTNET_EnableWriteXorExecute=0 qemu-aarch64 -cpu max "$out/EdgeInspector.Core.Tests.Arm64" -noColor "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -E 'Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+, Skipped: [0-9]+' "$log" | tail -1)
rm -f "$log"
[ -n "$summary" ] || { echo "test-arm64: the test program printed no summary (exit code $rc)" >&2; exit 1; }
total=$(grep -oE 'Total: [0-9]+' <<<"$summary" | grep -oE '[0-9]+')
errors=$(grep -oE 'Errors: [0-9]+' <<<"$summary" | grep -oE '[0-9]+')
failed=$(grep -oE 'Failed: [0-9]+' <<<"$summary" | grep -oE '[0-9]+')
skipped=$(grep -oE 'Skipped: [0-9]+' <<<"$summary" | grep -oE '[0-9]+')
failed=$((failed + errors))
passed=$((total - failed - skipped))
word="Passed!"; [ "$failed" -eq 0 ] && [ "$rc" -eq 0 ] || word="Failed!"
echo "$word  - Failed: $failed, Passed: $passed, Skipped: $skipped, Total: $total - EdgeInspector.Core.Tests.Arm64 (linux-arm64, qemu-aarch64 -cpu max)"
exit "$rc"
