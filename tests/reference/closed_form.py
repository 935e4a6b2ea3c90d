"""float64 oracle for closed-form softmax regression (spec: models_and_posthoc.md §2).

Written from the post's formulas with explicit loops: class frequencies, class means, the
moment-matched covariance Sigma = total + mu~^T mu~ - sum_i p_i mu_i^T mu_i (or the covariance of
all samples), w_i = mu_i Sigma^-1, b_i = ln p_i - mu_i Sigma^-1 mu_i^T / 2.
"""

from __future__ import annotations

import math

import numpy as np


def _outer_mean(rows) -> np.ndarray:
    rows = [np.asarray(r, dtype=np.float64) for r in rows]
    return sum(np.outer(r, r) for r in rows) / len(rows)


def closed_form(x, y, num_classes: int, *, covariance="pooled", ridge_matrix=None, priors=None):
    """(W (C, d), b (C,)) by the post's moment-matching formula; ``ridge_matrix`` is added to Sigma."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n, d = x.shape
    counts = [int((y == c).sum()) for c in range(num_classes)]
    freq = [c / n for c in counts]
    means = [x[y == c].mean(0) if counts[c] else np.zeros(d) for c in range(num_classes)]
    overall = x.mean(0)
    total = _outer_mean([row - overall for row in x])  # ddof 0
    if covariance == "pooled":
        # Spec §2.5: Sigma = Sigma~ + mu~^T mu~ - sum_i p_i mu_i^T mu_i
        sigma = (
            total
            + np.outer(overall, overall)
            - sum(p * np.outer(m, m) for p, m in zip(freq, means, strict=True))
        )
    else:
        sigma = total
    if ridge_matrix is not None:
        sigma = sigma + ridge_matrix
    priors = freq if priors is None else [p / math.fsum(priors) for p in priors]
    weight = np.zeros((num_classes, d))
    bias = np.zeros(num_classes)
    for c in range(num_classes):
        if counts[c] == 0:
            bias[c] = -math.inf
            continue
        w = np.linalg.solve(sigma, means[c])
        weight[c] = w
        bias[c] = math.log(priors[c]) - 0.5 * float(means[c] @ w)
    return weight, bias


def total_covariance(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    overall = x.mean(0)
    return _outer_mean([row - overall for row in x])


def pooled_covariance_loop(x, y) -> np.ndarray:
    """Pooled within-class covariance, ddof 0, by the definition (the LDA estimator)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    d = x.shape[1]
    acc = np.zeros((d, d))
    for c in np.unique(y):
        rows = x[y == c]
        m = rows.mean(0)
        for r in rows:
            acc += np.outer(r - m, r - m)
    return acc / len(x)
