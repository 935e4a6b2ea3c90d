"""ClosedFormClassifier.fit against scikit-learn's LogisticRegression (lbfgs) on real features (issue #7).

Each case times one ``fit`` of both estimators on the same standardised training features (the
scaler is fitted outside the timing, on the training subset) and reports, as metrics, the test
accuracy of both and their difference, averaged over several random training subsets for the
small sizes. Training sizes run from few-shot (10 per class) to the full training split.

Data: scikit-learn's bundled ``load_digits``, ``load_wine``, ``load_breast_cancer`` (70 / 30
stratified split, seed 0) and Fashion-MNIST read from the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``; official test set, pixels / 255),
skipped when absent. Peer: ``LogisticRegression()`` with scikit-learn's defaults (lbfgs, C = 1,
max_iter = 100; its iteration count is reported).

Run single-threaded on a shared machine::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        python -m benchmarks.run models --min-run-time 1 --threads 1

With the default thread pools and other processes on the cores, OpenBLAS's spinning worker threads
slowed ``LogisticRegression.fit`` on digits from 16 ms to 2.7-4.7 s (with or without torch in the
process), which says nothing about either method.
"""

from __future__ import annotations

import functools
import gzip
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import Case, register

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
DRAWS = 5  # training subsets averaged for the accuracy metrics of sizes <= 100 per class


def _idx(path: str, header: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


@functools.cache
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(train X, train y, test X, test y) as float64 / int64, or None when unavailable."""
    if name == "fashion-mnist":
        if not os.path.isdir(FASHION_MNIST):
            return None
        part = {
            split: (
                _idx(f"{FASHION_MNIST}/{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 784) / 255.0,
                _idx(f"{FASHION_MNIST}/{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int64),
            )
            for split, prefix in (("train", "train"), ("test", "t10k"))
        }
        return (*part["train"], *part["test"])
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return x_tr.astype(np.float64), y_tr.astype(np.int64), x_te.astype(np.float64), y_te.astype(np.int64)


def _subset(name: str, per_class: int | None, draw: int) -> tuple[np.ndarray, ...]:
    """Standardised (train X, train y, test X, test y) with ``per_class`` samples of each class."""
    from sklearn.preprocessing import StandardScaler

    x_tr, y_tr, x_te, y_te = _dataset(name)  # type: ignore[misc]
    if per_class is not None:
        rng = np.random.default_rng(draw)
        rows = np.concatenate(
            [rng.choice(np.flatnonzero(y_tr == c), per_class, replace=False) for c in np.unique(y_tr)]
        )
        x_tr, y_tr = x_tr[rows], y_tr[rows]
    scaler = StandardScaler().fit(x_tr)
    return scaler.transform(x_tr), y_tr, scaler.transform(x_te), y_te


def _ours(ridge: float | str) -> Callable[..., Any]:
    def fit(X, y):
        from logitkit.models import ClosedFormClassifier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # singular covariance at ridge = 0
            return ClosedFormClassifier(ridge=ridge).fit(X, y)

    return fit


def _peer(X, y):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression().fit(X, y)


def _accuracies(name: str, per_class: int | None, ours: Callable[..., Any]) -> dict[str, Any]:
    draws = DRAWS if per_class is not None and per_class <= 100 else 1
    a, b, iters = [], [], []
    for draw in range(draws):
        x_tr, y_tr, x_te, y_te = _subset(name, per_class, draw)
        a.append(ours(x_tr, y_tr).score(x_te, y_te))
        peer = _peer(x_tr, y_tr)
        b.append(peer.score(x_te, y_te))
        iters.append(int(np.max(peer.n_iter_)))
    return {
        "ours_accuracy": float(np.mean(a)),
        "peer_accuracy": float(np.mean(b)),
        "accuracy_diff": float(np.mean(a) - np.mean(b)),
        "draws": draws,
        "peer_max_iterations": int(max(iters)),
    }


SIZES = {
    "digits": [10, 100, None],
    "wine": [10, None],
    "breast_cancer": [10, 100, None],
    "fashion-mnist": [10, 100, 500],
}


@register("models")
def cases():
    for name, sizes in SIZES.items():
        data = _dataset(name)
        if data is None:
            continue
        x_tr, y_tr = data[0], data[1]
        classes, dim = len(np.unique(y_tr)), x_tr.shape[1]
        for per_class in sizes:
            n = len(y_tr) if per_class is None else per_class * classes
            size = "full" if per_class is None else f"{per_class}/class"
            for ridge in (0.0, "auto"):

                def setup(device: str, name=name, per_class=per_class) -> dict[str, Any]:
                    x, y, _, _ = _subset(name, per_class, 0)
                    return {"X": x, "y": y}

                yield Case(
                    "models",
                    f"{name} {size} (N={n}, d={dim}, C={classes}) ridge={ridge}",
                    setup,
                    (f"ClosedFormClassifier(ridge={ridge!r}).fit", _ours(ridge)),
                    ("sklearn LogisticRegression().fit", _peer),
                    backward=False,
                    notes="fit only (no backward); standardised features; single-threaded BLAS",
                    input_bytes=lambda inputs: inputs["X"].nbytes,
                    extra=functools.partial(_accuracies, name, per_class, _ours(ridge)),
                )
