"""The EXACT experiment's --quick run on an mlbench set: records, the learning-rate choice, the report."""

from __future__ import annotations

import torch

from logitkit import experiments
from logitkit.experiments.exact import loss_fn
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results
from tests.experiments._claims_helpers import need


def test_exact_losses_are_the_protocol_losses():
    x = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    y = torch.tensor([0, 2])
    p = torch.softmax(x, 1)[torch.arange(2), y]
    assert torch.allclose(loss_fn("smooth_accuracy")(x, y), 1 - p.mean())
    assert torch.allclose(loss_fn("neg_log_mean_p")(x, y), -p.mean().log())
    assert torch.allclose(loss_fn("ce")(x, y), -p.log().mean())
    # EXACT is 1 - P(arg max of x + N(0, I) is y); Monte Carlo check.
    noise = torch.randn(200000, 2, 3, generator=torch.Generator().manual_seed(0))
    hit = ((x + noise).argmax(2) == y).double().mean()
    assert abs(loss_fn("exact")(x, y).item() - (1 - hit.item())) < 5e-3


def test_exact_quick(tmp_path):
    need("vehicle")
    torch.set_num_threads(1)
    out = experiments.run(
        "exact", dataset="vehicle", seeds=1, quick=True, out=tmp_path / "run", progress=False
    )
    records = {r["method"]: r for r in read_results(out / "results.jsonl")}
    assert set(records) == {"ce", "hinge", "exact", "smooth_acc", "neg_log_mean_p"}
    for r in records.values():
        m = r["metrics"]
        assert m["log10_lr"] in (-3.0, -2.0, -1.0)
        assert 0.4 < m["accuracy"] <= 1  # 4 classes: well above chance after 60 steps
        assert len(r["per_class"]) == 4
    markdown, _ = render(out)
    assert "| exact | 1 |" in markdown and "EXACT accuracy >= best of CE, hinge" in markdown
    assert "600 random training rows" in markdown
