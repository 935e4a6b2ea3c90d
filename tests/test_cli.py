"""The logitkit command."""

from __future__ import annotations

from click.testing import CliRunner

import logitkit
from logitkit.cli import main


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and logitkit.__version__ in result.output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output


def test_demo_on_real_digits():
    result = CliRunner().invoke(main, ["demo", "--epochs", "60"])
    assert result.exit_code == 0, result.output
    assert "test 360" in result.output
    assert "| NLL" in result.output and "| ECE" in result.output


def test_demo_numbers():
    from logitkit.experiments.calibration_demo import expected_calibration_error, run

    r = run(epochs=60)
    assert 0.9 < r.accuracy <= 1.0  # linear softmax regression on digits: ~95%
    assert r.temperature > 0 and r.nll_after <= r.nll_before + 0.05
    import torch

    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4]], dtype=torch.float64)
    # Bin (0.8, 0.867] holds a correct 0.9 (gap 0.1); bin (0.533, 0.6] a wrong 0.6 (gap 0.6).
    assert abs(expected_calibration_error(probs, torch.tensor([0, 1])) - 0.35) < 1e-12


def test_help_everywhere():
    runner = CliRunner()
    for command in ([], ["list"], ["data"], ["run"], ["report"], ["demo"]):
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, command
    assert "--quick" in runner.invoke(main, ["run", "--help"]).output


def test_list_and_data():
    runner = CliRunner()
    result = runner.invoke(main, ["list"])
    assert result.exit_code == 0
    assert "multilabel:" in result.output and "yeast (default)" in result.output
    assert "zlpr" in result.output and "ce_can" in result.output
    result = runner.invoke(main, ["data"])
    assert result.exit_code == 0 and "digits-lt" in result.output and "embedded" in result.output
    result = runner.invoke(main, ["data", "yeast"])
    assert result.exit_code == 0 and "licence" in result.output and "river" in result.output
    assert runner.invoke(main, ["data", "nope"]).exit_code != 0


def test_run_quick_then_report(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["run", "longtail", "--quick", "--seeds", "2", "--out", str(out), "--no-progress"]
    result = runner.invoke(main, [*args, "--methods", "ce,ce_posthoc_la"])
    assert result.exit_code == 0, result.output
    assert "| ce | 2 |" in result.output and "| ce_posthoc_la | 2 |" in result.output
    assert "not tested: no results for la_loss" in result.output
    assert "CE + post-hoc LA balanced error < CE: " in result.output
    result = runner.invoke(main, ["report", str(out), "--no-plots"])
    assert result.exit_code == 0 and "| ce | 2 |" in result.output
    bad = runner.invoke(
        main, ["run", "longtail", "--dataset", "yeast", "--quick", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code != 0 and "needs a multiclass dataset" in bad.output
    assert runner.invoke(main, ["run", "nope"]).exit_code != 0


def test_run_on_your_own_csv(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] > 0.8).astype(int) + (x[:, 1] > 1.0).astype(int)
    csv = tmp_path / "mine.csv"
    csv.write_text(
        "\n".join(
            ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in r) + f",{t}" for r, t in zip(x, y, strict=True)]
        )
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "longtail",
            "--dataset",
            str(csv),
            "--quick",
            "--seeds",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mine: 76 train / 19 val / 25 test, 4 features, 3 classes" in result.output
