"""The entropy_sampling experiment: its helpers, and a --quick run through the shared runner."""

from __future__ import annotations

import math

import pytest
import torch

from logitkit import experiments
from logitkit.experiments import entropy_sampling as es
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results, run


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    method = experiments.Method("p", "", params={"kind": "top_p", "p": 0.9})
    q = es._log_probs(method, logits, 1.0).exp()
    torch.testing.assert_close(q, torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95)


def test_entropy_normalised_rows_have_the_target_entropy():
    logits = torch.randn(5, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    method = experiments.Method("e", "", params={"kind": "entnorm", "target": 1.5})
    logq = es._log_probs(method, logits, 1.0)
    entropy = -(logq.exp() * logq).sum(-1)
    torch.testing.assert_close(entropy, torch.full((5,), 1.5, dtype=torch.float64))
    # The order of the characters is kept.
    assert torch.equal(logq.argsort(-1), logits.argsort(-1))


def test_calibrated_temperature_matches_the_mean_entropy():
    logits = torch.randn(200, 50, generator=torch.Generator().manual_seed(1)) * 2
    tau = es._calibrate_temperature(logits, 2.0)
    p = torch.softmax(logits / tau, -1)
    assert -(p * p.log()).sum(-1).mean().item() == pytest.approx(2.0, abs=1e-4)


def test_ngram_stats():
    stats = es._ngram_stats(["a b a b a b", "c d e"])
    # word 2-grams: ab ba ab ba ab | cd de -> 4 distinct of 7; 3-grams: aba bab aba bab | cde -> 3 of 5
    assert stats["distinct2"] == pytest.approx(4 / 7)
    assert stats["distinct3"] == pytest.approx(3 / 5)
    assert stats["repetition"] == pytest.approx((0.5 + 0.0) / 2)


def test_quick_run_records_and_report(tmp_path):
    experiment = experiments.get("entropy_sampling")
    out = run(experiment, seeds=1, out=tmp_path / "run", progress=False, quick=True)
    records = {r["method"]: r["metrics"] for r in read_results(out / "results.jsonl")}
    assert set(records) == {m.name for m in experiment.methods}
    for h in es.TARGETS:
        entnorm = records[f"entnorm-H{h}"]
        # Entropy normalisation fixes every step's entropy; a temperature only its average.
        assert entnorm["step_entropy"] == pytest.approx(h, abs=1e-3)
        assert entnorm["entropy_spread"] < 1e-3
        assert records[f"temp-H{h}"]["entropy_spread"] > 0.1
        assert math.isfinite(entnorm["heldout_nll"]) and entnorm["heldout_coverage"] == 1.0
    # Lower targets sample more typical text under the model.
    assert records["entnorm-H1.0"]["sample_nll"] < records["entnorm-H2.0"]["sample_nll"]
    assert records["plain"]["temperature"] == 1.0 and records["plain"]["heldout_coverage"] == 1.0
    # Nucleus sampling gives some held-out characters probability 0: no finite held-out NLL.
    assert records["top-p-0.9"]["heldout_nll"] is None and records["top-p-0.9"]["heldout_coverage"] < 1
    for metrics in records.values():
        assert 0 <= metrics["distinct2"] <= 1 and 0 <= metrics["repetition"] <= 1

    markdown, _ = render(out)
    assert "| entnorm-H1.5 | 1 | 1.50" in markdown
    assert "**Verdict:" in markdown and "Model: a character GRU" in markdown
    assert (out / "tradeoff.png").is_file() and (out / "training.png").is_file()
    samples = markdown.split("## Samples", 1)[1]  # the experiment's own section of report.md
    assert "**entnorm-H2.0**" in samples and "⟶" in samples


def test_cli_lists_the_experiment_with_its_registry_corpora():
    from click.testing import CliRunner

    from logitkit.cli import main

    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0
    assert "entropy_sampling:" in result.output and "pydoc-topics (default), austen" in result.output
    assert "entnorm-H1.5" in result.output
