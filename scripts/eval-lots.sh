#!/usr/bin/env bash
# The accuracy table of the engine against the MuSc reference: every category of ../shared/data,
# whole and as short lots (the first 40 and 100 frames of the line order), each one `--mode all`
# run. Writes OUT/<category>_<lot>/results.json and prints one table (image / pixel AUROC and PRO, in %).
# Usage: bash scripts/eval-lots.sh [OUT] [extra edgeinspector-eval options]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/lots}"; shift || true
data="${DATA:-../shared/data}"
categories="${CATEGORIES:-mvtec_ad/bottle glass_industrial/glass visa/macaroni1 magnetic_tile/magnetic_tile}"
lots="${LOTS:-40 100 0}"
eval_dll="${EVAL_DLL:-tools/EdgeInspector.Eval/bin/Release/net10.0/edgeinspector-eval.dll}"
[[ -f "$eval_dll" ]] || dotnet build tools/EdgeInspector.Eval -c Release --nologo -v q
mkdir -p "$out"
for c in $categories; do
  for n in $lots; do
    name="$(basename "$c")_$([[ $n == 0 ]] && echo all || echo "$n")"
    [[ -f "$out/$name/results.json" ]] && continue   # resumable
    echo "== $name" >&2
    dotnet "$eval_dll" "$data/$c" --mode all --seed 0 --limit "$n" --quiet --out "$out/$name" "$@" >"$out/$name.log" 2>&1 \
      || { echo "eval failed: $out/$name.log" >&2; exit 1; }
  done
done
printf '| lot | frames | MuSc image / pixel / PRO | MuSc image by map maximum | stream image / pixel / PRO | Δ image | Δ pixel |\n|---|---|---|---|---|---|---|\n'
for f in "$out"/*/results.json; do
  jq -r --arg lot "$(basename "$(dirname "$f")")" '
    def f: if . == null then "–" else (. * 1000 | round / 10 | tostring) end;
    def d(a; b): if a == null or b == null then "–" else ((b - a) * 1000 | round / 10 | tostring) end;
    .modes as $m |
    "| \($lot) | \(.frames) | \($m.musc.image_auroc|f) / \($m.musc.pixel_auroc|f) / \($m.musc.pro|f) | \($m.musc.image_auroc_map_max|f) | \($m.stream.image_auroc|f) / \($m.stream.pixel_auroc|f) / \($m.stream.pro|f) | \(d($m.musc.image_auroc; $m.stream.image_auroc)) | \(d($m.musc.pixel_auroc; $m.stream.pixel_auroc)) |"' "$f"
done
