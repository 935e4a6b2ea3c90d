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
