"""float64 oracle for entropy-invariant attention (spec: operators.md §7).

One query at a time: count the keys it can see, scale its scores by log(n) / (log(b) sqrt(d)),
softmax over the visible keys with explicit exponentials, average the values.
"""

from __future__ import annotations

import math

import numpy as np


def scale(n: int, head_dim: int, base: float) -> float:
    return 0.0 if n <= 1 else math.log(n) / math.log(base) / math.sqrt(head_dim)


def attention(q, k, v, visible=None, bias=None, base=512.0):
    """q (L, E), k (S, E), v (S, Ev); visible (L, S) bool or None; bias (L, S) finite additive."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    length, keys = q.shape[0], k.shape[0]
    out = np.zeros((length, v.shape[1]))
    for i in range(length):
        seen = [j for j in range(keys) if visible is None or visible[i][j]]
        if not seen:
            continue
        lam = scale(len(seen), q.shape[1], base)
        scores = [lam * float(q[i] @ k[j]) + (0.0 if bias is None else float(bias[i][j])) for j in seen]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total = math.fsum(weights)
        for w, j in zip(weights, seen, strict=True):
            out[i] += w / total * v[j]
    return out


def entropy(probs) -> float:
    return -math.fsum(p * math.log(p) for p in probs if p > 0)
