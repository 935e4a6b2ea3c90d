#!/usr/bin/env bash
# Re-run every recorded experiment and re-render its report in docs/experiments/<experiment>-<dataset>/.
#
#   bash docs/experiments/record.sh           # resume: train only (method, seed) pairs not recorded yet
#   bash docs/experiments/record.sh --fresh   # start over (after a change to training or data code)
#
# Needs the registry datasets (`logitkit data`; .ci/run shows how to provision them).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=(
  "multilabel yeast"
  "multilabel scene"
  "multilabel movielens"
  "longtail digits-lt"
  "longtail fashion-mnist-lt"
  "flooding fashion-mnist"
  "tailr fashion-mnist-noise0"
  "tailr fashion-mnist-noise20"
  "tailr fashion-mnist-noise40"
  "exact letter"
  "exact satellite"
  "exact vehicle"
  "exact vowel"
  "exact dna"
  "exact soybean"
  "exact glass"
  "closed_form fashion-mnist"
  "closed_form satellite"
  "closed_form letter"
  "focal fashion-mnist-bag1"
  "can dna"
  "can satellite"
  "can fashion-mnist"
  "can soybean"
  "can letter"
  "vae_density fashion-mnist 3"
  "am_softmax kjv-web 3"
  "attention austen 3"
  "droptoken austen 3"
  "topk letter"
  "entropy_sampling pydoc-topics 3"
  "entropy_sampling austen 3"
)
for entry in "${runs[@]}"; do
  read -r experiment dataset seeds <<<"$entry"
  out="docs/experiments/$experiment-$dataset"
  if [ "${1:-}" = "--fresh" ]; then rm -rf "$out"; fi
  logitkit run "$experiment" --dataset "$dataset" --seeds "${seeds:-5}" --threads 1 --out "$out" --no-progress
done
python - <<'PY'
import pathlib
from logitkit.experiments.report import index
root = pathlib.Path("docs/experiments")
dirs = [d for d in sorted(root.iterdir()) if (d / "results.jsonl").is_file()]
(root / "results.md").write_text(index(dirs, relative_to=root))
PY
