"""The flooding experiment's --quick run: records, the validation choice and the report."""

from __future__ import annotations

import torch

from logitkit import experiments
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results
from tests.experiments._claims_helpers import need


def test_flooding_quick(tmp_path):
    need("fashion-mnist")
    torch.set_num_threads(1)
    out = experiments.run("flooding", seeds=1, quick=True, out=tmp_path / "run", progress=False)
    records = {r["method"]: r for r in read_results(out / "results.jsonl")}
    assert set(records) == {"b0", "b0.01", "b0.02", "b0.05", "b0.1", "flood_val"}
    for name in ("b0", "b0.01", "b0.02", "b0.05", "b0.1"):
        m = records[name]["metrics"]
        assert m["flood_level"] == float(name[1:])
        assert 0.3 < m["accuracy"] < 1 and m["nll"] > 0
        assert len(records[name]["history"]["val"]) == 4  # test NLL per epoch
    # flood_val reports the (cached) model of the level with the best validation accuracy.
    chosen = records["flood_val"]["metrics"]
    best = max(records[f"b{b:g}"]["metrics"]["val_accuracy"] for b in (0, 0.01, 0.02, 0.05, 0.1))
    assert chosen["val_accuracy"] == best
    assert records[f"b{chosen['flood_level']:g}"]["metrics"] == chosen
    markdown, _ = render(out)
    assert "| flood_val | 1 |" in markdown and "test_loss.png" in markdown
    assert (out / "test_loss.png").is_file()
    assert "2,000 instead of 10,000" in markdown
