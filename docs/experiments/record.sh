#!/usr/bin/env bash
# Re-run every recorded experiment and re-render its report in docs/experiments/<experiment>-<dataset>/.
#
#   bash docs/experiments/record.sh           # resume: train only (method, seed) pairs not recorded yet
#   bash docs/experiments/record.sh --fresh   # start over (after a change to training or data code)
#
# An entry may add options after the dataset (the last --seeds wins).
# Needs the registry datasets (`logitkit data`; .ci/run shows how to provision them).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=(
  "multilabel yeast"
  "multilabel scene"
  "multilabel movielens"
  "longtail digits-lt"
  "longtail fashion-mnist-lt"
  "flooding fashion-mnist --seeds 3 --threads 1"
  "tailr fashion-mnist-noise0 --threads 1"
  "tailr fashion-mnist-noise20 --threads 1"
  "tailr fashion-mnist-noise40 --threads 1"
  "exact letter --threads 1"
  "exact satellite --threads 1"
  "exact vehicle --threads 1"
  "exact vowel --threads 1"
  "exact dna --threads 1"
  "exact soybean --threads 1"
  "exact glass --threads 1"
  "closed_form fashion-mnist --threads 1"
  "closed_form satellite --threads 1"
  "closed_form letter --threads 1"
  "focal fashion-mnist-bag1 --threads 1"
  "can dna --threads 1"
  "can satellite --threads 1"
  "can fashion-mnist --threads 1"
  "can soybean --threads 1"
  "can letter --threads 1"
)
for entry in "${runs[@]}"; do
  read -r experiment dataset extra <<<"$entry"
  out="docs/experiments/$experiment-$dataset"
  if [ "${1:-}" = "--fresh" ]; then rm -rf "$out"; fi
  logitkit run "$experiment" --dataset "$dataset" --seeds 5 --out "$out" --no-progress ${extra:-}
done
python - <<'PY'
import pathlib
from logitkit.experiments.report import index
root = pathlib.Path("docs/experiments")
dirs = [d for d in sorted(root.iterdir()) if (d / "results.jsonl").is_file()]
(root / "results.md").write_text(index(dirs, relative_to=root))
PY
