#!/usr/bin/env bash
# BenchmarkDotNet: the nearest-neighbour kernel against ONNX Runtime's MatMul, and each step of the
# reservoir's scoring for one view. Takes a few minutes. One class alone:
#   dotnet run -c Release --project tests/EdgeInspector.Benchmarks -- --filter '*Reservoir*'
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet run -c Release --project tests/EdgeInspector.Benchmarks -- --filter '*' "$@"
