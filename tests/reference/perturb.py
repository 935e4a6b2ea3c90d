"""float64 oracles for perturb-and-argmax probabilities (spec: operators.md §6): adaptive
quadrature of the defining integral (scipy) and Monte Carlo (numpy)."""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats

_NOISE = {"normal": stats.norm, "logistic": stats.logistic, "gumbel": stats.gumbel_r}


def class_prob(mu, i: int, noise: str = "normal") -> float:
    """P_i = int p(e) prod_{j != i} Phi(mu_i - mu_j + e) de by adaptive quadrature."""
    mu = np.asarray(mu, dtype=np.float64)
    dist = _NOISE[noise]
    others = np.delete(mu, i)

    def integrand(e: float) -> float:
        return dist.pdf(e) * float(np.prod(dist.cdf(mu[i] - others + e)))

    lo, hi = dist.ppf(1e-17), dist.isf(1e-17)
    val, _ = integrate.quad(integrand, lo, hi, epsabs=1e-15, epsrel=1e-12, limit=500)
    return val


def probs(mu, noise: str = "normal") -> np.ndarray:
    """Every class by :func:`class_prob`."""
    return np.array([class_prob(mu, i, noise) for i in range(len(mu))])


def monte_carlo(mu, noise: str, samples: int, seed: int = 0) -> np.ndarray:
    mu = np.asarray(mu, dtype=np.float64)
    rng = np.random.default_rng(seed)
    dist = _NOISE[noise]
    eps = dist.ppf(rng.random((samples, len(mu))))
    counts = np.bincount(np.argmax(mu + eps, axis=1), minlength=len(mu))
    return counts / samples


def two_class_normal(delta: float) -> float:
    """P_1 for two classes, normal noise: Phi(delta / sqrt 2)."""
    return 0.5 * math.erfc(-delta / 2.0)
