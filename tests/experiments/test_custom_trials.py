"""Custom experiments: Experiment.prepare / Experiment.trial through the shared run loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from logitkit import experiments
from logitkit.experiments import _spec
from logitkit.experiments.report import render
from logitkit.experiments.runner import RunConflict, read_results, run

_spec.define_metric("toy_nll", "toy NLL", lower_is_better=True, percent=False)


def _prepare(dataset, *, quick, device, params):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200 if quick else 400, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=len(x)) > 0).astype(np.int64)
    return _spec.Prepared(
        name=dataset, describe=f"toy data ({len(y)} points)", split="first half / second half",
        data=(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)),
        sizes=(len(y) // 2, len(y) - len(y) // 2), classes=("neg", "pos"),
        train_counts=(int((y[: len(y) // 2] == 0).sum()), int((y[: len(y) // 2] == 1).sum())),
        params=params,
    )  # fmt: skip


CALLS: list[tuple[str, int]] = []


def _trial(method, seed, prepared, config, run_info):
    CALLS.append((method.name, seed))
    x, y = prepared.data
    half = len(y) // 2
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=method.params["lr"])
    curve = []
    for epoch in range(config.epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[:half]), y[:half])
        loss.backward()
        opt.step()
        curve.append(loss.item())
        run_info.tick(f"epoch {epoch + 1}")
    with torch.no_grad():
        logits = model(x[half:])
    correct = (logits.argmax(1) == y[half:]).double()
    return _spec.TrialResult(
        metrics={
            "accuracy": correct.mean().item(),
            "toy_nll": torch.nn.functional.cross_entropy(logits, y[half:]).item(),
        },
        per_class=[correct[y[half:] == c].mean().item() for c in (0, 1)],
        history={"val": curve},
        best_epoch=config.epochs - 1,
    )


def _plots(summary):
    (summary.dir / "toy.txt").write_text("drawn")
    return [("toy.png", "a custom plot")]


TOY = _spec.Experiment(
    name="toy-custom",
    title="A custom experiment",
    task="multiclass",
    datasets=("toy",),
    methods=(
        _spec.Method("slow", "SGD lr 0.01", params={"lr": 0.01}),
        _spec.Method("fast", "SGD lr 0.5", params={"lr": 0.5}),
    ),
    baseline="slow",
    metrics=("accuracy", "toy_nll"),
    claim=_spec.Claim(
        "a larger step trains further in few epochs",
        "this test",
        (_spec.Check("fast has a lower NLL", "fast", "toy_nll", ("slow",), strict=True),),
    ),
    train=_spec.TrainConfig(epochs=20),
    quick={"epochs": 5},
    prepare=_prepare,
    trial=_trial,
    curve_label="training loss (nats)",
    extra_plots=_plots,
    notes="Model: a linear softmax classifier trained full-batch.",
)


@pytest.fixture
def registered():
    experiments.register(TOY)
    yield TOY
    experiments._REGISTRY.pop(TOY.name, None)


def test_custom_trials_run_resume_and_report(tmp_path, registered):
    CALLS.clear()
    out = run(registered, seeds=3, out=tmp_path / "run", progress=False)
    assert len(CALLS) == 6
    records = read_results(out / "results.jsonl")
    assert {(r["method"], r["seed"]) for r in records} == {(m, s) for m in ("slow", "fast") for s in range(3)}
    assert all(len(r["history"]["val"]) == 20 for r in records)
    run(registered, seeds=4, out=tmp_path / "run", progress=False)  # resumes: only seed 3 is new
    assert len(CALLS) == 8
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["sizes"] == [200, 200]
    assert config["experiment"]["metric_info"]["toy_nll"] == {
        "label": "toy NLL", "lower_is_better": True, "percent": False,
    }  # fmt: skip
    markdown, _ = render(out)
    assert "**Verdict: HOLDS on this run.**" in markdown
    # Raw units for the NLL: a value below 1 nat, not a percentage.
    row = next(line for line in markdown.splitlines() if line.startswith("| fast | 4 |"))
    nll = float(row.split("|")[4].split("±")[0])
    assert 0 < nll < 1
    assert "percent; toy NLL as raw values" in markdown
    assert "Model: a linear softmax classifier" in markdown and "MLP" not in markdown
    assert (out / "training.png").is_file() and (out / "per_class.png").is_file()
    assert (out / "toy.txt").read_text() == "drawn" and "a custom plot" in markdown


def test_custom_run_refuses_other_data(tmp_path, registered):
    run(registered, seeds=1, out=tmp_path / "run", progress=False, quick=True)
    with pytest.raises(RunConflict, match="different settings"):
        run(registered, seeds=1, out=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="reads its own data"):
        run(registered, seeds=1, out=tmp_path / "other", progress=False, target="y")
