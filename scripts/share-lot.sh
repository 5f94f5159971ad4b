#!/usr/bin/env bash
# A lot with a chosen share of defective parts, from a category in MVTec layout: every defective test
# image (and its mask), and as many good ones as make the share, spread evenly over the good images in
# name order (the same on every run). A line's defect share is a few percent; a lot where a third or half
# of the parts are defective is how the engine's quarantine and calibration are measured (decision 0004).
# Links, not copies (the data's licences do not allow copies in the repository); write it outside, e.g.:
#   bash scripts/share-lot.sh ../shared/data/magnetic_tile/magnetic_tile /tmp/share/mt_third 0.333
#   dotnet tools/EdgeInspector.Eval/bin/Release/net10.0/edgeinspector-eval.dll /tmp/share/mt_third --mode all --limit 300
set -euo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: bash scripts/share-lot.sh <category-dir> <out-dir> <defect share, above 0 and below 1>" >&2
  exit 2
fi
src="$(realpath "$1")"; dst="$2"; share="$3"
[[ -d "$src/test/good" ]] || { echo "share-lot: $src has no test/good folder (MVTec layout: test/good, test/<defect>)" >&2; exit 2; }
[[ $share =~ ^0*\.[0-9]+$ ]] && awk -v s="$share" 'BEGIN { exit !(s + 0 > 0) }' || { echo "share-lot: the defect share '$share' is not a number above 0 and below 1" >&2; exit 2; }
[[ -e "$dst" ]] && { echo "share-lot: $dst exists; give a new folder" >&2; exit 2; }

defects=(); defective=0
for d in "$src"/test/*/; do
  [[ $(basename "$d") == good ]] && continue
  defects+=("$d")
  defective=$((defective + $(find -L "$d" -maxdepth 1 -type f | wc -l)))
done
mapfile -t good < <(find -L "$src/test/good" -maxdepth 1 -type f | LC_ALL=C sort)
want=$(awk -v d="$defective" -v s="$share" 'BEGIN { printf "%d", d * (1 - s) / s + 0.5 }')
(( want <= ${#good[@]} )) || { echo "share-lot: $src has ${#good[@]} good images; a share of $share with its $defective defective needs $want" >&2; exit 2; }

mkdir -p "$dst/test/good"
for d in "${defects[@]}"; do ln -s "$d" "$dst/test/$(basename "$d")"; done
[[ -d "$src/ground_truth" ]] && ln -s "$src/ground_truth" "$dst/ground_truth"
[[ -d "$src/train" ]] && ln -s "$src/train" "$dst/train"
for ((i = 0; i < want; i++)); do
  ln -s "${good[i * ${#good[@]} / want]}" "$dst/test/good/"
done
echo "$dst: $defective defective, $want good (share $(awk -v d="$defective" -v g="$want" 'BEGIN { printf "%.3f", d / (d + g) }'))"
