"""TaiLr under symmetric label noise (post 9526's motivation: robust to dirty low-probability samples).

reproduction_targets.md section 13, protocol B, scaled down: a 5,000-image stratified Fashion-MNIST
training subset (instead of 20,000) whose labels are flipped to a uniformly random *other* class
with probability 0 / 20 / 40 % (datasets ``fashion-mnist-noise0`` / ``-noise20`` / ``-noise40``);
MLP 784-256-256-10, Adam 1e-3, batch 128, 20 epochs, last epoch evaluated on the clean official
test set. CE vs label smoothing 0.1 vs TaiLr (weighted form, floor b = 0.2) with gamma in
{0.1, 0.5, 0.8}, and the closed form (b = 0) at gamma 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import logitkit.functional as LF
from logitkit.experiments import _claims as C
from logitkit.experiments._spec import (
    Check,
    Claim,
    Experiment,
    Method,
    Prepared,
    TrainConfig,
    TrialResult,
)
from logitkit.experiments.train import make_mlp

NOISE = {"fashion-mnist-noise0": 0.0, "fashion-mnist-noise20": 0.2, "fashion-mnist-noise40": 0.4}
SIZES = {False: 5000, True: 1000}
NOISE_SEED = 1


def flip_labels(y: np.ndarray, rate: float, classes: int, seed: int) -> np.ndarray:
    """Symmetric noise: each label, with probability ``rate``, becomes a uniformly random other class."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < rate
    shift = rng.integers(1, classes, size=len(y))
    return np.where(flip, (y + shift) % classes, y)


def _prepare(dataset, *, quick, device, params):
    if dataset not in NOISE:
        raise ValueError(f"dataset: expected one of {sorted(NOISE)}, got {dataset!r}")
    rate = NOISE[dataset]
    arrays = C.fashion_subsets(SIZES[quick], 0, n_test=2000 if quick else None)
    clean = arrays["y_train"]
    arrays["y_train"] = flip_labels(clean, rate, 10, NOISE_SEED)
    actual = float((arrays["y_train"] != clean).mean())
    counts = [int((arrays["y_train"] == c).sum()) for c in range(10)]
    return Prepared(
        name=dataset,
        describe=f"Fashion-MNIST: {len(clean)} training images (stratified, seed 0), {rate:.0%} symmetric "
        f"label noise (seed {NOISE_SEED}; {actual:.1%} of labels flipped); clean official "
        + ("test images (2,000)" if quick else "10,000 test images"),
        split="stratified subset of the official training set (seed 0); official test set (clean labels)",
        data=C.tensors(arrays, device),
        sizes=(len(clean), len(arrays["y_test"])),
        classes=arrays["classes"],
        train_counts=counts,
        params={"noise": rate},
    )


def _loss(method):
    p = method.params
    if p["loss"] == "ce":
        return lambda x, y: F.cross_entropy(x, y, label_smoothing=p.get("label_smoothing", 0.0))
    return lambda x, y: LF.tailr_loss(x, y, gamma=p["gamma"], min_weight=p["min_weight"], form=p["form"])


def _trial(method, seed, prepared, config, run):
    d = prepared.data
    torch.manual_seed(seed)
    model = make_mlp(784, 10, config.hidden, config.dropout).to(run.device)
    curve = []

    def on_epoch(epoch):
        curve.append(C.evaluate(C.logits_of(model, d["x_test"]), d["y_test"])["accuracy"])
        run.tick(f"epoch {epoch + 1}")

    C.fit(
        model, d["x_train"], d["y_train"], _loss(method), epochs=config.epochs,
        batch_size=config.batch_size, lr=config.lr, seed=seed, on_epoch=on_epoch,
    )  # fmt: skip
    logits = C.logits_of(model, d["x_test"])
    metrics = C.evaluate(logits, d["y_test"])
    metrics["train_accuracy"] = C.evaluate(C.logits_of(model, d["x_train"]), d["y_train"])["accuracy"]
    rel = C.reliability(logits, d["y_test"])
    pred = logits.argmax(1)
    per_class = [float((pred[d["y_test"] == c] == c).double().mean()) for c in range(10)]
    history = {"val": [100 * a for a in curve], **{f"rel_{k}": v for k, v in rel.items()}}
    return TrialResult(metrics=metrics, per_class=per_class, history=history, best_epoch=config.epochs - 1)


def _plots(summary):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = summary.methods
    fig, axes = plt.subplots(1, len(methods), figsize=(2.2 * len(methods), 2.5), sharey=True)
    for ax, method in zip(np.atleast_1d(axes), methods, strict=True):
        recs = [r["history"] for (m, _), r in summary.records.items() if m == method]
        conf = np.sum([h["rel_conf_sum"] for h in recs], 0)
        correct = np.sum([h["rel_correct_sum"] for h in recs], 0)
        count = np.sum([h["rel_count"] for h in recs], 0)
        bins = len(count)
        centres = (np.arange(bins) + 0.5) / bins
        acc = np.divide(correct, count, out=np.full(bins, np.nan), where=count > 0)
        ax.bar(centres, acc, width=1 / bins, edgecolor="black", alpha=0.7, label="accuracy")
        mean_conf = np.divide(conf, count, out=np.full(bins, np.nan), where=count > 0)
        ax.plot(mean_conf, acc, "o", color="C3", markersize=3)
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set_title(method, fontsize=8)
        ax.set_xlabel("confidence", fontsize=7)
        ax.tick_params(labelsize=6)
    np.atleast_1d(axes)[0].set_ylabel("accuracy", fontsize=7)
    fig.tight_layout()
    fig.savefig(summary.dir / "reliability.png", dpi=110)
    plt.close(fig)
    return [("reliability.png", "Reliability diagrams on the clean test set (10 bins, pooled over seeds).")]


METHODS = (
    Method("ce", "cross-entropy", params={"loss": "ce"}),
    Method("ls0.1", "cross-entropy, label smoothing 0.1", params={"loss": "ce", "label_smoothing": 0.1}),
    *(
        Method(f"tailr_g{g:g}", f"TaiLr, gamma {g:g}, weighted form, floor b = 0.2",
               params={"loss": "tailr", "gamma": g, "min_weight": 0.2, "form": "weighted"})
        for g in (0.1, 0.5, 0.8)
    ),
    Method("tailr_g0.5_closed", "TaiLr, gamma 0.5, closed form (b = 0)",
           params={"loss": "tailr", "gamma": 0.5, "min_weight": 0.0, "form": "closed"}),
)  # fmt: skip
EXPERIMENT = Experiment(
    name="tailr",
    title="TaiLr vs cross-entropy under symmetric label noise",
    task="multiclass",
    datasets=tuple(NOISE),
    methods=METHODS,
    baseline="ce",
    metrics=("accuracy", "nll", "ece", "train_accuracy"),
    claim=Claim(
        "TaiLr (gamma 0.5, the middle of the grid, fixed up front) reaches at least CE's clean-test "
        "accuracy with a lower ECE under label noise",
        "post 9526 (robust to dirty low-probability samples); reproduction_targets.md section 13 B",
        (
            Check("TaiLr gamma 0.5 accuracy >= CE", "tailr_g0.5", "accuracy", ("ce",)),
            Check("TaiLr gamma 0.5 ECE <= CE", "tailr_g0.5", "ece", ("ce",)),
        ),
    ),
    train=TrainConfig(hidden=(256, 256), epochs=20, batch_size=128, lr=1e-3),
    quick={"epochs": 3},
    prepare=_prepare,
    trial=_trial,
    curve_label="clean test accuracy (%)",
    extra_plots=_plots,
    notes=(
        "Model: MLP 784-256-256-10 (ReLU), Adam lr 1e-3, batch 128, 20 epochs, last epoch evaluated "
        "(no early stopping: a noisy validation set would reward memorisation less, but the "
        "protocol has none). Training labels flipped to a uniformly random other class (seed 1); "
        "test labels clean. The training subset and the noise are fixed; a seed changes the "
        "initialisation and the batch order. train acc. is measured against the noisy training "
        "labels (memorisation). Scaled down from reproduction_targets.md section 13 B: 5,000 "
        "instead of 20,000 training images."
    ),
)
