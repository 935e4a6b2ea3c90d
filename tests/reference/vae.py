"""float64 oracle for the PPCA marginal likelihood (spec: models_and_posthoc.md §3.3).

Probabilistic PCA: z ~ N(0, I_k), x | z ~ N(W z + b, s^2 I_D). Exactly x ~ N(b, W W^T + s^2 I) and
z | x ~ N(M^-1 W^T (x - b), s^2 M^-1) with M = W^T W + s^2 I.
"""

from __future__ import annotations

import math

import numpy as np


def gaussian_log_density(x, mean, cov) -> float:
    x, mean, cov = (np.asarray(t, dtype=np.float64) for t in (x, mean, cov))
    diff = x - mean
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    return -0.5 * (len(x) * math.log(2 * math.pi) + logdet + float(diff @ np.linalg.solve(cov, diff)))


def ppca_log_likelihood(x, weight, bias, noise_std) -> np.ndarray:
    weight = np.asarray(weight, dtype=np.float64)
    cov = weight @ weight.T + noise_std**2 * np.eye(weight.shape[0])
    return np.array([gaussian_log_density(row, bias, cov) for row in np.asarray(x, dtype=np.float64)])


def ppca_posterior(x, weight, bias, noise_std):
    """(means (N, k), covariance (k, k)) of z | x."""
    weight = np.asarray(weight, dtype=np.float64)
    m = weight.T @ weight + noise_std**2 * np.eye(weight.shape[1])
    m_inv = np.linalg.inv(m)
    means = (np.asarray(x, dtype=np.float64) - bias) @ weight @ m_inv.T
    return means, noise_std**2 * m_inv
