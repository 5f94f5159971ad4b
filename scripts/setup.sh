#!/usr/bin/env bash
# Installs what the build, the tests and the demo need on a fresh Debian machine (idempotent).
set -euo pipefail
need=()
# libgtk-3-0: OpenCvSharp's native runtime links against it.
# libaravis-0.8-0: GigE Vision cameras (P/Invoke). aravis-tools: the fake GigE camera the tests start.
# mosquitto: the broker the tests start (on a free loopback port); mosquitto-clients: to watch the topics.
# chromium: the headless browser the live-view tests drive (DevTools protocol on loopback).
# binutils: readelf, the twin the test of the providers' library lists checks against.
# python3-numpy, python3-torch, python3-onnx: the device check (scripts/device_check.py) run here, where its PyTorch
# twins of the scoring and views graphs run on the CPU against the .NET outputs.
for pkg in libgtk-3-0 libaravis-0.8-0 aravis-tools mosquitto mosquitto-clients chromium binutils python3-numpy python3-torch python3-onnx; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK (dotnet) is required: https://learn.microsoft.com/dotnet/core/install/linux-debian" >&2; exit 1; }
# The models and benchmark data live in ../shared beside the checkout (research licences: never copied in).
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "$root/../shared/models" ] || echo "setup: warning: $root/../shared/models not found; see models/README.md" >&2
