r"""Sparse (index) ZLPR kernels: the plain composition and the fused, blocked autograd Function.

Per row of ``(N, C)`` logits :math:`s` with a set :math:`\Omega` of positive class indices,

.. math::

    \ell = \mathrm{LSE}\big(\{-s_j\}_{j \in \Omega} \cup \{0\}\big)
         + \mathrm{LSE}\big(\{s_i\}_{i \notin \Omega} \cup \{0\}\big).

The negative term is computed the exact way (spec §1.6): the positives of a *copy* of the row are set
to :math:`-\infty` (by ``scatter_reduce(amin)``, deterministic under duplicate indices) and a native
softmax runs on it; there is no :math:`\log(1 - e^{a})` subtraction and hence no cancellation
(bert4keras#436). The copy is the gradient buffer itself, one cache-sized row block at a time, so the
only full-size allocation is the gradient. The positive term touches only the ``(N, P)`` gathered
logits.

Indices are cleaned once by :func:`clean_positives`: sorted per row, padding and repeated indices
marked inactive (a duplicate is counted once), ``-inf`` logits excluded.
"""

from __future__ import annotations

import torch
from torch import Tensor

from logitkit import _blocks
from logitkit.losses._zlpr_dense import log1p_sum_exp
from logitkit.losses.cross_entropy import compute_dtype
from logitkit.ops.softmax import _fill_dead_

__all__ = ["clean_positives", "plain_sparse_zlpr", "sparse_zlpr"]

_NEG_INF = float("-inf")


def clean_positives(positives: Tensor, pad_index: int) -> tuple[Tensor, Tensor]:
    """``(index, active)``: row-sorted indices with padding and repeats replaced by 0 and marked
    inactive in the bool tensor ``active``."""
    index, _ = positives.sort(1)
    active = index != pad_index
    if index.shape[1] > 1:
        repeat = torch.zeros_like(active)
        repeat[:, 1:] = index[:, 1:] == index[:, :-1]
        active &= ~repeat
    return torch.where(active, index, 0), active


def _positive_term(x: Tensor, index: Tensor, active: Tensor, cd: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per row :math:`\\mathrm{LSE}(\\{-s_j\\} \\cup \\{0\\})` and the arguments :math:`-s_j`
    (``-inf`` where inactive or where the logit is ``-inf``)."""
    picked = x.gather(1, index).to(cd)
    use = active & ~torch.isneginf(picked)
    a = torch.where(use, -torch.where(use, picked, 0.0), _NEG_INF)
    return log1p_sum_exp(a), a


def plain_sparse_zlpr(x: Tensor, index: Tensor, active: Tensor) -> Tensor:
    """Per-row sparse ZLPR as a composition of torch ops (differentiable twice); materialises a
    dense ``(N, C)`` positive mask. Used under ``torch.compile`` and in the tests."""
    cd = compute_dtype(x.dtype)
    x = x.to(cd)
    marks = torch.zeros(x.shape, dtype=cd, device=x.device)
    marks = marks.scatter_reduce(1, index, active.to(cd), "amax", include_self=True)
    neg_term = log1p_sum_exp(x.masked_fill(marks > 0, _NEG_INF))
    pos_term, _ = _positive_term(x, index, active, cd)
    return neg_term + pos_term


def _sparse_pass(x: Tensor, index: Tensor, active: Tensor, factor: float, need_grad: bool):
    n, c = x.shape
    cd = compute_dtype(x.dtype)
    inf = torch.tensor(float("inf"), dtype=cd, device=x.device)
    # scatter_reduce(amin) sources: -inf sends a positive out of the negative softmax, +inf is a no-op.
    fill = torch.where(active, -inf, inf)
    stats = torch.empty(2, n, dtype=cd, device=x.device)  # shift m, largest probability
    grad = torch.empty(n, c, dtype=x.dtype, device=x.device) if need_grad else None
    rows = max(1, min(n, _blocks.BLOCK_BYTES // (4 * max(c, 1))))
    scratch = None
    if grad is None or grad.dtype != cd:
        scratch = torch.empty(rows, c, dtype=cd, device=x.device)
    with torch.autocast(device_type=x.device.type, enabled=False):
        for n0 in range(0, n, rows):
            n1 = min(n, n0 + rows)
            r = slice(n0, n1)
            w = scratch[: n1 - n0] if scratch is not None else grad[r]
            w.copy_(x[r])
            w.scatter_reduce_(1, index[r], fill[r], "amin", include_self=True)
            torch.amax(w, 1, out=stats[0, r])
            torch._softmax(w, 1, False, out=w)
            torch.amax(w, 1, out=stats[1, r])
            if grad is not None:
                # e^{s_i} / (1 + Q) = p_i * sigmoid(LSE); LSE = m - log max p.
                scale = torch.sigmoid(stats[0, r] - stats[1, r].log())
                w.mul_((scale * factor).unsqueeze(1))
                if w.data_ptr() != grad[r].data_ptr():
                    grad[r].copy_(w)
        dead = torch.isneginf(stats[0])  # no negative left: term 0, gradient 0
        lse_neg = torch.where(dead, _NEG_INF, stats[0] - stats[1].log())
        loss = torch.nn.functional.softplus(lse_neg)
        pos_term, a = _positive_term(x, index, active, cd)
        loss = loss + pos_term
        if grad is not None:
            _fill_dead_(grad, dead.unsqueeze(1), 0.0)
            grad_pos = torch.exp(a - pos_term.unsqueeze(1)).mul_(-factor)
            grad.scatter_add_(1, index, grad_pos.to(grad.dtype))
    return loss, grad


class _SparseZLPR(torch.autograd.Function):
    """Per-sample loss ``(N,)``; gradient computed in forward, pre-multiplied by ``factor``."""

    @staticmethod
    def forward(ctx, x, index, active, factor):  # type: ignore[override]
        loss, grad = _sparse_pass(x, index, active, factor, need_grad=True)
        ctx.save_for_backward(x, index, active)
        ctx.grad_buffer = grad
        ctx.factor = factor
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, index, active = ctx.saved_tensors
        if torch.is_grad_enabled():
            with torch.enable_grad():
                exact = plain_sparse_zlpr(x, index, active)
                (g,) = torch.autograd.grad(exact, x, grad.to(exact.dtype), create_graph=True)
            return g, None, None, None
        buffer, ctx.grad_buffer = ctx.grad_buffer, None
        factor = ctx.factor
        if buffer is None:  # a second backward through a retained graph: same numbers again
            _, buffer = _sparse_pass(x, index, active, factor, need_grad=True)
        scale = grad / factor
        if not bool((scale == 1).all()):
            buffer.mul_(scale.unsqueeze(1).to(buffer.dtype))
        return buffer, None, None, None


def sparse_zlpr(x: Tensor, index: Tensor, active: Tensor, factor: float) -> Tensor:
    """Per-sample sparse ZLPR of ``(N, C)`` logits by the fused kernel (eager mode)."""
    n, c = x.shape
    if n == 0 or c == 0:
        return x.sum(1).to(compute_dtype(x.dtype)) * 0.0
    if torch.is_grad_enabled() and x.requires_grad:
        return _SparseZLPR.apply(x, index, active, factor)
    loss, _ = _sparse_pass(x, index, active, factor, need_grad=False)
    return loss
