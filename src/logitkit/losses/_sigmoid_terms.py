r"""Elementwise sigmoid losses: focal, hard-truncated and softened binary cross-entropy.

Every loss is linear in the target :math:`t \in [0, 1]`:

.. math::

    L(x, t) = t\, \alpha\, \beta\, \omega\, P(x) + (1 - t)(1 - \alpha)\, \omega\, P(-x),

with :math:`P(x)` the loss of a positive with logit :math:`x`, :math:`\alpha` the positive-class
balance (1 and 1 when disabled), :math:`\beta` ``pos_weight`` and :math:`\omega` ``weight``. With
:math:`\mathrm{sp}(x) = \log(1 + e^x)` (so :math:`-\log\sigma(x) = \mathrm{sp}(-x)`) and
:math:`\ell_m = \log\frac{m}{1-m}`:

* focal: :math:`P(x) = \sigma(-x)^\gamma\, \mathrm{sp}(-x)`,
  :math:`P'(x) = -\sigma(-x)^\gamma\,[\gamma\, \sigma(x)\, \mathrm{sp}(-x) + \sigma(-x)]` (no
  negative power of :math:`1 - p`, so the gradient is finite for every :math:`\gamma \ge 0`);
* truncated: :math:`P(x) = \theta(\ell_m - x)\, \mathrm{sp}(-x)`, the gate not differentiated,
  :math:`\theta(0) = 1/2`;
* softened: :math:`P(x) = \sigma(K(\ell_m - x))\, \mathrm{sp}(-x)`, the weight differentiated.

:math:`\sigma(\pm x)^\gamma` is evaluated as :math:`e^{-\gamma\, \mathrm{sp}(\mp x)}` (a product for
:math:`\gamma \in \{1, 2\}`), :math:`\mathrm{sp}(\pm x)` as :math:`\max(\pm x, 0) + \log(1 +
e^{-|x|})`, exact in both tails. Infinite logits are clamped to :math:`\pm\sqrt{\text{max}}`, so a
``-inf`` logit with target 0 costs 0 and gets gradient 0.

The fused kernel walks the elements in cache-sized blocks, computing the loss and writing the
gradient while in cache; with ``reduction='mean'`` or ``'sum'`` only the gradient is allocated at
full size. A second backward recomputes it; a backward with ``create_graph=True`` differentiates a
plain autograd expression of the same loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from logitkit import _blocks, _checks
from logitkit.losses._softmax_terms import safe_power
from logitkit.losses.cross_entropy import compute_dtype

KINDS = ("focal", "truncated", "softened")


class _Problem:
    """``x``, ``t`` and the expanded optional ``pos_weight`` / ``weight`` viewed as ``(R, L)``."""

    def __init__(self, x, t, pos_weight, weight, alpha, kind, param, margin):
        self.x, self.t, self.pos_weight, self.weight = x, t, pos_weight, weight
        self.alpha, self.kind, self.param, self.margin = alpha, kind, param, margin
        self.cd = compute_dtype(x.dtype)

    def operands(self, rows) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        def take(v):
            if v is None:
                return None
            b = v[rows]
            return b if b.dtype == self.cd else b.to(self.cd)

        return take(self.x), take(self.t), take(self.pos_weight), take(self.weight)

    def coefficients(self, t, pw, wt) -> tuple[Tensor, Tensor]:
        """(positive coefficient :math:`t\\alpha\\beta\\omega`, negative :math:`(1-t)(1-\\alpha)\\omega`)."""
        c1 = t if self.alpha is None else t * self.alpha
        c0 = (1.0 - t) if self.alpha is None else (1.0 - t) * (1.0 - self.alpha)
        if pw is not None:
            c1 = c1 * pw
        if wt is not None:
            c1, c0 = c1 * wt, c0 * wt
        return c1, c0


def _clamped(x: Tensor) -> Tensor:
    big = math.sqrt(torch.finfo(x.dtype).max)
    return x.clamp(-big, big)


def _softplus_pair(xc: Tensor) -> tuple[Tensor, Tensor]:
    r"""(sp(-x), sp(x)) from :math:`\log(1 + e^{-|x|}) = -\log(1 - \sigma(-|x|))`, exact in both
    tails (``sigmoid`` is cheaper than ``exp`` on CPU)."""
    l1 = xc.abs().neg_().sigmoid_().neg_().log1p_().neg_()
    r = torch.relu(xc)
    sp_neg = (r - xc).add_(l1)  # relu(-x) exactly, then + log1p(e^-|x|)
    return sp_neg, r.add_(l1)


def _block(pb: _Problem, rows, need_grad: bool, loss_out: Tensor | None, grad_out: Tensor | None):
    """Loss of one block (written into ``loss_out`` or returned summed) and its gradient
    (written into ``grad_out``); in-place operations on fresh temporaries keep it cache-resident."""
    x, t, pw, wt = pb.operands(rows)
    c1, c0 = pb.coefficients(t, pw, wt)
    xc = _clamped(x)
    sp_neg, sp_pos = _softplus_pair(xc)
    kind, param, margin = pb.kind, pb.param, pb.margin
    if kind == "focal" and param == 0:
        a1, a0 = c1, c0
        if need_grad:
            p = torch.sigmoid(xc)
            q = xc.neg_().sigmoid_()
    elif kind == "focal":
        p = torch.sigmoid(xc)
        q = xc.neg_().sigmoid_()
        if param == 1:
            a1, a0 = q * c1, p * c0
        elif param == 2:
            a1, a0 = torch.mul(q, q).mul_(c1), torch.mul(p, p).mul_(c0)
        else:
            a1 = torch.mul(sp_pos, -param).exp_().mul_(c1)
            a0 = torch.mul(sp_neg, -param).exp_().mul_(c0)
    elif kind == "truncated":
        a1 = torch.sub(margin, xc).sign_().add_(1.0).mul_(0.5).mul_(c1)
        a0 = torch.add(xc, margin).sign_().add_(1.0).mul_(0.5).mul_(c0)
        if need_grad:
            p = torch.sigmoid(xc)
            q = xc.neg_().sigmoid_()
    else:
        g1 = torch.sub(margin, xc).mul_(param).sigmoid_()
        g0 = torch.add(xc, margin).mul_(param).sigmoid_()
        a1, a0 = g1 * c1, g0 * c0
        if need_grad:
            p = torch.sigmoid(xc)
            q = xc.neg_().sigmoid_()
    if loss_out is not None:
        torch.mul(a1, sp_neg, out=loss_out).addcmul_(a0, sp_pos)
        total = None
    else:
        total = torch.mul(a1, sp_neg).addcmul_(a0, sp_pos).sum()
    if not need_grad:
        return total
    # d/dx of a1 sp(-x) + a0 sp(x) with the weights' own derivatives (module docstring).
    if kind == "focal" and param != 0:
        d1 = torch.addcmul(q, p, sp_neg, value=param).mul_(a1)
        d0 = sp_pos.mul_(q).mul_(param).add_(p).mul_(a0)
    elif kind == "softened":
        # d/dx [g1 sp(-x)] = -K g1 (1 - g1) sp(-x) - g1 q; d/dx [g0 sp(x)] = K g0 (1 - g0) sp(x) + g0 p
        d1 = torch.rsub(g1, 1.0).mul_(sp_neg).mul_(param).add_(q).mul_(a1)
        d0 = torch.rsub(g0, 1.0).mul_(sp_pos).mul_(param).add_(p).mul_(a0)
    else:  # cross-entropy-like: the gate is a constant
        d1 = q.mul_(a1)
        d0 = p.mul_(a0)
    torch.sub(d0, d1, out=grad_out)
    return total


def _fused_pass(pb: _Problem, need_grad: bool, elementwise: bool) -> tuple[Tensor, Tensor | None]:
    """(loss per element, or its sum; gradient per element or None)."""
    r, length = pb.x.shape
    loss = torch.empty((r, length), dtype=pb.cd, device=pb.x.device) if elementwise else None
    total = torch.zeros((), dtype=pb.cd, device=pb.x.device)
    grad = torch.empty((r, length), dtype=pb.cd, device=pb.x.device) if need_grad else None
    rows_per_block = max(1, _blocks.BLOCK_BYTES // (4 * max(length, 1)))
    with torch.autocast(device_type=pb.x.device.type, enabled=False):
        for r0 in range(0, r, rows_per_block):
            rows = slice(r0, min(r, r0 + rows_per_block))
            block_total = _block(
                pb,
                rows,
                need_grad,
                None if loss is None else loss[rows],
                None if grad is None else grad[rows],
            )
            if block_total is not None:
                total = total + block_total
    if grad is not None and grad.dtype != pb.x.dtype:
        grad = grad.to(pb.x.dtype)
    return (loss if loss is not None else total), grad


def reference_loss(pb: _Problem, x: Tensor, t: Tensor) -> Tensor:
    """The per-element loss as a plain autograd expression of ``x`` and ``t``."""
    x = _clamped(x.to(pb.cd))
    t = t.to(pb.cd)
    sp_neg, sp_pos = -F.logsigmoid(x), -F.logsigmoid(-x)
    kind, param, margin = pb.kind, pb.param, pb.margin
    if kind == "focal":
        w1, w0 = safe_power(torch.sigmoid(-x), param), safe_power(torch.sigmoid(x), param)
    elif kind == "truncated":
        w1 = ((margin - x.detach()).sign() + 1.0) * 0.5
        w0 = ((x.detach() + margin).sign() + 1.0) * 0.5
    else:
        w1, w0 = torch.sigmoid(param * (margin - x)), torch.sigmoid(param * (x + margin))
    pw = None if pb.pos_weight is None else pb.pos_weight.to(pb.cd)
    wt = None if pb.weight is None else pb.weight.to(pb.cd)
    c1, c0 = pb.coefficients(t, pw, wt)
    return c1 * w1 * sp_neg + c0 * w0 * sp_pos


class _SigmoidTerms(torch.autograd.Function):
    """Per-element loss ``(R, L)`` (``elementwise``) or its sum; gradient computed in forward."""

    @staticmethod
    def forward(ctx, x, t, pos_weight, weight, alpha, kind, param, margin, elementwise):  # type: ignore[override]
        pb = _Problem(x, t, pos_weight, weight, alpha, kind, param, margin)
        out, grad_buffer = _fused_pass(pb, need_grad=x.requires_grad, elementwise=elementwise)
        ctx.save_for_backward(x, t, pos_weight, weight)
        ctx.grad_buffer = grad_buffer
        ctx.config = (alpha, kind, param, margin, elementwise)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, t, pos_weight, weight = ctx.saved_tensors
        alpha, kind, param, margin, elementwise = ctx.config
        pb = _Problem(x, t, pos_weight, weight, alpha, kind, param, margin)
        grad_x = grad_t = None
        wanted = [v for v, need in ((x, ctx.needs_input_grad[0]), (t, ctx.needs_input_grad[1])) if need]
        if torch.is_grad_enabled() or ctx.needs_input_grad[1]:
            # create_graph=True, or target gradients: differentiate the autograd expression.
            with torch.enable_grad():
                loss = reference_loss(pb, x, t)
                grads = torch.autograd.grad(
                    loss if elementwise else loss.sum(), wanted, grad, create_graph=torch.is_grad_enabled()
                )
            grads = list(grads)
            grad_x = grads.pop(0).to(x.dtype) if ctx.needs_input_grad[0] else None
            grad_t = grads.pop(0).to(t.dtype) if ctx.needs_input_grad[1] else None
        elif ctx.needs_input_grad[0]:
            buffer, ctx.grad_buffer = ctx.grad_buffer, None
            if buffer is None:  # a second backward through a retained graph
                _, buffer = _fused_pass(pb, need_grad=True, elementwise=False)
            grad_x = buffer.mul_(grad.to(buffer.dtype))
        return grad_x, grad_t, None, None, None, None, None, None, None


# --------------------------------------------------------------------------------------------
# Validation and reduction shared by the public sigmoid-family losses
# --------------------------------------------------------------------------------------------


def prepare_binary(input, target, *, pos_weight, weight, reduction):
    """Validation shared by the sigmoid-family losses."""
    _checks.check_floating(input, "input")
    _checks.check_floating(target, "target")
    _checks.check_same_shape(input, target, "input", "target")
    _checks.check_in_unit_interval(target, "target")
    _checks.check_reduction(reduction)
    for value, name in ((pos_weight, "pos_weight"), (weight, "weight")):
        if value is None:
            continue
        _checks.check_floating(value, name)
        try:
            shape = torch.broadcast_shapes(value.shape, input.shape)
        except RuntimeError:
            shape = None
        if shape != input.shape:
            raise ValueError(
                f"{name}: expected a shape broadcastable to the input's {tuple(input.shape)}, "
                f"got {tuple(value.shape)}"
            )
        if value.requires_grad:
            raise ValueError(f"{name}: treated as a constant; pass {name}.detach()")
        _checks.check_nonnegative_values(value, name)


def finish_binary(out: Tensor, reduction: str, numel: int, dtype: torch.dtype) -> Tensor:
    if reduction == "mean" and numel:
        out = out / numel
    return out.to(dtype)


def elementwise_loss(
    kind: str,
    param: float,
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | None,
    pos_weight: Tensor | None,
    weight: Tensor | None,
    margin: float = 0.0,
    elementwise: bool,
) -> Tensor:
    """The loss per element (``elementwise``, input's shape) or its sum, in the compute dtype.

    ``param`` is :math:`\\gamma` (focal) or :math:`K` (softened); ``margin`` is :math:`\\ell_m`.
    ``pos_weight`` and ``weight`` must broadcast to ``input``.
    """
    shape = input.shape
    length = shape[-1] if input.dim() > 1 else 1
    rows = input.numel() // length if length else 0

    def as_rows(v):
        if v is None:
            return None
        return v.expand(shape).reshape(rows, length)

    x, t = input.reshape(rows, length), target.reshape(rows, length)
    args = (x, t, as_rows(pos_weight), as_rows(weight), alpha, kind, param, margin, elementwise)
    if torch.is_grad_enabled() and (x.requires_grad or t.requires_grad):
        out = _SigmoidTerms.apply(*args)
    else:
        out, _ = _fused_pass(_Problem(*args[:-1]), need_grad=False, elementwise=elementwise)
    return out.reshape(shape) if elementwise else out
