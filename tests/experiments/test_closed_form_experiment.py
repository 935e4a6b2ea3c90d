"""The closed-form experiment's --quick run: few-shot draws, records and report."""

from __future__ import annotations

import numpy as np
import torch

from logitkit import experiments
from logitkit.experiments.closed_form import few_shot
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results
from tests.experiments._claims_helpers import need


def test_few_shot_draws_per_class():
    y = np.repeat(np.arange(4), 30)
    idx = few_shot(y, 5, seed=0)
    assert np.bincount(y[idx]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(idx, few_shot(y, 5, seed=0)) and not np.array_equal(idx, few_shot(y, 5, seed=1))
    assert len(few_shot(y, "full", seed=3)) == 120


def test_closed_form_quick(tmp_path):
    need("satellite")
    torch.set_num_threads(1)
    out = experiments.run(
        "closed_form", dataset="satellite", seeds=1, quick=True, out=tmp_path / "run", progress=False
    )
    records = {r["method"]: r for r in read_results(out / "results.jsonl")}
    assert len(records) == 15 and {"cf@5", "logreg@50", "gd@full"} <= set(records)
    full = {m: records[f"{m}@full"]["metrics"]["accuracy"] for m in ("cf", "logreg")}
    # Satellite with every linear model: well above the 6-class chance level and the 24% majority.
    assert full["cf"] > 0.75 and full["logreg"] > 0.75
    assert records["cf@10"]["metrics"]["train_accuracy"] > 0.9  # 60 points, 36 features
    markdown, _ = render(out)
    assert "| cf@50 | 1 |" in markdown and "cf@1 accuracy >= best of gd@1, logreg@1" in markdown
