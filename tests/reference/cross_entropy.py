"""float64 oracle of softmax cross-entropy with torch's semantics (spec: losses.md §0, design.md).

Per sample: l = sum_c q_c w_c (LSE(z) - z_c), q = (1 - eps) t + eps / C, z = x / tau, 0 * inf := 0.
'mean': divide by sum of w_{y_n} over non-ignored samples (index targets) or by the number of
samples (probability targets); 0 when that divisor is 0.
"""

from __future__ import annotations

import math

import numpy as np


def _samples(x: np.ndarray):
    """Yield (sample index tuple, class vector) over (N, C, d1, ...)."""
    moved = np.moveaxis(x, 1, -1)
    for idx in np.ndindex(moved.shape[:-1]):
        yield idx, moved[idx]


def _lse(z: np.ndarray) -> float:
    finite = z[z != -math.inf]
    if finite.size == 0:
        return -math.inf
    m = max(finite)
    return m + math.log(math.fsum(math.exp(v - m) for v in finite))


def cross_entropy(
    x,
    target,
    *,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    temperature: float = 1.0,
):
    x = np.asarray(x, dtype=np.float64) / temperature
    target = np.asarray(target)
    num_classes = x.shape[1]
    w = np.ones(num_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    index_targets = np.issubdtype(target.dtype, np.integer)
    per_sample = np.zeros(np.moveaxis(x, 1, -1).shape[:-1])
    denominator = 0.0
    for idx, z in _samples(x):
        lse = _lse(z)
        if index_targets:
            y = int(target[idx])
            if y == ignore_index:
                continue
            t = np.zeros(num_classes)
            t[y] = 1.0
            denominator += w[y]
        else:
            t = np.moveaxis(target, 1, -1)[idx].astype(np.float64)
            denominator += 1.0
        if lse == -math.inf:  # no finite logit: nothing to learn from this sample
            continue
        q = (1.0 - eps) * t + eps / num_classes
        terms = [qc * wc * (lse - zc) for qc, wc, zc in zip(q, w, z, strict=True) if qc * wc != 0]
        per_sample[idx] = math.fsum(terms)
    if reduction == "none":
        return per_sample
    total = math.fsum(per_sample.ravel())
    if reduction == "sum":
        return total
    return total / denominator if denominator != 0 else 0.0
