"""float64 oracles for entropy and entropy normalization (spec: operators.md §5)."""

from __future__ import annotations

import math

import numpy as np


def entropy(p) -> float:
    """-sum p log p with 0 log 0 = 0 (p normalised first)."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    return -math.fsum(v * math.log(v) for v in p if v > 0)


def power(p, gamma: float) -> np.ndarray:
    """p^gamma / sum p^gamma, computed in log space; zeros stay zero."""
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros_like(p)
    support = p > 0
    logs = gamma * np.log(p[support])
    logs -= logs.max()
    w = np.exp(logs)
    out[support] = w / w.sum()
    return out


def solve_gamma(p, target: float) -> float:
    """gamma with entropy(power(p, gamma)) = target, by bisection on log(gamma)."""
    lo, hi = -40.0, 40.0
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        if entropy(power(p, math.exp(mid))) > target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def post_newton(p, target: float, steps: int) -> list[float]:
    """The post's iteration: gamma = 1 + (H* - H) / (H^2 - E[(log p)^2]), p <- p^gamma (normalised)."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    trace = []
    for _ in range(steps):
        logp = np.log(p)
        h = -float(np.sum(p * logp))
        second = float(np.sum(p * logp * logp))
        gamma = 1.0 + (target - h) / (h * h - second)
        p = power(p, gamma)
        trace.append(entropy(p))
    return trace
