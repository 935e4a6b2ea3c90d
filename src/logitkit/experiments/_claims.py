"""Shared pieces of the classification-claim experiments (issue #9): data subsets, a small training
loop, evaluation metrics and trial caching."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from logitkit.experiments import metrics as M
from logitkit.experiments._spec import define_metric

__all__ = ["cached", "evaluate", "fashion_subsets", "fit", "stratified_take"]

define_metric("nll", "test NLL", lower_is_better=True, percent=False)
define_metric("train_accuracy", "train acc.", lower_is_better=False, percent=True)
define_metric("val_accuracy", "val. acc.", lower_is_better=False, percent=True)


def stratified_take(y: np.ndarray, per_class: int, rng: np.random.Generator, exclude=None) -> np.ndarray:
    """``per_class`` random indices of every class (sorted), avoiding ``exclude``."""
    allowed = np.ones(len(y), bool)
    if exclude is not None:
        allowed[exclude] = False
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero((y == c) & allowed)
        out.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(out))


def fashion_subsets(
    n_train: int, n_val: int, seed: int = 0, n_test: int | None = None
) -> dict[str, np.ndarray]:
    """Fashion-MNIST: a stratified ``n_train`` training subset and an ``n_val`` validation subset, both
    drawn (seed ``seed``) from the official 60,000 training images, and the official 10,000 test
    images (the registry's 1,000 validation + 9,000 test images) as the test set, or a stratified
    ``n_test`` of them (``--quick`` runs)."""
    from logitkit import data

    ds = data.load("fashion-mnist")
    rng = np.random.default_rng(seed)
    train = stratified_take(ds.y_train, n_train // 10, rng)
    val = stratified_take(ds.y_train, n_val // 10, rng, exclude=train)
    x_test, y_test = np.concatenate([ds.x_val, ds.x_test]), np.concatenate([ds.y_val, ds.y_test])
    if n_test is not None:
        test = stratified_take(y_test, n_test // 10, rng)
        x_test, y_test = x_test[test], y_test[test]
    return {
        "x_train": ds.x_train[train], "y_train": ds.y_train[train],
        "x_val": ds.x_train[val], "y_val": ds.y_train[val],
        "x_test": x_test, "y_test": y_test, "classes": ds.class_names,
    }  # fmt: skip


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    weight_decay: float = 0.0,
    on_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Mini-batch Adam on in-memory tensors; ``on_epoch(epoch)`` after every epoch (model in train mode)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(y)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch)
    return model


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    out = torch.cat([model(x[i : i + 8192]) for i in range(0, len(x), 8192)])
    model.train()
    return out


def evaluate(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy, mean NLL (nats) and top-label ECE of ``logits`` against labels ``y``."""
    logits = logits.double()
    nll = torch.nn.functional.cross_entropy(logits, y).item()
    probs = torch.softmax(logits, 1).numpy()
    return {
        "accuracy": float((probs.argmax(1) == y.numpy()).mean()),
        "nll": nll,
        "ece": M.top_label_ece(probs, y.numpy()),
    }


def reliability(logits: torch.Tensor, y: torch.Tensor, bins: int = 10) -> dict[str, list]:
    """Per-bin (equal width) confidence sum, correct sum and count of the top label (for diagrams)."""
    probs = torch.softmax(logits.double(), 1).numpy()
    conf = probs.max(1)
    correct = (probs.argmax(1) == y.numpy()).astype(np.float64)
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    return {
        "conf_sum": np.bincount(which, conf, bins).tolist(),
        "correct_sum": np.bincount(which, correct, bins).tolist(),
        "count": np.bincount(which, minlength=bins).astype(float).tolist(),
    }


def cached(cache_dir: pathlib.Path, key: str, compute: Callable[[], dict]) -> dict:
    """``compute()`` once per ``key`` in ``cache_dir`` (a JSON file written atomically)."""
    path = pathlib.Path(cache_dir) / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)
    return value


def tensors(arrays: dict, device) -> dict[str, torch.Tensor]:
    """The ``x_*`` / ``y_*`` arrays as float32 / int64 tensors on ``device``."""
    out = {}
    for k, v in arrays.items():
        if k.startswith("x_"):
            out[k] = torch.as_tensor(np.asarray(v, np.float32), device=device)
        elif k.startswith("y_"):
            out[k] = torch.as_tensor(np.asarray(v, np.int64), device=device)
    return out
