"""The CAN experiment's --quick run: one cached model per seed shared by the three rows; the report."""

from __future__ import annotations

import torch

from logitkit import experiments
from logitkit.experiments.can import _settings
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results
from tests.experiments._claims_helpers import need


def test_can_grid_respects_class_count():
    assert len(list(_settings(26))) == 54
    assert {s["top_k"] for s in _settings(3)} == {2, 3} and len(list(_settings(3))) == 36


def test_can_quick(tmp_path):
    need("dna")
    torch.set_num_threads(1)
    out = experiments.run("can", dataset="dna", seeds=1, quick=True, out=tmp_path / "run", progress=False)
    records = {r["method"]: r for r in read_results(out / "results.jsonl")}
    assert set(records) == {"ce", "can_post", "can_val"}
    assert records["ce"]["metrics"]["changed"] == 0
    assert 0.7 < records["ce"]["metrics"]["accuracy"] < 1  # DNA, 3 classes
    for name in ("can_post", "can_val"):  # CAN moves few predictions of a confident 3-class model
        assert abs(records[name]["metrics"]["accuracy"] - records["ce"]["metrics"]["accuracy"]) < 0.05
    assert len(list((out / "outputs").glob("can-seed0-*.npz"))) == 1
    markdown, _ = render(out)
    assert "| can_val | 1 |" in markdown and "CAN (chosen on validation) accuracy >= CE" in markdown
