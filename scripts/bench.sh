#!/usr/bin/env bash
# The nearest-neighbour kernel against ONNX Runtime's MatMul (BenchmarkDotNet). Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet run -c Release --project tests/EdgeInspector.Benchmarks -- --filter '*' "$@"
