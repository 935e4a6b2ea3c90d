"""float64 oracles for the soft top-k family (spec: operators.md §3), written from the formulas.

Brute force where possible: subset enumeration for the elementary-symmetric construction, plain
bisection on the threshold (no closed forms, no sorting tricks) for the threshold constructions.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _f(t: float, kind: str) -> float:
    if kind == "sigmoid":
        return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))
    if kind == "exp":
        return 1.0 if t >= 0 else math.exp(t)
    # Laplace CDF ("smooth")
    return 1.0 - 0.5 * math.exp(-t) if t >= 0 else 0.5 * math.exp(t)


def _antiderivative(t: float, kind: str) -> float:
    """F with F' = f and F(-inf) = 0 (exp: [t]_+ after removing the constant k, see soft_topk_sum)."""
    if kind == "sigmoid":
        return max(t, 0.0) + math.log1p(math.exp(-abs(t)))
    if kind == "exp":
        return max(t, 0.0)
    return max(t, 0.0) + 0.5 * math.exp(-abs(t))


def threshold(z, k: float, kind: str, iters: int = 400) -> float:
    """The root of sum_i f(z_i - lam) = k by bisection (z: finite 1-D, 0 < k < n)."""
    z = [float(v) for v in z]
    lo, hi = min(z) - 100.0, max(z) + 100.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        total = math.fsum(_f(v - mid, kind) for v in z)
        if total > k:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def threshold_mask(z, k: float, kind: str) -> np.ndarray:
    """f(z - lam) with -inf entries never selected; k = 0 and k = #finite handled directly."""
    z = np.asarray(z, dtype=np.float64)
    finite = np.isfinite(z)
    out = np.zeros_like(z)
    n_kept = int(finite.sum())
    k = min(k, n_kept)
    if k <= 0:
        return out
    if k >= n_kept:
        out[finite] = 1.0
        return out
    lam = threshold(z[finite], k, kind)
    out[finite] = [_f(v - lam, kind) for v in z[finite]]
    return out


def threshold_sum(z, k: float, kind: str) -> float:
    """sum_i F(z_i - lam) + k lam at the root (the smooth top-k sum at temperature 1)."""
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    k = min(k, len(z))
    if k <= 0:
        return 0.0
    if k >= len(z):
        return float(math.fsum(z))
    lam = threshold(z, k, kind)
    return math.fsum(_antiderivative(v - lam, kind) for v in z) + k * lam


def esp_brute(z, k: int) -> tuple[np.ndarray, float]:
    """(d log Z_k / dz, log Z_k) by enumerating all k-subsets (small n only)."""
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    shift = max(z) if n else 0.0
    total = 0.0
    per = np.zeros(n)
    for subset in itertools.combinations(range(n), k):
        w = math.exp(math.fsum(z[i] - shift for i in subset))
        total += w
        for i in subset:
            per[i] += w
    if k == 0:
        return np.zeros(n), 0.0
    return per / total, math.log(total) + k * shift


def hard_topk(z, k: int) -> np.ndarray:
    order = np.argsort(-np.asarray(z, dtype=np.float64), kind="stable")
    out = np.zeros(len(z))
    out[order[:k]] = 1.0
    return out


def softkmax(z, k: int) -> np.ndarray:
    """Post 6620's iterative soft-k-max (method A1)."""
    z = np.asarray(z, dtype=np.float64)
    x = z - z.min()
    p = np.zeros_like(x)
    for _ in range(k):
        y = (1.0 - p) * x
        e = np.exp(y - y.max())
        p = p + e / e.sum()
    return p


def weighted_iteration(z, k: int) -> np.ndarray:
    """The stats.stackexchange weighted-softmax iteration (method A2)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    p = np.zeros_like(z)
    for _ in range(k):
        w = (1.0 - p) * e
        p = p + w / w.sum()
    return p


def post_recursion_log_z(z, k: int) -> float:
    """The post's GradTopK recursion in logs (the published, unstable form; a negative oracle):
    log Z_{j,i} = z_i + log Z_{j-1} + log(1 - exp(log Z_{j-1,i} - log Z_{j-1}))."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_zi = z.copy()  # log Z_{1,i}
        log_z = float(np.log(np.sum(np.exp(z - z.max()))) + z.max())
        for j in range(2, k + 1):
            log_zi = z + log_z + np.log1p(-np.exp(log_zi - log_z))
            m = np.max(log_zi)
            log_z = float(m + np.log(np.sum(np.exp(log_zi - m)))) - math.log(j)
    return log_z
