#!/usr/bin/env bash
# The offline evaluation: streaming FSLC and the MuSc reference over the replayed test images of
# a category (default: ../shared/data/mvtec_ad/bottle) with the default model; results, ROC curves and
# heatmaps land in out/eval. Extra arguments go to edgeinspector-eval (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
category="${CATEGORY:-../shared/data/mvtec_ad/bottle}"
dotnet build tools/EdgeInspector.Eval -c Release --nologo -v q
dotnet tools/EdgeInspector.Eval/bin/Release/net10.0/edgeinspector-eval.dll "$category" --mode all --out out/eval "$@"
