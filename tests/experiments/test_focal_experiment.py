"""The focal experiment's --quick run (a few of its methods): data, records, the softened = focal identity."""

from __future__ import annotations

import pytest
import torch

from logitkit import experiments
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results
from tests.experiments._claims_helpers import need


def test_focal_quick(tmp_path):
    need("fashion-mnist")
    torch.set_num_threads(1)
    methods = ["bce", "bce_a0.25", "focal_g1", "soft_k1", "focal_g2_a0.25"]
    out = experiments.run("focal", seeds=1, quick=True, out=tmp_path / "run", progress=False, methods=methods)
    records = {r["method"]: r for r in read_results(out / "results.jsonl")}
    assert set(records) == set(methods)
    for r in records.values():
        m = r["metrics"]
        assert 0.02 < m["ap"] <= 1 and 0 <= m["f1"] <= 1 and 0 <= m["tuned_f1"] <= 1
    # Softened truncation with K = 1 (margin 0.5) is focal loss with gamma 1: the same training run.
    assert records["soft_k1"]["metrics"] == pytest.approx(records["focal_g1"]["metrics"], abs=1e-6)
    markdown, _ = render(out)
    assert "1 % positives" in markdown and "train 17/1682" in markdown and "test 20/2000" in markdown
    assert "focal g2 a0.25 AP >= best alpha-balanced BCE" in markdown
