#!/usr/bin/env bash
# The GPU path, as far as a machine without .NET can prove it (docs/accelerator.md).
#
#   scripts/device-check.sh --export [DIR]   here, with the .NET SDK: builds the eval CLI and writes the scoring
#                                            graphs, a real reservoir, four real frames' inputs and the CPU
#                                            outputs, and the views graph with two frames' taps and views, to
#                                            DIR (default out/device-check/graphs, about 47 MB)
#   scripts/device-check.sh [DIR]            on a Linux x86-64 machine with an NVIDIA GPU and CUDA 13 (python3
#                                            with numpy; onnxruntime, torch and onnx used when present): replays DIR
#                                            and prints what ran on which provider, what matched the CPU
#                                            outputs, ms per frame at batch 1 and per tile in a batch of 4, and
#                                            what it could not prove and why. At most 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--export" ]]; then
  dir="${2:-out/device-check/graphs}"
  data="${EDGEINSPECTOR_DATA:-../shared/data}"
  dotnet build tools/EdgeInspector.Eval -c Release -v quiet -nologo >/dev/null
  rm -rf "$dir"
  dotnet tools/EdgeInspector.Eval/bin/Release/net10.0/edgeinspector-eval.dll "$data/mvtec_ad/bottle" --mode stream --limit 80 \
    --quiet --export-graphs "$dir" --out "$(dirname "$dir")/eval"
  du -sh "$dir"
  exit 0
fi

dir="${1:-out/device-check/graphs}"
out="${OUT:-}"
if [[ -n "$out" ]]; then
  timeout 480 python3 scripts/device_check.py "$dir" 2>&1 | tee "$out/device-check.txt"
  exit "${PIPESTATUS[0]}"
fi
exec timeout 480 python3 scripts/device_check.py "$dir"
