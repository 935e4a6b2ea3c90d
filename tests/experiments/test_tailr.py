"""The TaiLr label-noise experiment's --quick run: noise, records and report."""

from __future__ import annotations

import numpy as np
import torch

from logitkit import experiments
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results
from logitkit.experiments.tailr import flip_labels
from tests.experiments._claims_helpers import need


def test_flip_labels_is_symmetric_noise():
    y = np.repeat(np.arange(10), 2000)
    noisy = flip_labels(y, 0.4, 10, 0)
    flipped = noisy != y
    assert abs(flipped.mean() - 0.4) < 0.01
    # Flipped labels land on every other class about equally often, never on the true class.
    shift = (noisy[flipped] - y[flipped]) % 10
    assert shift.min() == 1 and np.all(
        np.abs(np.bincount(shift, minlength=10)[1:] / flipped.sum() - 1 / 9) < 0.01
    )
    assert np.array_equal(flip_labels(y, 0.0, 10, 0), y)


def test_tailr_quick(tmp_path):
    need("fashion-mnist")
    torch.set_num_threads(1)
    out = experiments.run(
        "tailr", dataset="fashion-mnist-noise40", seeds=1, quick=True, out=tmp_path / "run", progress=False
    )
    records = {r["method"]: r for r in read_results(out / "results.jsonl")}
    assert set(records) == {"ce", "ls0.1", "tailr_g0.1", "tailr_g0.5", "tailr_g0.8", "tailr_g0.5_closed"}
    for r in records.values():
        m = r["metrics"]
        assert 0.3 < m["accuracy"] < 1 and 0 <= m["ece"] < 1 and m["nll"] > 0
        # Noisy training labels: the models cannot fit them well after 3 epochs.
        assert m["train_accuracy"] < 0.75
        assert sum(r["history"]["rel_count"]) == 2000  # --quick: 2,000 test images
    markdown, _ = render(out)
    assert "40% symmetric label noise" in markdown and "reliability.png" in markdown
    assert (out / "reliability.png").is_file()
    assert "Verdict" in markdown
