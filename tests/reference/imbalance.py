"""float64 oracles for the imbalance family (spec: losses.md §2-4, models_and_posthoc.md §1).

Brute force, per sample and per class, with Python's math module; never the code under test.

Softmax losses with per-class terms phi_c and torch's semantics:
    l_n = sum_c q_c w_c alpha_c phi_c,  q = (1 - eps) t + eps / C,  0 * inf := 0,
    'mean' divides by sum of w_{y_n} over non-ignored samples (index targets) or by N (probabilities).
    focal:     phi_c = -(1 - p_c)^gamma log p_c
    truncated: phi_c = -theta(m - p_c) log p_c, theta(0) = 1/2
    softened:  phi_c = -softmax(-K x)_c log p_c
Sigmoid losses, elementwise, linear in the target t:
    L = t a pw w P(x) + (1 - t)(1 - a) w P(-x), P(x) = loss of a positive with logit x.
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.cross_entropy import reduce, weighted_samples


def _softmax(z):
    finite = [v for v in z if v != -math.inf]
    m = max(finite)
    e = [math.exp(v - m) if v != -math.inf else 0.0 for v in z]
    s = math.fsum(e)
    return [v / s for v in e], [(v - m) - math.log(s) if v != -math.inf else -math.inf for v in z]


def _theta(t: float) -> float:
    return 1.0 if t > 0 else (0.5 if t == 0 else 0.0)


def softmax_terms(kind: str, param: float, z) -> list[float]:
    """Per-class terms phi_c of one sample (param: gamma, margin m, or K)."""
    p, logp = _softmax(list(z))
    if kind == "focal":
        return [-((1.0 - pc) ** param) * lc for pc, lc in zip(p, logp, strict=True)]
    if kind == "truncated":
        return [-_theta(param - pc) * lc for pc, lc in zip(p, logp, strict=True)]
    finite = [v for v in z if v != -math.inf]
    s, _ = _softmax([-param * v if v != -math.inf else -math.inf for v in z])
    assert finite
    return [-sc * lc if sc > 0 else 0.0 for sc, lc in zip(s, logp, strict=True)]


def softmax_loss(
    kind: str,
    param: float,
    x,
    target,
    *,
    weight=None,
    alpha=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
):
    x = np.asarray(x, dtype=np.float64)
    samples, denominator = weighted_samples(
        x, target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing
    )
    a = np.ones(x.shape[1]) if alpha is None else np.asarray(alpha, dtype=np.float64)
    per_sample = np.zeros(np.moveaxis(x, 1, -1).shape[:-1])
    for idx, z, coef in samples:
        phi = softmax_terms(kind, param, z)
        per_sample[idx] = math.fsum(c * ac * f for c, ac, f in zip(coef, a, phi, strict=True) if c * ac != 0)
    return reduce(per_sample, reduction, denominator)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _softplus(x: float) -> float:
    """log(1 + e^x), exact in both tails."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def positive_branch(kind: str, param: float, margin: float, x: float) -> float:
    """P(x): the loss of a positive with logit x (margin = log(m / (1 - m)))."""
    nll = _softplus(-x)  # -log sigmoid(x)
    if kind == "focal":
        return _sigmoid(-x) ** param * nll
    if kind == "truncated":
        return _theta(margin - x) * nll
    return _sigmoid(param * (margin - x)) * nll


def sigmoid_loss(
    kind: str,
    param: float,
    x,
    target,
    *,
    alpha=None,
    pos_weight=None,
    weight=None,
    margin: float = 0.0,
    reduction: str = "mean",
):
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    pw = np.broadcast_to(1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64), x.shape)
    wt = np.broadcast_to(1.0 if weight is None else np.asarray(weight, dtype=np.float64), x.shape)
    a_pos = 1.0 if alpha is None else alpha
    a_neg = 1.0 if alpha is None else 1.0 - alpha
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        xi, ti = float(x[idx]), float(t[idx])
        pos = ti * a_pos * pw[idx] * wt[idx]
        neg = (1.0 - ti) * a_neg * wt[idx]
        terms = []
        if pos != 0:
            terms.append(pos * positive_branch(kind, param, margin, xi))
        if neg != 0:
            terms.append(neg * positive_branch(kind, param, margin, -xi))
        out[idx] = math.fsum(terms)
    if reduction == "none":
        return out
    total = math.fsum(out.ravel())
    return total if reduction == "sum" else (total / out.size if out.size else 0.0)


def torchvision_sigmoid_focal_loss(x, target, alpha: float = 0.25, gamma: float = 2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss as documented: BCE * (1 - p_t)^gamma * alpha_t,
    p_t = p t + (1 - p)(1 - t), alpha_t = alpha t + (1 - alpha)(1 - t), alpha < 0 disables alpha."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    out = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        xi, ti = float(x[idx]), float(t[idx])
        p = _sigmoid(xi)
        ce = ti * _softplus(-xi) + (1 - ti) * _softplus(xi)
        p_t = p * ti + (1 - p) * (1 - ti)
        loss = ce * (1 - p_t) ** gamma
        if alpha >= 0:
            loss *= alpha * ti + (1 - alpha) * (1 - ti)
        out[idx] = loss
    if reduction == "none":
        return out
    return float(out.sum()) if reduction == "sum" else float(out.mean())


def logit_adjusted_pairwise(f, y: int, prior, tau: float) -> float:
    """RHS of post 7615 eq. (6): log(1 + sum_{i != y} (p_i / p_y)^tau e^{f_i - f_y})."""
    terms = [(prior[i] / prior[y]) ** tau * math.exp(f[i] - f[y]) for i in range(len(f)) if i != y]
    return math.log1p(math.fsum(terms))


def class_balanced(counts, beta: float):
    raw = [(1 - beta) / (1 - beta**n) if n > 0 else 0.0 for n in counts]
    total = math.fsum(raw)
    return [r * len(counts) / total for r in raw]


def topk_entropy(p, k: int) -> float:
    top = sorted(p, reverse=True)[:k]
    s = math.fsum(top)
    q = [v / s for v in top]
    return -math.fsum(v * math.log(v) for v in q if v > 0) / math.log(k)


def can_loop(probs, prior, *, top_k=3, threshold=0.9, alpha=1.0, iterations=1, reference=None, any_k=False):
    """The author's CAN algorithm, one uncertain row at a time (models_and_posthoc.md §1.3)."""
    probs = [list(map(float, row)) for row in np.asarray(probs, dtype=np.float64)]
    prior = list(map(float, np.asarray(prior, dtype=np.float64)))
    c = len(prior)

    def uncertain(row):
        ks = range(2, top_k + 1) if any_k else [top_k]
        return any(topk_entropy(row, k) >= threshold for k in ks)

    flags = [uncertain(row) for row in probs]
    if reference is None:
        confident = [row for row, f in zip(probs, flags, strict=True) if not f]
    else:
        confident = [list(map(float, row)) for row in np.asarray(reference, dtype=np.float64)]
    out = [row[:] for row in probs]
    for j, row in enumerate(probs):
        if not flags[j]:
            continue
        stack = [r[:] for r in confident] + [row[:]]
        for _ in range(iterations):
            stack = [[v**alpha for v in r] for r in stack]
            mean = [math.fsum(r[i] for r in stack) / len(stack) for i in range(c)]
            stack = [[r[i] / mean[i] * prior[i] if mean[i] > 0 else 0.0 for i in range(c)] for r in stack]
            stack = [[v / math.fsum(r) for v in r] for r in stack]
        out[j] = stack[-1]
    return np.asarray(out), np.asarray(flags)


# ---------------------------------------------------------------------------------------------
# Plain torch autograd forms of the same formulas, for gradients in the interior (no p = 0 or 1)
# ---------------------------------------------------------------------------------------------


def torch_softmax_loss(
    kind,
    param,
    x,
    target,
    *,
    weight=None,
    alpha=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
):
    import torch

    c = x.shape[1]
    shape = (1, c) + (1,) * (x.dim() - 2)
    logp = torch.log_softmax(x, 1)
    p = logp.exp()
    if kind == "focal":
        phi = -((1 - p) ** param) * logp
    elif kind == "truncated":
        phi = -((torch.sign(param - p.detach()) + 1) / 2) * logp
    else:
        phi = -torch.softmax(-param * x, 1) * logp
    if target.is_floating_point():
        q = target
        valid = None
    else:
        valid = target != ignore_index
        q = torch.zeros_like(x).scatter_(1, torch.where(valid, target, 0).unsqueeze(1), 1.0)
    q = q * (1 - label_smoothing) + label_smoothing / c
    if valid is not None:
        q = q * valid.unsqueeze(1)
    w = torch.ones(c, dtype=x.dtype) if weight is None else weight
    a = torch.ones(c, dtype=x.dtype) if alpha is None else alpha
    per = (q * (w * a).view(shape) * phi).sum(1)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if valid is None:
        return per.sum() / per.numel()
    den = (w[torch.where(valid, target, 0)] * valid).sum()
    return per.sum() / den


def torch_sigmoid_loss(
    kind, param, x, t, *, alpha=None, pos_weight=None, weight=None, margin=0.0, reduction="mean"
):
    import torch

    def branch(v):
        nll = torch.nn.functional.softplus(-v)
        if kind == "focal":
            return torch.sigmoid(-v) ** param * nll
        if kind == "truncated":
            return ((torch.sign(margin - v.detach()) + 1) / 2) * nll
        return torch.sigmoid(param * (margin - v)) * nll

    a_pos = 1.0 if alpha is None else alpha
    a_neg = 1.0 if alpha is None else 1 - alpha
    pw = 1.0 if pos_weight is None else pos_weight
    wt = 1.0 if weight is None else weight
    out = t * a_pos * pw * wt * branch(x) + (1 - t) * a_neg * wt * branch(-x)
    if reduction == "none":
        return out
    return out.sum() if reduction == "sum" else out.mean()
