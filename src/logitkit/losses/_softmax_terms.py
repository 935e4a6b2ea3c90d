r"""Softmax losses with per-class terms: focal, hard-truncated and softened cross-entropy.

Each loss has per-class terms :math:`\phi_{n,c}` and the shared single-label semantics of
:mod:`logitkit._reduce`: :math:`\ell_n = \sum_c a_{n,c}\, \phi_{n,c}` with coefficients
:math:`a_{n,c} = q_{n,c}\, w_c\, \alpha_c` (``q`` the label-smoothed target, ``w`` the class weights,
``α`` an optional per-class factor that, unlike ``w``, does not enter the ``'mean'`` divisor).

With :math:`l = \log p = \mathrm{log\_softmax}(z)` and :math:`u = 1 - p`:

* ``focal``: :math:`\phi = -u^\gamma l`, so :math:`\partial \phi / \partial l = -u^\gamma + \gamma
  u^{\gamma-1} p\, l`; finite for every :math:`\gamma \ge 0` because :math:`u^{\gamma-1} p\, l \to 0`
  as :math:`p \to 1` (it is evaluated as :math:`(u^\gamma / u)\, p\, l` with :math:`u` floored at
  the smallest normal number, which only ever multiplies a zero).
* ``truncated``: :math:`\phi = -\theta(\log m - l)\, l`, with :math:`\theta(0) = 1/2` and the gate
  not differentiated.
* ``softened``: :math:`\phi = -s\, l` with :math:`s = \mathrm{softmax}(-K z)`, the weight
  differentiated; masked (``-inf``) classes are excluded from :math:`s` as well.

For the first two, :math:`\partial \ell_n / \partial z_j = b_j - p_j \sum_c b_c` with
:math:`b_c = a_c\, \partial\phi_c/\partial l_c`. For the softened loss, with :math:`v_c = a_c s_c
(-l_c)`, :math:`V = \sum_c v_c = \ell_n` and :math:`B = \sum_c a_c s_c`:
:math:`\partial \ell_n / \partial z_j = K (s_j V - v_j) - a_j s_j + p_j B`.

Two paths. Index targets without label smoothing have one nonzero coefficient per sample, and the
focal and truncated losses are then functions of the per-sample cross-entropy
:math:`c_n = -\log p_{y_n}`: they reuse the fused :func:`~logitkit.losses.cross_entropy.cross_entropy`
kernel and transform :math:`c_n` (a few operations on ``(N,)`` vectors). Every other case runs the
fused kernel below: the logits are walked in cache-sized blocks (:mod:`logitkit._blocks`), each
block computes the loss and writes the gradient while in cache, and backward scales it in place
(as in :mod:`logitkit.losses.cross_entropy`). A second backward recomputes the buffer; a backward
with ``create_graph=True`` differentiates a plain autograd expression of the same loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from logitkit import _blocks, _checks, _reduce
from logitkit.losses.cross_entropy import compute_dtype, cross_entropy
from logitkit.ops.softmax import _fill_dead_

KINDS = ("focal", "truncated", "softened")


def safe_power(u: Tensor, gamma: float) -> Tensor:
    r""":math:`u^\gamma` for :math:`u \ge 0` with a finite autograd gradient at :math:`u = 0`.

    ``torch.pow`` differentiates to :math:`\gamma u^{\gamma-1} = \infty` at 0 for
    :math:`0 < \gamma < 1` (and NaN after multiplying a zero); here the gradient there is 0 (the
    value at :math:`u = 0` is the constant :math:`0^\gamma`).
    """
    if gamma == 0:
        return torch.ones_like(u)
    if gamma == 1:
        return u
    if gamma == 2:
        return u * u
    positive = u > 0
    safe = torch.where(positive, u, 1.0)
    return torch.where(positive, torch.exp(gamma * torch.log(safe)), 0.0)


# --------------------------------------------------------------------------------------------
# Index targets without smoothing: transform the per-sample cross-entropy
# --------------------------------------------------------------------------------------------


def _per_sample_from_ce(kind: str, param: float, ce: Tensor, coef: Tensor) -> Tensor:
    """:math:`a_n\\, g(c_n)` for the focal or truncated transform ``g`` of the cross-entropy."""
    if kind == "focal":
        if param == 0:
            return coef * ce
        # 1 - p_y, exact near p_y = 1; the clamp keeps an infinite loss (a masked target class)
        # from turning the gradient into inf * 0.
        u = -torch.expm1(-ce.clamp_max(torch.finfo(ce.dtype).max))
        return coef * safe_power(u, param) * ce
    # truncated: active while p_y <= m, i.e. c >= -log m; theta(0) = 1/2; the gate is a constant.
    with torch.no_grad():
        gate = (ce.detach() + param).sign_().add_(1.0).mul_(0.5)
    return coef * gate * ce


def _index_path(kind, param, input, target, tgt, cvec, ignore_index):
    cd = compute_dtype(input.dtype)
    x = input if input.dtype == cd else input.to(cd)
    ce = cross_entropy(x, target, ignore_index=ignore_index, reduction="none")
    assert tgt.index is not None and tgt.valid is not None
    coef = tgt.valid.to(cd) if cvec is None else torch.where(tgt.valid, cvec[tgt.index], 0.0)
    return _per_sample_from_ce(kind, param, ce, coef)


# --------------------------------------------------------------------------------------------
# The fused kernel for dense coefficients
# --------------------------------------------------------------------------------------------


class _Problem:
    """One call on ``(N, C, S)`` logits; see :class:`logitkit.losses.cross_entropy._Problem`.

    Index targets: ``index`` ``(N, S)``, ``coef`` :math:`= (1-\\varepsilon) v_y [\\text{valid}]`,
    ``smooth`` :math:`= (\\varepsilon/C) [\\text{valid}]`. Probability targets: ``probs``.
    ``cvec`` :math:`= w \\odot \\alpha` or None.
    """

    def __init__(self, x, index, coef, smooth, probs, cvec, eps, kind, param):
        _, c, s = x.shape
        self.x, self.index, self.coef, self.smooth, self.probs = x, index, coef, smooth, probs
        self.cvec, self.eps, self.kind, self.param = cvec, eps, kind, param
        self.cd = compute_dtype(x.dtype)
        # Index targets without smoothing: one coefficient per row (the softened loss's sparse path).
        self.sparse = index is not None and smooth is None
        self.c_block = None if cvec is None else cvec.view((1, c) if s == 1 else (1, c, 1))

    def scores(self, rows, cols) -> Tensor:
        block = self.x[rows, :, cols]
        return block if block.dtype == self.cd else block.to(self.cd)

    def coefficients(self, rows, cols, like: Tensor) -> Tensor:
        """Dense :math:`a` for one block, shaped like the scores block (never modified in place)."""
        c = self.x.shape[1]
        if self.probs is not None:
            a = self.probs[rows, :, cols]
            a = a if a.dtype == self.cd else a.to(self.cd)
            if self.eps > 0:
                a = torch.mul(a, 1.0 - self.eps).add_(self.eps / c)
                return a if self.c_block is None else a.mul_(self.c_block)
            return a if self.c_block is None else a * self.c_block
        index = self.index[rows, cols].unsqueeze(1)
        coef = self.coef[rows, cols].unsqueeze(1)
        if self.smooth is None:
            return torch.zeros_like(like).scatter_(1, index, coef)
        step = self.smooth[rows, cols].unsqueeze(1)
        a = step.expand_as(like).clone() if self.c_block is None else step * self.c_block
        return a.scatter_add_(1, index, coef)

    def dense_coefficients(self) -> Tensor:
        """:math:`a` for the whole ``(N, C, S)`` input (for the autograd expression)."""
        n, c, s = self.x.shape
        if self.probs is not None:
            a = self.probs.to(self.cd)
            if self.eps > 0:
                a = a * (1.0 - self.eps) + self.eps / c
        else:
            a = torch.zeros((n, c, s), dtype=self.cd, device=self.x.device)
            a.scatter_(1, self.index.unsqueeze(1), self.coef.unsqueeze(1))
            if self.smooth is not None:
                a = a + self.smooth.unsqueeze(1) * (1.0 if self.cvec is None else self.cvec.view(1, c, 1))
            return a
        return a if self.cvec is None else a * self.cvec.view(1, c, 1)


def _finish_gradient(b: Tensor, p: Tensor, out: Tensor) -> None:
    """``out = b - p * sum(b)`` (per row), written in place when ``out`` is a contiguous block."""
    total = b.sum(1, keepdim=True)
    if out.is_contiguous() and out.dtype == b.dtype and not torch.compiler.is_compiling():
        torch.addcmul(b, p, total, value=-1.0, out=out)
    else:
        out.copy_(b.addcmul_(p, total, value=-1.0))


def _softmax_masked_neg(z: Tensor, k: float) -> Tensor:
    r""":math:`\mathrm{softmax}(-K z)` over the finite entries (masked classes stay masked)."""
    neg = z * (-k)
    if torch.compiler.is_compiling() or bool((z.amin(1) == -math.inf).any()):
        neg.masked_fill_(torch.isneginf(z), -math.inf)
    return torch.softmax(neg, 1)


def _softened_sparse_block(pb: _Problem, z: Tensor, rows, cols, grad_out: Tensor | None):
    r"""The softened loss for index targets without smoothing, reading only the target entries.

    With :math:`a = c\, e_y`: :math:`\ell = c\, s_y (-l_y)` and
    :math:`\nabla = K \ell\, s + c\, s_y\, p - (K \ell + c\, s_y)\, e_y`.
    """
    k = pb.param
    m = z.amax(1, keepdim=True)
    p = torch.softmax(z, 1)
    s = _softmax_masked_neg(z, k)
    index = pb.index[rows, cols].unsqueeze(1)
    coef = pb.coef[rows, cols].unsqueeze(1)
    # log p_y = z_y - LSE with LSE = m - log max p: exact (max p >= 1/C never underflows)
    logp_y = z.gather(1, index) - m + p.amax(1, keepdim=True).log()
    s_y = s.gather(1, index)
    weight = coef * s_y  # 0 for an ignored row or a masked target (excluded from s)
    loss = torch.where(weight == 0, 0.0, -weight * logp_y)
    if grad_out is not None:
        direct = grad_out.is_contiguous() and grad_out.dtype == s.dtype and not torch.compiler.is_compiling()
        grad = torch.mul(s, loss * k, out=grad_out) if direct else s.mul_(loss * k)
        grad.addcmul_(p, weight).scatter_add_(1, index, -(loss * k + weight))
        if not direct:
            grad_out.copy_(grad)
    return loss.squeeze(1), m.squeeze(1)


def _block(pb: _Problem, z: Tensor, a: Tensor, grad_out: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-row loss and row maximum of one block; writes the per-row gradient into ``grad_out``.

    Operations are in place on fresh temporaries so that the block stays in cache.
    """
    finfo = torch.finfo(z.dtype)
    m = z.amax(1, keepdim=True)
    p = torch.softmax(z, 1)
    # 1 - max p summed from the other probabilities (exact even when max p rounds to 1), so
    # log p and 1 - p are exact where p is near 1; elsewhere p <= 1/2 and 1 - p is exact.
    p_max, arg = p.max(1, keepdim=True)
    rest = p.scatter_(1, arg, 0.0).sum(1, keepdim=True)
    p.scatter_(1, arg, p_max)
    # log p; a masked class (-inf) is floored at the most negative finite value, so that a zero
    # coefficient on it gives 0 and a positive one a huge (not NaN) loss.
    logp = torch.sub(z, m - torch.log1p(-rest)).clamp_min_(finfo.min)
    kind, param = pb.kind, pb.param
    if kind == "focal":
        u = torch.rsub(p, 1.0).scatter_(1, arg, rest)
        r = None  # u^(gamma - 1) for a general gamma: one pow gives both u^gamma and the gradient's factor
        if param in (0, 1, 2):
            w = None if param == 0 else (u if param == 1 else u * u)
        else:
            # u is floored at tiny so that u^(gamma - 1) stays finite (gamma >= 0: at most 1/tiny);
            # w = u^(gamma-1) u is then exactly 0 where u is 0.
            r = u.clamp_min(finfo.tiny).pow_(param - 1.0)
            w = torch.mul(r, u)
        weighted = torch.mul(logp, a) if w is None else torch.mul(logp, w).mul_(a)
    elif kind == "truncated":
        gate = torch.sub(param, logp).sign_().add_(1.0).mul_(0.5)
        weighted = torch.mul(logp, gate).mul_(a)
    else:
        s = _softmax_masked_neg(z, param)  # masked classes leave softmax(-Kz) too
        weighted = torch.mul(logp, s).mul_(a)
    # weighted = -a * phi
    loss = weighted.sum(1).neg_()
    if grad_out is None:
        return loss, m.squeeze(1)
    if kind == "softened":
        # K (s V - v) - a s + p B with v = -weighted, V = loss, B = sum a s
        a_s = torch.mul(a, s)
        grad = s.mul_(loss.unsqueeze(1) * param).add_(weighted, alpha=param).sub_(a_s)
        grad_out.copy_(grad.addcmul_(p, a_s.sum(1, keepdim=True)))
        return loss, m.squeeze(1)
    # b = a * dphi/dl
    if kind == "truncated":
        b = gate.mul_(a).neg_()
    elif w is None:  # focal, gamma = 0: cross-entropy
        b = a.neg()
    elif param == 1:
        b = torch.mul(p, logp).sub_(u).mul_(a)
    elif param == 2:
        b = torch.mul(u, p).mul_(logp).mul_(2.0).sub_(w).mul_(a)
    else:
        # gamma u^(gamma-1) p l - u^gamma
        assert r is not None
        b = r.mul_(p).mul_(logp).mul_(param).sub_(w).mul_(a)
    _finish_gradient(b, p, grad_out)
    return loss, m.squeeze(1)


def _fused_pass(pb: _Problem, need_grad: bool) -> tuple[Tensor, Tensor | None]:
    n, c, s = pb.x.shape
    loss = torch.empty((n, s), dtype=pb.cd, device=pb.x.device)
    grad = torch.empty_like(pb.x) if need_grad else None
    row_max = torch.empty_like(loss)
    with torch.autocast(device_type=pb.x.device.type, enabled=False):
        for rows, cols in _blocks.blocks(n, c, s):
            z = pb.scores(rows, cols)
            grad_block = None if grad is None else grad[rows, :, cols]
            if pb.kind == "softened" and pb.sparse:
                block_loss, block_max = _softened_sparse_block(pb, z, rows, cols, grad_block)
            else:
                block_loss, block_max = _block(pb, z, pb.coefficients(rows, cols, z), grad_block)
            loss[rows, cols] = block_loss
            row_max[rows, cols] = block_max
    # A row of all -inf logits ("dead") has nothing to learn from: loss 0, gradient 0.
    dead = row_max == -math.inf
    if grad is not None:
        _fill_dead_(grad, dead.unsqueeze(1), 0.0)
    return torch.where(dead, 0.0, loss), grad


def reference_terms(kind: str, param: float, z: Tensor) -> Tensor:
    """Per-class terms :math:`\\phi` as a plain autograd expression (``create_graph``, target
    gradients); dead rows give 0."""
    dead = (z.amax(1, keepdim=True) == -math.inf).expand_as(z)
    safe_z = torch.where(dead, 0.0, z)
    # A masked class has log p = -inf; floored at the most negative finite value, its term is huge
    # rather than infinite, and a zero coefficient on it yields a zero (not NaN) gradient.
    logp = torch.log_softmax(safe_z, 1).clamp_min(torch.finfo(z.dtype).min)
    if kind == "focal":
        phi = -safe_power(-torch.expm1(logp), param) * logp
    elif kind == "truncated":
        gate = ((param - logp.detach()).sign() + 1.0) * 0.5
        phi = -gate * logp
    else:
        neg_inf = torch.isneginf(safe_z)
        neg = torch.where(neg_inf, -math.inf, -param * torch.where(neg_inf, 0.0, safe_z))
        s = torch.softmax(neg, 1)
        phi = -s * torch.where(neg_inf, 0.0, logp)
    return torch.where(dead, 0.0, phi)


def _reference_loss(pb: _Problem, x: Tensor) -> Tensor:
    a = pb.dense_coefficients()
    phi = reference_terms(pb.kind, pb.param, x.to(pb.cd))
    return torch.where(a == 0, 0.0, a * phi).sum(1)


class _SoftmaxTerms(torch.autograd.Function):
    """Per-sample loss ``(N, S)``; the gradient is computed in forward (module docstring)."""

    @staticmethod
    def forward(ctx, x, index, coef, smooth, probs, cvec, eps, kind, param):  # type: ignore[override]
        pb = _Problem(x, index, coef, smooth, probs, cvec, eps, kind, param)
        loss, grad_buffer = _fused_pass(pb, need_grad=x.requires_grad)
        ctx.save_for_backward(x, index, coef, smooth, probs, cvec)
        ctx.grad_buffer = grad_buffer
        ctx.eps, ctx.kind, ctx.param = eps, kind, param
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, index, coef, smooth, probs, cvec = ctx.saved_tensors
        pb = _Problem(x, index, coef, smooth, probs, cvec, ctx.eps, ctx.kind, ctx.param)
        g = grad.to(pb.cd).unsqueeze(1)
        grad_probs = None
        if probs is not None and ctx.needs_input_grad[4]:
            # d loss / d t_c = (1 - eps) cvec_c phi_c
            phi = reference_terms(pb.kind, pb.param, x.detach().to(pb.cd))
            dq = torch.where(g == 0, 0.0, phi * g * (1.0 - ctx.eps))
            if cvec is not None:
                dq = dq * cvec.view(1, -1, 1)
            grad_probs = dq.to(probs.dtype)
        grad_input = None
        if ctx.needs_input_grad[0]:
            if torch.is_grad_enabled():
                # create_graph=True: differentiate an autograd expression of the same loss.
                with torch.enable_grad():
                    (grad_input,) = torch.autograd.grad(_reference_loss(pb, x), x, grad, create_graph=True)
            else:
                buffer, ctx.grad_buffer = ctx.grad_buffer, None
                if buffer is None:  # a second backward through a retained graph
                    _, buffer = _fused_pass(pb, need_grad=True)
                grad_input = buffer.mul_(g.to(buffer.dtype))
        return grad_input, None, None, None, grad_probs, None, None, None, None


# --------------------------------------------------------------------------------------------
# Validation and reduction shared by the public softmax-family losses (focal, truncated)
# --------------------------------------------------------------------------------------------


def check_unit_scalar(value: object, name: str, *, low: float = 0.0, high: float = 1.0) -> float:
    """A Python number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float in [{low:g}, {high:g}], got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name}: expected a value in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def check_class_factor(value: Tensor | None, num_classes: int, name: str) -> Tensor | None:
    """An optional ``(C,)`` tensor of per-class factors in [0, 1] (``alpha``)."""
    if value is None:
        return None
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name}: expected None or a tensor of {num_classes} per-class factors in [0, 1], "
            f"got {type(value).__name__} (for a binary task use sigmoid_focal_loss)"
        )
    _checks.check_class_weight(value, num_classes, name)
    _checks.check_in_unit_interval(value, name)
    return value


def prepare_single_label(input, target, *, weight, ignore_index, reduction, label_smoothing):
    """Validation and unbatched handling shared by the softmax-family losses.

    Returns ``(input, target, tgt, unbatched)`` with a batch dimension added to unbatched input.
    """
    _checks.check_floating(input, "input")
    _checks.check_tensor(target, "target")
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    tgt = _reduce.class_target(input, target, ignore_index=ignore_index)
    if weight is not None:
        _checks.check_class_weight(weight, tgt.num_classes)
    _checks.check_label_smoothing(label_smoothing)
    _checks.check_reduction(reduction)
    return input, target, tgt, unbatched


def finish_single_label(per_sample, tgt, weight, reduction, unbatched, dtype):
    """torch's reduction of a per-sample loss (weighted mean by :math:`\\sum w_{y_n}`)."""
    cd = per_sample.dtype
    w = None if weight is None else weight.to(cd)
    denominator = _reduce.mean_denominator(tgt, w, cd) if reduction == "mean" else None
    out = _reduce.reduce_loss(per_sample, reduction, denominator)
    if unbatched and reduction == "none":
        out = out.squeeze(0)
    return out.to(dtype)


def class_vector(weight: Tensor | None, alpha: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """:math:`w \\odot \\alpha` in ``dtype`` (None when both are None)."""
    if weight is None and alpha is None:
        return None
    if weight is None:
        return alpha.to(dtype)
    return weight.to(dtype) if alpha is None else weight.to(dtype) * alpha.to(dtype)


# --------------------------------------------------------------------------------------------
# Entry point shared by the public losses
# --------------------------------------------------------------------------------------------


def per_sample_loss(
    kind: str,
    param: float,
    input: Tensor,
    target: Tensor,
    tgt: _reduce.ClassTarget,
    *,
    cvec: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
) -> Tensor:
    """Per-sample loss ``(N, d1, ...)`` in the compute dtype (float32 for half inputs).

    ``input`` is batched ``(N, C, d1, ...)``, ``tgt`` its validated target and ``cvec`` the
    per-class factor :math:`w \\odot \\alpha` in the compute dtype (or None). ``param`` is
    :math:`\\gamma` (focal), :math:`\\log m` (truncated) or :math:`K` (softened).
    """
    eps = float(label_smoothing)
    if tgt.index is not None and eps == 0 and kind != "softened":
        return _index_path(kind, param, input, target, tgt, cvec, ignore_index)
    cd = compute_dtype(input.dtype)
    n, c = input.shape[:2]
    spatial = math.prod(input.shape[2:])
    x = input.reshape(n, c, spatial)
    args = (x, *_reduce.flat_target(tgt, n, spatial, cvec, eps, cd), cvec, eps, kind, param)
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or (args[4] is not None and args[4].requires_grad)
    )
    if needs_grad:
        per_sample = _SoftmaxTerms.apply(*args)
    else:
        per_sample, _ = _fused_pass(_Problem(*args), need_grad=False)
    return per_sample.reshape(n, *input.shape[2:])
