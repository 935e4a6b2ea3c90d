"""Constructed long tails: the exponential profile of CIFAR-10-LT (Cao et al., 2019).

Class ``c`` of ``C`` keeps

.. math::

    n_c = \\left\\lfloor n_{\\max}\\, \\rho^{-c/(C-1)} \\right\\rfloor, \\qquad c = 0, \\dots, C-1,

examples, ``ρ`` being the imbalance ratio ``n_0 / n_{C-1}``: the first ``n_c`` of the class after a
seeded shuffle. With Fashion-MNIST's 6,000 training images per class, ``ρ = 100`` keeps
6,000 … 60 (14,886 images), ``ρ = 50`` 16,796 and ``ρ = 10`` 6,000 … 600 (24,516).

Reference: K. Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss",
NeurIPS 2019; A. K. Menon et al., "Long-tail learning via logit adjustment", ICLR 2021.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["longtail_counts", "longtail_indices"]


def longtail_counts(n_max: int, num_classes: int, imbalance: float) -> np.ndarray:
    """Per-class sizes of the exponential profile, ``floor(n_max * imbalance ** (-c / (C - 1)))``.

    >>> longtail_counts(6000, 10, 100).tolist()
    [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    """
    if not imbalance >= 1:
        raise ValueError(f"imbalance: expected a ratio >= 1, got {imbalance}")
    if num_classes < 1 or n_max < 1:
        raise ValueError(f"n_max, num_classes: expected positive integers, got {n_max}, {num_classes}")
    if num_classes == 1:
        return np.array([n_max], dtype=np.int64)
    # The small relative slack keeps exact products (6000 * 100**-1 = 60) from flooring to 59.
    return np.array(
        [math.floor(n_max * imbalance ** (-c / (num_classes - 1)) * (1 + 1e-12)) for c in range(num_classes)],
        dtype=np.int64,
    )


def longtail_indices(
    labels: np.ndarray, imbalance: float, *, n_max: int | None = None, seed: int = 0
) -> np.ndarray:
    """Sorted indices of a long-tailed subset of ``labels`` (classes ``0..C-1`` from head to tail).

    ``n_max`` defaults to the size of the smallest class, so every class can supply its quota.
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1
    per_class = np.bincount(labels, minlength=num_classes)
    if n_max is None:
        n_max = int(per_class.min())
    if n_max > per_class.min():
        raise ValueError(f"n_max: expected at most the smallest class size {per_class.min()}, got {n_max}")
    counts = longtail_counts(n_max, num_classes, imbalance)
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        keep.append(idx[rng.permutation(len(idx))][: counts[c]])
    return np.sort(np.concatenate(keep))
