"""float64 oracles for the objective-shaping losses (spec: losses.md §3, 5-9; operators.md §6).

Plain Python and NumPy / SciPy from the spec formulas, one sample at a time; never the code under
test. Targets follow torch's cross-entropy semantics (as ``cross_entropy.py`` here): the
label-smoothed target ``q = (1 - eps) t + eps / C``, class weights multiplying per-class terms, and
the weighted mean over ``sum_n w_{y_n}`` (index targets) or the number of samples (probabilities).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

from tests.reference.cross_entropy import reduce, weighted_samples

# ---------------------------------------------------------------------------------------------
# Shared: per-sample targets and reductions
# ---------------------------------------------------------------------------------------------


def _softmax(z):
    finite = [v for v in z if v != -math.inf]
    m = max(finite)
    e = [math.exp(v - m) if v != -math.inf else 0.0 for v in z]
    s = math.fsum(e)
    return [v / s for v in e], m + math.log(s)


def _samples(x):
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), 1, -1)
    for idx in np.ndindex(moved.shape[:-1]):
        yield idx, moved[idx]


def class_loss(x, target, term, *, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Generic single-label loss: per sample ``sum_c q_c w_c term(p_c, log p_c)``."""
    samples, denominator = weighted_samples(
        x, target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing
    )
    per = np.zeros(np.moveaxis(np.asarray(x, dtype=np.float64), 1, -1).shape[:-1])
    for idx, z, coef in samples:
        p, lse = _softmax(list(z))
        per[idx] = math.fsum(a * term(pc, zc - lse) for a, pc, zc in zip(coef, p, z, strict=True) if a != 0)
    return reduce(per, reduction, denominator)


# ---------------------------------------------------------------------------------------------
# TaiLr (losses.md §6)
# ---------------------------------------------------------------------------------------------


def tailr_term(gamma, min_weight=None):
    """``phi(p)``: closed form, or ``-max(b, p / (gamma + (1 - gamma) p)) log p`` (weighted)."""

    def closed(p, log_p):
        return -math.log(gamma + (1 - gamma) * p) / (1 - gamma)

    def weighted(p, log_p):
        w = max(min_weight, p / (gamma + (1 - gamma) * p))
        return 0.0 if w == 0 else -w * log_p

    return closed if min_weight is None else weighted


def tailr_loss(x, target, *, gamma, min_weight=None, **kwargs):
    return class_loss(x, target, tailr_term(gamma, min_weight), **kwargs)


def tailr_official(x, target, *, gamma, min_weight, label_smoothing, ignore_index=-100):
    """thu-coai/TaiLr semantics (losses.md §6.2), mean over non-ignored tokens: per token
    ``(1 - eps) * clamp(w, b, 1) * nll + eps / V * sum_v -log p_v``."""
    x = np.asarray(x, dtype=np.float64)
    total, count = [], 0
    for idx, z in _samples(x):
        y = int(np.asarray(target)[idx])
        if y == ignore_index:
            continue
        p, lse = _softmax(list(z))
        w = min(1.0, max(min_weight, math.exp(math.log(p[y]) - math.log(gamma + (1 - gamma) * p[y]))))
        nll = lse - z[y]
        smooth = math.fsum(lse - v for v in z) / len(z)
        total.append((1 - label_smoothing) * w * nll + label_smoothing * smooth)
        count += 1
    return math.fsum(total) / count


# ---------------------------------------------------------------------------------------------
# Smooth accuracy, smooth F1, F1-weighted BCE (losses.md §3, §7)
# ---------------------------------------------------------------------------------------------


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def smooth_accuracy_multiclass(
    x, target, *, temperature=1.0, weight=None, ignore_index=-100, reduction="mean"
):
    x = np.asarray(x, dtype=np.float64) / temperature
    return class_loss(
        x, target, lambda p, log_p: 1.0 - p, weight=weight, ignore_index=ignore_index, reduction=reduction
    )


def smooth_accuracy_multiclass_log(x, target, *, temperature=1.0, weight=None, ignore_index=-100):
    """``-log(sum_n w_y p_y / sum_n w_y)``."""
    x = np.asarray(x, dtype=np.float64) / temperature
    c = x.shape[1]
    w = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    num, den = [], []
    for idx, z in _samples(x):
        y = int(np.asarray(target)[idx])
        if y == ignore_index:
            continue
        p, _ = _softmax(list(z))
        num.append(w[y] * p[y])
        den.append(w[y])
    return -math.log(math.fsum(num) / math.fsum(den))


def smooth_accuracy_binary(x, target, *, temperature=1.0, reduction="mean", log=False):
    x = np.ravel(np.asarray(x, dtype=np.float64)) / temperature
    t = np.ravel(np.asarray(target, dtype=np.float64))
    acc = [ti * _sigmoid(v) + (1 - ti) * _sigmoid(-v) for v, ti in zip(x, t, strict=True)]
    if log:
        return -math.log(math.fsum(acc) / len(acc))
    return reduce(np.array([1 - a for a in acc]), reduction)


def f1_from_sums(tp, support, predicted, average, zero_division=0.0):
    """``1 - F1`` from per-class sums; classes with support + predicted = 0 score zero_division and
    are left out of the macro mean."""
    tp, support, predicted = (
        np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (tp, support, predicted)
    )
    if average == "micro":
        d = support.sum() + predicted.sum()
        return 1 - (2 * tp.sum() / d if d > 0 else zero_division)
    f1 = [
        2 * a / (s + p) if s + p > 0 else zero_division
        for a, s, p in zip(tp, support, predicted, strict=True)
    ]
    if average == "none":
        return 1 - np.array(f1)
    present = [f for f, s, p in zip(f1, support, predicted, strict=True) if s + p > 0]
    return 1 - (math.fsum(present) / len(present) if present else zero_division)


def smooth_f1_binary(x, target, *, temperature=1.0, zero_division=0.0):
    p = [_sigmoid(v / temperature) for v in np.ravel(np.asarray(x, dtype=np.float64))]
    t = list(np.ravel(np.asarray(target, dtype=np.float64)))
    tp = math.fsum(a * b for a, b in zip(t, p, strict=True))
    return f1_from_sums(tp, math.fsum(t), math.fsum(p), "micro", zero_division)


def smooth_f1_multilabel(x, target, *, average, temperature=1.0, zero_division=0.0):
    x = np.moveaxis(np.asarray(x, dtype=np.float64), 1, 0)
    t = np.moveaxis(np.asarray(target, dtype=np.float64), 1, 0)
    sums = []
    for xl, tl in zip(x, t, strict=True):
        p = [_sigmoid(v / temperature) for v in np.ravel(xl)]
        tl = list(np.ravel(tl))
        sums.append((math.fsum(a * b for a, b in zip(tl, p, strict=True)), math.fsum(tl), math.fsum(p)))
    tp, support, predicted = zip(*sums, strict=True)
    return f1_from_sums(tp, support, predicted, average, zero_division)


def smooth_f1_multiclass(x, target, *, average, temperature=1.0, ignore_index=-100, zero_division=0.0):
    x = np.asarray(x, dtype=np.float64) / temperature
    target = np.asarray(target)
    c = x.shape[1]
    tp, support, predicted = np.zeros(c), np.zeros(c), np.zeros(c)
    index_targets = np.issubdtype(target.dtype, np.integer)
    for idx, z in _samples(x):
        if index_targets:
            y = int(target[idx])
            if y == ignore_index:
                continue
            t = np.zeros(c)
            t[y] = 1.0
        else:
            t = np.moveaxis(target, 1, -1)[idx].astype(np.float64)
        p, _ = _softmax(list(z))
        tp += t * np.array(p)
        support += t
        predicted += np.array(p)
    return f1_from_sums(tp, support, predicted, average, zero_division)


def f1_weighted_bce(x, target, f1, *, min_weight=0.0, reduction="mean"):
    """``-(max(b, 1 - F1/2) t log s(x) + max(b, F1/2) (1 - t) log s(-x))`` element-wise."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    f1 = np.broadcast_to(np.asarray(f1, dtype=np.float64), x.shape)
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        v, ti, fi = x[idx], t[idx], f1[idx]
        log_pos = -math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))
        log_neg = -math.log1p(math.exp(v)) if v <= 0 else -v - math.log1p(math.exp(-v))
        out[idx] = -(
            max(min_weight, 1 - fi / 2) * ti * log_pos + max(min_weight, fi / 2) * (1 - ti) * log_neg
        )
    return reduce(out, reduction)


# ---------------------------------------------------------------------------------------------
# EXACT (losses.md §8, operators.md §6)
# ---------------------------------------------------------------------------------------------


def gaussian_argmax_prob(mu, y, sigma=1.0):
    """``P(argmax(mu / sigma + eps) = y)`` by adaptive quadrature of
    ``int phi(e) prod_{i != y} Phi((mu_y - mu_i) / sigma + e) de``."""
    mu = np.asarray(mu, dtype=np.float64) / sigma
    d = [mu[y] - v for i, v in enumerate(mu) if i != y and v != -math.inf]
    if mu[y] == -math.inf:
        return 0.0
    if len(d) == 1:
        return float(special.ndtr(d[0] / math.sqrt(2.0)))

    def integrand(e):
        return math.exp(-0.5 * e * e) / math.sqrt(2 * math.pi) * math.prod(special.ndtr(di + e) for di in d)

    # phi(e) < 1e-31 beyond |e| = 12; each factor switches on around e = -d_i.
    points = sorted({min(11.9, max(-11.9, -di)) for di in d})
    value, _ = integrate.quad(integrand, -12.0, 12.0, points=points, epsabs=1e-15, epsrel=1e-12, limit=500)
    return value


def exact_loss(x, target, *, sigma=1.0, weight=None, ignore_index=-100, reduction="mean", log=False):
    x = np.asarray(x, dtype=np.float64)
    c = x.shape[1]
    w = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    per = np.zeros(np.moveaxis(x, 1, -1).shape[:-1])
    num, den = [], []
    for idx, z in _samples(x):
        y = int(np.asarray(target)[idx])
        if y == ignore_index:
            continue
        p = gaussian_argmax_prob(z, y, sigma)
        per[idx] = w[y] * (1 - p)
        num.append(w[y] * p)
        den.append(w[y])
    if log:
        return -math.log(math.fsum(num) / math.fsum(den))
    return reduce(per, reduction, math.fsum(den))


def exact_monte_carlo(mu, y, sigma=1.0, samples=400_000, seed=0):
    rng = np.random.default_rng(seed)
    mu = np.asarray(mu, dtype=np.float64) / sigma
    noise = rng.standard_normal((samples, mu.size))
    return float(np.mean(np.argmax(mu + noise, axis=1) == y))


# ---------------------------------------------------------------------------------------------
# AM-Softmax and the simpler A-Softmax (losses.md §9)
# ---------------------------------------------------------------------------------------------


def margin_loss(
    cos, target, psi, *, scale, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0
):
    """Cross-entropy of ``scale * cos`` with the target cosine replaced by ``psi(cos_t)``."""
    cos = np.array(cos, dtype=np.float64)
    target = np.asarray(target)
    moved = np.moveaxis(cos, 1, -1)
    for idx in np.ndindex(moved.shape[:-1]):
        y = int(target[idx])
        if y != ignore_index:
            moved[idx][y] = psi(moved[idx][y])
    return class_loss(
        scale * cos,
        target,
        lambda p, log_p: -log_p,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def am_softmax(cos, target, *, margin=0.35, scale=30.0, **kwargs):
    return margin_loss(cos, target, lambda c: c - margin, scale=scale, **kwargs)


def simpler_a_softmax(cos, target, *, m=4, scale=30.0, **kwargs):
    return margin_loss(
        cos, target, lambda c: min(math.cos(m * math.acos(max(-1.0, min(1.0, c)))), c), scale=scale, **kwargs
    )
