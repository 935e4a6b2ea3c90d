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


def weighted_samples(x, target, *, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0):
    """torch's single-label target semantics, shared by the softmax-family oracles.

    Returns ``(samples, denominator)``: ``samples`` lists ``(index, z, coef)`` with
    ``coef_c = q_c w_c`` (``q = (1 - eps) t + eps / C``) for every sample that contributes;
    ``denominator`` is the divisor of ``'mean'`` (sum of ``w_y`` over non-ignored samples for index
    targets, the number of samples for probabilities). Ignored samples are in neither; a sample
    without a finite logit counts in the divisor but contributes nothing.
    """
    x = np.asarray(x, dtype=np.float64)
    target = np.asarray(target)
    num_classes = x.shape[1]
    w = np.ones(num_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    index_targets = np.issubdtype(target.dtype, np.integer)
    samples, denominator = [], 0.0
    for idx, z in _samples(x):
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
        if all(v == -math.inf for v in z):
            continue
        q = (1.0 - label_smoothing) * t + label_smoothing / num_classes
        samples.append((idx, z, q * w))
    return samples, denominator


def reduce(per_sample, reduction: str, denominator=None):
    """``'none'`` / ``'sum'`` / ``'mean'`` (divided by ``denominator``, default the number of
    samples; 0 when the divisor is 0)."""
    if reduction == "none":
        return per_sample
    total = math.fsum(np.ravel(per_sample))
    if reduction == "sum":
        return total
    if denominator is None:
        denominator = np.size(per_sample)
    return total / denominator if denominator else 0.0


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
    samples, denominator = weighted_samples(
        x, target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing
    )
    per_sample = np.zeros(np.moveaxis(x, 1, -1).shape[:-1])
    for idx, z, coef in samples:
        lse = _lse(z)
        per_sample[idx] = math.fsum(a * (lse - zc) for a, zc in zip(coef, z, strict=True) if a != 0)
    return reduce(per_sample, reduction, denominator)
