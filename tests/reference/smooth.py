"""float64 oracles for approximate-identity smoothing (spec: operators.md §4): the convolution
integrals evaluated numerically with scipy, never the closed forms."""

from __future__ import annotations

import itertools
import math

from scipy import integrate, stats

_KERNELS = {
    "logistic": stats.logistic,
    "gaussian": stats.norm,
    "cauchy": stats.cauchy,
}


def convolve(f, x: float, tau: float, kernel: str, breaks=()) -> float:
    """(f * phi_tau)(x) = E[f(x - tau * Y)], Y with the kernel's density."""
    dist = _KERNELS[kernel]

    def integrand(y: float) -> float:
        return f(x - tau * y) * dist.pdf(y)

    # Split at the kinks of f (in y units) so that quad sees smooth pieces.
    points = sorted({(x - b) / tau for b in breaks})
    edges = [-math.inf, *points, math.inf]
    total = 0.0
    for a, b in itertools.pairwise(edges):
        val, _ = integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-12, limit=400)
        total += val
    return total


def relu(x: float) -> float:
    return max(x, 0.0)


def step(x: float) -> float:
    return 1.0 if x > 0 else 0.0


def clip(lo: float, hi: float):
    return lambda x: min(max(x, lo), hi)


def floor_conv(x: float, tau: float, kernel: str, reach: int = 60) -> float:
    """floor * phi_tau as sum_n n [Phi((x - n)/tau) - Phi((x - n - 1)/tau)] over a wide window."""
    dist = _KERNELS[kernel]
    base = math.floor(x)
    total = 0.0
    for n in range(base - reach, base + reach + 1):
        total += n * (dist.cdf((x - n) / tau) - dist.cdf((x - n - 1) / tau))
    return total
