"""float64 oracles of ZLPR written from the spec formulas (losses.md §1), independent of logitkit.

Per sample, over the kept classes K (mask True and logit != -inf):
    loss = log(1 + sum_K t_i exp(-s_i)) + log(1 + sum_K (1 - t_i) exp(s_i))
evaluated as log-sum-exp over {log w + v} plus the appended 0, with math.fsum; a weight of exactly
0 drops the term. Gradient: -t_i e^{-s_i} / (1 + P) + (1 - t_i) e^{s_i} / (1 + Q) on K, 0 elsewhere.
'mean' averages over samples (every position other than the label axis).
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _log1p_sum(log_terms: list[float]) -> float:
    """log(1 + sum exp(v)) for the given exponents."""
    values = sorted([*log_terms, 0.0])
    m = values.pop()  # the largest; log1p keeps the rest accurate when they are tiny
    return m + math.log1p(math.fsum(math.exp(v - m) for v in values))


def _kept(s: np.ndarray, keep: np.ndarray | None) -> list[int]:
    return [i for i in range(len(s)) if s[i] != -math.inf and (keep is None or keep[i])]


def sample_loss(s, t, keep=None) -> float:
    """ZLPR of one sample: logits ``s`` (C,), labels ``t`` (C,) in [0, 1], optional bool ``keep``."""
    s = np.asarray(s, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    kept = _kept(s, keep)
    pos = [math.log(t[i]) - s[i] for i in kept if t[i] > 0]
    neg = [math.log1p(-t[i]) + s[i] for i in kept if t[i] < 1]
    return _log1p_sum(pos) + _log1p_sum(neg)


def sample_grad(s, t, keep=None) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    kept = _kept(s, keep)
    lse_pos = _log1p_sum([math.log(t[i]) - s[i] for i in kept if t[i] > 0])
    lse_neg = _log1p_sum([math.log1p(-t[i]) + s[i] for i in kept if t[i] < 1])
    g = np.zeros_like(s)
    for i in kept:
        if t[i] > 0:
            g[i] -= math.exp(math.log(t[i]) - s[i] - lse_pos)
        if t[i] < 1:
            g[i] += math.exp(math.log1p(-t[i]) + s[i] - lse_neg)
    return g


def _samples(x: np.ndarray, dim: int):
    moved = np.moveaxis(x, dim, -1)
    for idx in np.ndindex(moved.shape[:-1]):
        yield idx, moved[idx]


def zlpr(x, t, *, mask=None, dim: int = 1, reduction: str = "mean"):
    """Dense ZLPR with ``torch``-like reduction over the samples."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if x.ndim == 1:
        x, t, dim = x[None], t[None], 1
        mask = None if mask is None else np.asarray(mask)[None]
    dim %= x.ndim
    keep = None if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
    tm = np.moveaxis(t, dim, -1)
    km = None if keep is None else np.moveaxis(keep, dim, -1)
    per = np.zeros(tm.shape[:-1])
    for idx, s in _samples(x, dim):
        per[idx] = sample_loss(s, tm[idx], None if km is None else km[idx])
    return _reduce(per, reduction)


def zlpr_grad(x, t, *, mask=None, dim: int = 1) -> np.ndarray:
    """Gradient of the summed per-sample losses."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    dim %= x.ndim
    keep = None if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
    tm = np.moveaxis(t, dim, -1)
    km = None if keep is None else np.moveaxis(keep, dim, -1)
    out = np.zeros(np.moveaxis(x, dim, -1).shape)
    for idx, s in _samples(x, dim):
        out[idx] = sample_grad(s, tm[idx], None if km is None else km[idx])
    return np.moveaxis(out, -1, dim)


def _reduce(per: np.ndarray, reduction: str):
    if reduction == "none":
        return per
    total = math.fsum(per.ravel())
    if reduction == "sum":
        return total
    return total / per.size if per.size else 0.0


def pairwise(s, positives) -> float:
    """Hard ZLPR in the expanded pairwise form with threshold score s_0 = 0 (spec §1.2, step 4):
    log(1 + sum_{i neg, j pos} e^{s_i - s_j} + sum_neg e^{s_i - 0} + sum_pos e^{0 - s_j})."""
    s = [float(v) for v in s]
    pos = sorted(set(positives))
    neg = [i for i in range(len(s)) if i not in pos]
    terms = [s[i] - s[j] for i, j in itertools.product(neg, pos)]
    terms += [s[i] for i in neg] + [-s[j] for j in pos]
    return _log1p_sum(terms)


def bce_sum(s, t) -> float:
    """Summed BCE-with-logits of one sample: sum_i t log(1 + e^{-s}) + (1 - t) log(1 + e^{s})."""
    total = []
    for si, ti in zip(s, t, strict=True):
        total.append(ti * _log1p_sum([-float(si)]) + (1 - ti) * _log1p_sum([float(si)]))
    return math.fsum(total)


def sparse_to_dense(positives, num_classes: int, pad_index: int = -1) -> np.ndarray:
    """Multi-hot (N, C) labels from padded (N, P) indices (repeats count once)."""
    positives = np.asarray(positives)
    dense = np.zeros((positives.shape[0], num_classes))
    for n, row in enumerate(positives):
        for j in row:
            if j != pad_index:
                dense[n, j] = 1.0
    return dense
