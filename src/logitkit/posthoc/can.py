r"""CAN: classification with alternating normalization, a post-hoc correction with the class prior.

Low-confidence predictions are corrected using the class prior and the high-confidence
predictions of the same evaluation set as a reference frame: if the confident predictions already
cover the frequent classes, an uncertain row is pushed towards the classes that are still missing.

**Uncertainty.** With :math:`p_1 \ge \dots \ge p_k` a row's :math:`k` largest probabilities,
renormalised :math:`\tilde p_i = p_i / \sum_{i' \le k} p_{i'}`,

.. math::

    u(p) = -\frac{1}{\log k} \sum_{i=1}^k \tilde p_i \log \tilde p_i \in [0, 1].

A row is uncertain when :math:`u \ge` ``threshold`` (``uncertainty='topk'``, the author's rule), or
when :math:`u_{k'} \ge` ``threshold`` for any :math:`k' \in \{2, \dots, k\}` (``'any_k'``, the
official code's rule).

**Alternating normalization** (the author's algorithm, per uncertain row :math:`j`, always
starting from the original confident rows :math:`p^{(1..n)}`): stack
:math:`Y = [p^{(1)}; \dots; p^{(n)}; p^{(j)}]` and repeat ``iterations`` times: (a)
:math:`Y \leftarrow Y^\alpha` elementwise; (b) divide each column by its mean and multiply by the
prior :math:`\tilde p`, so that the rows' average becomes the prior; (c) divide each row by its
sum. The corrected :math:`p^{(j)}` is the new last row; confident rows never change.

**Closed form and vectorisation.** For one iteration, with :math:`S = \sum_{r \le n} [p^{(r)}]^\alpha`
the column sums of the confident rows,

.. math::

    p^{(j)\prime} \propto [p^{(j)}]^\alpha \odot \tilde p \oslash \big(S + [p^{(j)}]^\alpha\big),

:math:`O(nC)` once plus :math:`O(C)` per uncertain row, all rows at once. For more iterations the
confident rows of each stack stay of the form :math:`[p^{(r)}]^{\alpha^t} \odot E_j / Z_{rj}`: one
vector :math:`E_j` and one scalar :math:`Z_{rj}` per (row, stack), updated with two matrix
products per iteration, in chunks of uncertain rows (no per-row loop, no copy of the confident
rows per stack). The one-iteration path has no data-dependent shapes and runs under
``torch.compile(fullgraph=True)``; more iterations select the uncertain rows by index (eager).

Computed in float64; returned in the input dtype. A column with no mass anywhere stays 0 (the
official code adds 1e-10 to denominators instead). With no confident row (and no ``reference``),
an uncertain row becomes the prior restricted to its support.

References: J. Su, "CAN：借助先验分布提升分类性能的简单后处理技巧" (kexue.fm/archives/8728, 2021);
W. Jia, Z. Dai et al., "When in Doubt: Improving Classification Performance with Alternating
Normalization" (Findings of EMNLP 2021, arXiv:2109.13449); code KMnP/can (read for semantics).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from logitkit import _checks
from logitkit.losses.prior import check_prior

__all__ = ["CANResult", "can", "topk_uncertainty"]

_UNCERTAINTY = ("topk", "any_k")
_CHUNK = 512  # uncertain rows per matrix product when iterations > 1


class CANResult(NamedTuple):
    """``probs``: the corrected probabilities; ``changed``: which rows were adjusted ``(N,)``."""

    probs: Tensor
    changed: Tensor


def _check_simplex(probs: object, name: str, num_classes: int | None = None) -> Tensor:
    tensor = _checks.check_floating(probs, name)
    if (
        tensor.dim() != 2
        or tensor.shape[1] < 2
        or (num_classes is not None and tensor.shape[1] != num_classes)
    ):
        expected = "(N, C) with C >= 2" if num_classes is None else f"(M, {num_classes})"
        raise ValueError(f"{name}: expected probabilities of shape {expected}, got {tuple(tensor.shape)}")
    if not _checks.validate_args_enabled() or tensor.numel() == 0:
        return tensor
    _checks.check_in_unit_interval(tensor, name)
    sums = tensor.detach().double().sum(1)
    tolerance = max(1e-6, math.sqrt(torch.finfo(tensor.dtype).eps))
    worst = int((sums - 1).abs().argmax())
    if abs(sums[worst].item() - 1) > tolerance:
        raise ValueError(
            f"{name}: expected rows on the probability simplex (summing to 1), got a row summing to "
            f"{sums[worst].item():.6g} at row {worst} (pass softmax(logits), not logits)"
        )
    return tensor


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected an int in {bounds}, got {value}")
    return value


def topk_uncertainty(probs: Tensor, top_k: int = 3, *, uncertainty: str = "topk") -> Tensor:
    r"""CAN's uncertainty score: entropy of the renormalised top-:math:`k` probabilities over :math:`\log k`.

    .. math::

        u_k(p) = -\frac{1}{\log k} \sum_{i=1}^k \tilde p_i \log \tilde p_i,
        \qquad \tilde p_i = \frac{p_{(i)}}{\sum_{i' \le k} p_{(i')}},

    with :math:`p_{(1)} \ge p_{(2)} \ge \dots` (``0 log 0 = 0``). ``uncertainty='any_k'`` returns
    :math:`\max_{2 \le k' \le k} u_{k'}` (the official code flags a row when any :math:`k'` is above
    the threshold). With :math:`k = 2` it ranks :math:`[0.5, 0.5, 0]` (1.0) as more uncertain than
    :math:`[0.5, 0.25, 0.25]` (0.918), which the plain entropy gets backwards.

    Args:
        probs: ``(N, C)`` probabilities.
        top_k: :math:`k \in [2, C]`.
        uncertainty: ``'topk'`` or ``'any_k'``.

    Returns:
        ``(N,)`` scores in [0, 1] (float64).

    Example:
        >>> topk_uncertainty(torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.25, 0.25]]), 2)
        tensor([1.0000, 0.9183], dtype=torch.float64)

    Reference: J. Su, kexue.fm/archives/8728 (the top-k entropy); KMnP/can (``'any_k'``).
    """
    _checks.check_floating(probs, "probs")
    if probs.dim() != 2:
        raise ValueError(f"probs: expected probabilities of shape (N, C), got {tuple(probs.shape)}")
    top_k = _check_int(top_k, "top_k", 2, probs.shape[1])
    _checks.check_one_of(uncertainty, "uncertainty", _UNCERTAINTY)
    values = probs.detach().double().topk(top_k, dim=1).values
    mass = values.cumsum(1)
    plogp = torch.special.xlogy(values, values).cumsum(1)
    safe = torch.where(mass > 0, mass, 1.0)
    # H_k = log S_k - (sum p log p) / S_k for the renormalised top-k
    entropy = torch.log(safe) - plogp / safe
    ks = torch.arange(1, top_k + 1, dtype=torch.float64, device=probs.device)
    scores = entropy[:, 1:] / torch.log(ks[1:])
    if uncertainty == "topk":
        return scores[:, -1].clamp(0.0, 1.0)
    return scores.amax(1).clamp(0.0, 1.0)


def _normalise_rows(y: Tensor, fallback: Tensor) -> Tensor:
    """Rows divided by their sums; an all-zero row is replaced by ``fallback``'s row."""
    total = y.sum(1, keepdim=True)
    out = y / total.clamp_min(torch.finfo(y.dtype).tiny)
    zero = total == 0
    if torch.compiler.is_compiling() or bool(zero.any()):
        out = torch.where(zero, fallback, out)
    return out


def _power(x: Tensor, alpha: float) -> Tensor:
    return x if alpha == 1 else x.pow(alpha)


def _closed_form(rows_a: Tensor, col: Tensor, prior: Tensor, fallback: Tensor) -> Tensor:
    """One alternating normalisation of each row against column sums ``col`` of the reference."""
    total = col + rows_a  # the (n + 1)-row column sums; the constant 1/(n + 1) cancels
    # total = 0 implies rows_a = 0 there: the floor only turns 0 / 0 into 0 * finite
    return _normalise_rows(rows_a * (prior / total.clamp_min(torch.finfo(total.dtype).tiny)), fallback)


def _alternate(rows: Tensor, reference: Tensor, prior: Tensor, alpha: float, iterations: int) -> Tensor:
    """Corrected uncertain ``rows`` ``(U, C)`` against the confident ``reference`` ``(n, C)``."""
    a = _power(reference, alpha)  # R^(alpha^(t+1)) at iteration t
    y = rows
    e = None  # per-stack column factors E_j, (U, C); None means all ones
    z_weight = None  # Z_rj^(-alpha), (n, U); None means all ones
    for it in range(iterations):
        if it > 0:
            a = _power(a, alpha)
        y_a = _power(y, alpha)
        col = a.sum(0, keepdim=True) if z_weight is None else z_weight.T @ a
        if e is not None:
            col = _power(e, alpha) * col
        col = col + y_a  # the (n + 1)-row column sums; the constant 1/(n + 1) cancels
        # a column without mass stays 0 (a floor would make E_j huge there and break its rescaling)
        scale = torch.where(col > 0, prior / torch.where(col > 0, col, 1.0), 0.0)
        y = _normalise_rows(y_a * scale, y)
        if it + 1 < iterations:
            e = scale if e is None else _power(e, alpha) * scale
            e = e / e.amax(1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)  # scale-free
            z = a @ e.T  # row normalisers of the reference rows in each stack
            z_weight = torch.where(z > 0, torch.where(z > 0, z, 1.0).pow(-alpha), 0.0)
    return y


def can(
    probs: Tensor,
    prior: Tensor,
    *,
    top_k: int = 3,
    threshold: float = 0.9,
    alpha: float = 1.0,
    iterations: int = 1,
    reference: Tensor | None = None,
    uncertainty: str = "topk",
    return_changed: bool = False,
) -> Tensor | CANResult:
    r"""Correct uncertain predictions with the class prior by alternating normalization (CAN).

    For each row with top-:math:`k` uncertainty :math:`u \ge` ``threshold``, one iteration gives

    .. math::

        p' \propto p^\alpha \odot \tilde p \oslash \Big(\sum_{r \in \text{confident}} [p^{(r)}]^\alpha
        + p^\alpha\Big),

    and ``iterations`` repeats the column (to the prior) and row (to 1) normalisations of the stack
    of confident rows and the row (module docstring); confident rows are returned unchanged and
    every row stays on the simplex.

    Args:
        probs: ``(N, C)`` predicted probabilities (rows on the simplex), e.g. a whole evaluation set.
        prior: ``(C,)`` positive class probabilities summing to 1, the training-label frequencies.
        top_k: :math:`k \in [2, C]` of the uncertainty score (default 3).
        threshold: rows with :math:`u \ge` ``threshold`` are corrected, in [0, 1] (default 0.9).
        alpha: exponent :math:`\alpha > 0` (1 is "essentially optimal").
        iterations: number of alternating normalisations, >= 1 (1 is usually best).
        reference: optional ``(M, C)`` fixed confident predictions (e.g. from a validation set)
            used instead of the confident rows of ``probs``: then rows can be corrected one at a
            time as they stream in.
        uncertainty: ``'topk'`` (the author's score at :math:`k`) or ``'any_k'`` (uncertain if the
            score at any :math:`k' \in [2, k]` reaches the threshold, the official code).
        return_changed: also return the boolean mask of corrected rows.

    Returns:
        The corrected probabilities (input dtype), or ``CANResult(probs, changed)``.

    Example:
        >>> probs = torch.tensor([[0.9, 0.05, 0.05], [0.85, 0.1, 0.05], [0.45, 0.1, 0.45]])
        >>> can(probs, torch.tensor([0.4, 0.2, 0.4]), threshold=0.8)
        tensor([[0.9000, 0.0500, 0.0500],
                [0.8500, 0.1000, 0.0500],
                [0.1673, 0.1636, 0.6691]])

    Reference: J. Su, kexue.fm/archives/8728 (2021); Jia et al., Findings of EMNLP 2021.
    """
    _check_simplex(probs, "probs")
    num_classes = probs.shape[1]
    check_prior(prior, num_classes)
    top_k = _check_int(top_k, "top_k", 2, num_classes)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold: expected a value in [0, 1], got {threshold!r}")
    _checks.check_positive(alpha, "alpha")
    iterations = _check_int(iterations, "iterations", 1)
    _checks.check_one_of(uncertainty, "uncertainty", _UNCERTAINTY)
    if reference is not None:
        _check_simplex(reference, "reference", num_classes)

    p = probs.detach().double()
    changed = topk_uncertainty(p, top_k, uncertainty=uncertainty) >= threshold
    pri = prior.detach().double().to(p.device).unsqueeze(0)
    alpha = float(alpha)
    ref = None if reference is None else reference.detach().double().to(p.device)
    if iterations == 1 and torch.compiler.is_compiling():
        # Every row at once, kept where uncertain: no data-dependent shapes.
        p_a = _power(p, alpha)
        col = (
            (p_a * (~changed).unsqueeze(1)).sum(0, keepdim=True) if ref is None else _power(ref, alpha).sum(0)
        )
        out = torch.where(changed.unsqueeze(1), _closed_form(p_a, col, pri, p), p).to(probs.dtype)
        return CANResult(out, changed) if return_changed else out
    uncertain = changed.nonzero().squeeze(1)
    rows = p[uncertain]
    out = probs.detach().clone()
    if iterations == 1:
        rows_a = _power(rows, alpha)
        if ref is not None:
            col = _power(ref, alpha).sum(0, keepdim=True)
        else:  # confident column sums = all rows minus the uncertain ones (float64)
            col = _power(p, alpha).sum(0, keepdim=True) - rows_a.sum(0, keepdim=True)
        out[uncertain] = _closed_form(rows_a, col, pri, rows).to(out.dtype)
    else:
        if ref is None:
            ref = p[~changed]
        for start in range(0, uncertain.numel(), _CHUNK):
            index = slice(start, start + _CHUNK)
            out[uncertain[index]] = _alternate(rows[index], ref, pri, alpha, iterations).to(out.dtype)
    return CANResult(out, changed) if return_changed else out
