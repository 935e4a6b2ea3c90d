"""The ``topk`` experiment: the soft top-k loss, and a --quick run's records and report."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from logitkit import data, experiments
from logitkit.data._paths import require_data
from logitkit.experiments import topk
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results, run


def test_topk_loss_is_cross_entropy_at_k1_for_exp_and_esp():
    torch.manual_seed(0)
    logits = torch.randn(6, 9, dtype=torch.float64) * 3
    y = torch.tensor([0, 3, 8, 2, 2, 5])
    for method in ("exp", "esp"):
        for tau in (0.5, 2.0):
            got = topk.topk_loss(logits, y, k=1, temperature=tau, method=method)
            torch.testing.assert_close(got, F.cross_entropy(logits / tau, y), rtol=1e-10, atol=1e-12)


def test_topk_loss_vanishes_once_the_target_is_in_the_top_k():
    logits = torch.tensor([[9.0, 8.0, 7.0, 0.0, -1.0], [0.0, 9.0, 8.0, 7.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([2, 4])  # third largest of row 0 (in the top 3); the smallest of row 1
    for method in topk.SOFT_METHODS:
        per_row = [
            topk.topk_loss(logits[i : i + 1], y[i : i + 1], k=3, temperature=0.05, method=method).item()
            for i in range(2)
        ]
        assert per_row[0] < 1e-6, method
        assert per_row[1] > 50, method  # far outside the top 3: a large loss, finite
        # A rank-3 target costs (almost) nothing, where cross-entropy still charges it.
        assert F.cross_entropy(logits[:1] / 0.05, y[:1]).item() > 30


def test_topk_loss_gradient_is_finite_for_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0, 3.0, 2.0, 1.0]], requires_grad=True)
    for method in topk.SOFT_METHODS:
        loss = topk.topk_loss(logits, torch.tensor([1]), k=2, temperature=1.0, method=method)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), method


def test_topk_quick_run_records_and_report(tmp_path):
    info = data.get("letter")
    if not info.available():
        message = f"dataset letter missing; obtain with: {info.obtain[0]}"
        if require_data():
            pytest.fail(message)
        pytest.skip(message)
    out = run(experiments.get("topk"), seeds=1, out=tmp_path / "run", progress=False, quick=True)
    records = {r["method"]: r for r in read_results(out / "results.jsonl")}
    names = ["ce", "top5-sigmoid", "top5-exp", "top5-smooth", "top5-esp", "top1-exp", "top1-smooth"]
    assert sorted(records) == sorted(names)
    for name, r in records.items():
        m = r["metrics"]
        assert 0.2 < m["accuracy"] <= m["top5_accuracy"] <= 1.0, name
        assert m["temperature"] in topk.TEMPERATURES, name
        assert len(r["history"]["val"]) == 3 and len(r["history"]["test_top1"]) == 3, name
        assert r["history"]["val"] == r["history"]["val_top5"]
        assert len(r["per_class"]) == 26
    # k = 1 with the exp mask is cross-entropy: the same temperature, the same numbers.
    assert records["top1-exp"]["metrics"] == records["ce"]["metrics"]
    assert records["top1-exp"]["history"] == records["ce"]["history"]
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["sizes"] == [2000, 1000, 1000]
    markdown, _ = render(out)
    assert "**Verdict:" in markdown
    for soft in topk.SOFT_METHODS:
        assert f"top5-{soft} beats CE on top-5 accuracy" in markdown
    assert "| top5-esp | 1 |" in markdown and "chosen τ" in markdown
    assert (out / "topk_curves.png").is_file() and "topk_curves.png" in markdown
    assert (out / "training.png").is_file()
