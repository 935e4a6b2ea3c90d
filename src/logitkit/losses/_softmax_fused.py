r"""Fused, blocked softmax kernels for losses built on functions of the class probabilities.

Both kernels follow :mod:`logitkit.losses.cross_entropy`: the logits, viewed as ``(N, C, S)``, are
walked in cache-sized blocks (:mod:`logitkit._blocks`); each block runs the native softmax kernel
once and the gradient is written while the block is in cache, so only the outputs are allocated at
full size. float16 / bfloat16 logits are processed in float32.

* :class:`ClassTermLoss` — per-sample :math:`\ell_n = \sum_c a_{n,c}\, \phi(p_{n,c})` with
  :math:`p = \mathrm{softmax}(s\,x_n)` and :math:`a = q \odot w` (the shared target semantics of
  :mod:`logitkit._reduce`). With :math:`\psi(p) = p\,\phi'(p)`,

  .. math::

      \frac{\partial \ell_n}{\partial z_{n,j}} = a_{n,j}\, \psi(p_{n,j})
      - p_{n,j} \sum_c a_{n,c}\, \psi(p_{n,c})

  (cross-entropy: :math:`\phi = -\log p`, :math:`\psi = -1`). The gradient is written in forward
  and scaled in place by the first backward; a second backward through a retained graph recomputes
  it. Terms (``kind``, ``params``): ``"nll", ()`` (cross-entropy, with an optional target shift
  for margin losses), ``"tailr", (γ,)``
  (:math:`\phi = -\log(\gamma + (1-\gamma)p)/(1-\gamma)`, :math:`\psi = -p/(\gamma + (1-\gamma)p)`),
  ``"tailr_weighted", (γ, b)`` (:math:`\phi = -\mathrm{sg}[W] \log p`, :math:`\psi = -W`,
  :math:`W = \max(b, p/(\gamma + (1-\gamma)p))`) and ``"error", ()`` (:math:`\phi = 1 - p`,
  :math:`\psi = -p`).
* :class:`ClassSums` — per-class batch sums :math:`TP_c = \sum_n q_{n,c} p_{n,c}` and
  :math:`P_c = \sum_n v_n p_{n,c}` (:math:`v` = not ignored) for batch-level metrics (smooth F1);
  the softmax is kept from the forward pass and the backward turns it into the gradient in place,
  mapping :math:`(g_{TP}, g_P)` to the logits.

Rows whose logits are all ``-inf`` contribute nothing and get zero gradient. Neither kernel
supports a differentiable backward (``create_graph``) or gradients with respect to the targets.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from logitkit import _blocks
from logitkit._reduce import ClassTarget, flat_target
from logitkit.losses.cross_entropy import _softmax_into, compute_dtype
from logitkit.ops.softmax import _fill_dead_, apply_temperature

__all__ = ["ClassSums", "ClassTermLoss", "class_sums", "class_term_loss"]

_LN2 = math.log(2.0)
_MINUS_ONE = torch.tensor(-1.0)


_LOG_KINDS = ("nll", "tailr_weighted")  # kinds whose terms need log p


def _terms(kind: str, params: tuple[float, ...], p: Tensor, log_p: Tensor | None) -> tuple[Tensor, Tensor]:
    r""":math:`(\phi(p), \psi(p))` for probabilities ``p`` (and ``log_p`` for the kinds in
    ``_LOG_KINDS``); any shape (a block, or the gathered target column)."""
    if kind == "nll":
        assert log_p is not None
        return log_p.neg(), torch.full_like(p, -1.0)
    if kind == "error":
        return 1.0 - p, p.neg()
    gamma = params[0]
    mix = p.mul(1.0 - gamma).add_(gamma)
    if kind == "tailr_weighted":
        # phi = -sg[W] log p, psi = -W, W = max(b, p / mix); W = 0 on an excluded class (p = 0).
        assert log_p is not None
        weight = p.div(mix).clamp_min_(params[1])
        if params[1] == 0:  # W = 0 exactly where log p = -inf: clamp so that 0 * log p = 0
            log_p = log_p.clamp_min(torch.finfo(log_p.dtype).min)
        return (weight * log_p).neg_(), weight.neg_()
    if gamma >= 0.5:
        # log1p((gamma - 1)(1 - p)): no absolute error of log(mix) divided by a small 1 - gamma.
        phi = torch.log1p((1.0 - p).mul_(gamma - 1.0)).div_(gamma - 1.0)
    else:
        # mix >= gamma is not small relative to 1 - gamma; log2 is faster than log on CPU.
        phi = torch.log2(mix).mul_(_LN2 / (gamma - 1.0))
    return phi, p.neg().div_(mix)


def _weighted_class_sum(values: Tensor, weight: Tensor | None) -> Tensor:
    return values.sum(1) if weight is None else (values * weight).sum(1)


class _Problem:
    """One call on ``(N, C, S)`` logits ``x`` with its targets (see ``cross_entropy._Problem``).

    Index targets: ``index``, ``coef`` :math:`= (1-\varepsilon) w_y v` and ``smooth``
    :math:`= (\varepsilon / C) v` (or None), all ``(N, S)``; ``shift`` (or None) is added to the
    target score before scaling and ``slope`` (or None) multiplies the target entry of the input
    gradient (margin losses). Probability targets: ``probs`` like ``x``.
    """

    def __init__(
        self,
        x,
        index=None,
        coef=None,
        smooth=None,
        probs=None,
        weight=None,
        eps=0.0,
        scale=1.0,
        kind="",
        params=(),
        shift=None,
        slope=None,
    ):
        _, c, s = x.shape
        self.x, self.index, self.coef, self.smooth, self.probs = x, index, coef, smooth, probs
        self.eps, self.scale, self.kind, self.params = eps, scale, kind, params
        self.shift, self.slope = shift, slope
        self.cd = compute_dtype(x.dtype)
        self.w_block = None if weight is None else weight.view((1, c) if s == 1 else (1, c, 1))

    def scores(self, rows, cols) -> Tensor:
        block = self.x[rows, :, cols]
        z = block if block.dtype == self.cd else block.to(self.cd)
        if self.shift is not None:
            z = z.mul(self.scale)  # a fresh block: the shift is added in place
            col = self.index[rows, cols].unsqueeze(1)
            return z.scatter_add_(1, col, self.shift[rows, cols].unsqueeze(1) * self.scale)
        return z * self.scale if self.scale != 1.0 else z

    def blocks(self):
        # 1 MiB blocks as cross_entropy: 256 KiB to 4 MiB measured within noise at C = 1000 and
        # 32000; smaller blocks pay Python overhead per block at C = 1000.
        return _blocks.blocks(*self.x.shape)


def _log_probs(z: Tensor, p: Tensor) -> Tensor:
    r""":math:`\log p = (z - m) + \log \max_j p_j` (exact: the largest probability is at least 1/C)."""
    return (z - z.amax(1, keepdim=True)).add_(torch.log(p.amax(1, keepdim=True)))


def _log_target_prob(z: Tensor, p: Tensor, col: Tensor) -> Tensor:
    r""":math:`\log p_y` from the softmax value, exact (:func:`_log_probs`) where :math:`p_y` is tiny.

    Below ``tiny / eps`` the probability has lost mantissa bits (or underflowed); such rows (a loss
    above ~70 in float32) are rare, so eager CPU code only recomputes when one occurs.
    """
    p_y = p.gather(1, col)
    finfo = torch.finfo(p.dtype)
    small = p_y < finfo.tiny / finfo.eps
    log_p_y = torch.log(p_y)
    if torch.compiler.is_compiling() or p.device.type != "cpu" or bool(small.any()):
        exact = (z.gather(1, col) - z.amax(1, keepdim=True)).add_(torch.log(p.amax(1, keepdim=True)))
        log_p_y = torch.where(small, exact, log_p_y)
    return log_p_y


def _term_pass(pb: _Problem) -> tuple[Tensor, Tensor, Tensor | None]:
    r"""(per-sample loss ``(N, S)``, gradient of the loss sum w.r.t. the scaled scores, per-sample
    factor of that gradient or None).

    With only the target term (index targets, no smoothing) the gradient is
    :math:`f_n (p - \mathbf 1_{y_n})` with :math:`f_n = -a_{n,y} \psi(p_{n,y})`: the buffer holds
    :math:`p - \mathbf 1_y` and the factor is applied by the backward's single scaling pass.
    """
    n, c, s = pb.x.shape
    grad = torch.empty_like(pb.x, dtype=pb.cd)
    loss = torch.empty((n, s), dtype=pb.cd, device=pb.x.device)
    target_only = pb.index is not None and pb.smooth is None
    factor = torch.empty_like(loss) if target_only else None
    needs_log = pb.kind in _LOG_KINDS
    with torch.autocast(device_type=pb.x.device.type, enabled=False):
        for rows, cols in pb.blocks():
            out = grad[rows, :, cols]
            z = pb.scores(rows, cols)
            p = _softmax_into(z, out)
            if target_only:
                # Only the target class counts: terms of the gathered column.
                col = pb.index[rows, cols].unsqueeze(1)
                coef = pb.coef[rows, cols].unsqueeze(1)
                log_p_y = _log_target_prob(z, p, col) if needs_log else None
                if pb.kind == "nll":  # phi = -log p, psi = -1
                    loss[rows, cols] = (coef * log_p_y).neg_().squeeze(1)
                    factor[rows, cols] = coef.squeeze(1)
                else:
                    phi_y, psi_y = _terms(pb.kind, pb.params, p.gather(1, col), log_p_y)
                    loss[rows, cols] = (coef * phi_y).squeeze(1)
                    factor[rows, cols] = (coef * psi_y).neg_().squeeze(1)
                if p is not out:
                    out.copy_(p)
                out.scatter_add_(1, col, _MINUS_ONE.to(out).expand_as(col))
                continue
            phi, psi = _terms(pb.kind, pb.params, p, _log_probs(z, p) if needs_log else None)
            if pb.index is not None:
                col = pb.index[rows, cols].unsqueeze(1)
                coef, smooth = pb.coef[rows, cols], pb.smooth[rows, cols]
                phi_y, psi_y = phi.gather(1, col).squeeze(1), psi.gather(1, col).squeeze(1)
                value = coef * phi_y + smooth * _weighted_class_sum(phi, pb.w_block)
                total = coef * psi_y + smooth * _weighted_class_sum(psi, pb.w_block)
                a_psi = psi.mul_(smooth.unsqueeze(1))
                if pb.w_block is not None:
                    a_psi.mul_(pb.w_block)
                torch.addcmul(a_psi, p, total.unsqueeze(1), value=-1.0, out=out)
                out.scatter_add_(1, col, (coef * psi_y).unsqueeze(1))
            else:
                a = pb.probs[rows, :, cols].to(pb.cd)
                if pb.eps > 0:
                    a = a * (1.0 - pb.eps) + pb.eps / c
                if pb.w_block is not None:
                    a = a * pb.w_block
                # a zero coefficient on an infinite term (an excluded class) contributes 0
                value = torch.where(a == 0, 0.0, a * phi).sum(1)
                a_psi = psi.mul_(a)
                total = a_psi.sum(1)
                torch.addcmul(a_psi, p, total.unsqueeze(1), value=-1.0, out=out)
            loss[rows, cols] = value
    # A row of all -inf logits has NaN probabilities: loss 0, gradient 0 (a NaN input stays NaN).
    nan = torch.isnan(loss)
    if torch.compiler.is_compiling() or bool(nan.any()):
        dead = nan & (pb.x.amax(1) == float("-inf"))
        loss = torch.where(dead, 0.0, loss)
        _fill_dead_(grad, dead.unsqueeze(1), 0.0)
        if factor is not None:
            factor = torch.where(dead, 0.0, factor)
    return loss, grad, factor


class ClassTermLoss(torch.autograd.Function):
    r"""Per-sample ``(N, S)`` loss :math:`\sum_c a_c \phi(p_c)`; see the module docstring.

    ``apply(x, index, coef, smooth, probs, weight, shift, slope, eps, scale, kind, params)`` with
    the tensors of :class:`_Problem`.
    """

    @staticmethod
    def forward(ctx, x, index, coef, smooth, probs, weight, shift, slope, eps, scale, kind, params):  # type: ignore[override]
        tensors = (x, index, coef, smooth, probs, weight, shift, slope)
        ctx.args = dict(eps=eps, scale=scale, kind=kind, params=params)
        loss, grad, factor = _term_pass(_problem(tensors, ctx.args))
        ctx.save_for_backward(*tensors)
        ctx.buffers = (grad, factor)  # scaled in place by the first backward
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: Tensor):  # type: ignore[override]
        (buffer, factor), ctx.buffers = ctx.buffers, (None, None)
        pb = _problem(ctx.saved_tensors, ctx.args)
        if buffer is None:  # a second backward through a retained graph
            _, buffer, factor = _term_pass(pb)
        scaling = grad_loss.to(buffer.dtype) * pb.scale
        buffer.mul_((scaling if factor is None else scaling * factor).unsqueeze(1))
        if pb.slope is not None:
            col = pb.index.unsqueeze(1)
            buffer.scatter_(1, col, buffer.gather(1, col) * pb.slope.unsqueeze(1))
        return (buffer.to(pb.x.dtype),) + (None,) * 11


def _problem(tensors, args) -> _Problem:
    x, index, coef, smooth, probs, weight, shift, slope = tensors
    return _Problem(x, index, coef, smooth, probs, weight, shift=shift, slope=slope, **args)


def _sums_pass(pb: _Problem, valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(TP, P, probabilities)``; the probabilities ``(N, C, S)`` are kept for the backward."""
    c = pb.x.shape[1]
    cd, device = pb.cd, pb.x.device
    tp = torch.zeros(c, dtype=cd, device=device)
    predicted = torch.zeros(c, dtype=cd, device=device)
    probs = torch.empty_like(pb.x, dtype=cd)
    with torch.autocast(device_type=device.type, enabled=False):
        for rows, cols in pb.blocks():
            z = pb.scores(rows, cols)
            out = probs[rows, :, cols]
            p = _softmax_into(z, out)
            if p is not out:
                out.copy_(p)
                p = out
            if pb.index is not None:
                assert valid is not None
                v = valid[rows, cols]
                col = pb.index[rows, cols].unsqueeze(1)
                p_y = p.gather(1, col)
                # A row of all -inf logits has NaN probabilities: it contributes nothing.
                nan = torch.isnan(p_y)
                if torch.compiler.is_compiling() or device.type != "cpu" or bool(nan.any()):
                    dead = nan & (z.amax(1, keepdim=True) == float("-inf"))
                    _fill_dead_(p, dead, 0.0)
                    p_y = torch.where(dead, 0.0, p_y)
                tp.index_add_(0, col.reshape(-1), (p_y.squeeze(1) * v).reshape(-1))
                predicted += v @ p if p.dim() == 2 else torch.einsum("rs,rcs->c", v, p)
            else:
                _fill_dead_(p, z.amax(1, keepdim=True) == float("-inf"), 0.0)
                dims = [0] if p.dim() == 2 else [0, 2]
                tp += (pb.probs[rows, :, cols].to(cd) * p).sum(dims)
                predicted += p.sum(dims)
    return tp, predicted, probs


class ClassSums(torch.autograd.Function):
    r"""``(TP, P)``, each ``(C,)``: :math:`\sum_n q_{n,c} p_{n,c}` and :math:`\sum_n v_n p_{n,c}`.

    ``apply(x, index, valid, probs, scale)``; ``valid`` ``(N, S)`` in the compute dtype (index
    targets) or None. The softmax is kept from forward and turned into the gradient in place by
    the first backward (a second backward recomputes it).
    """

    @staticmethod
    def forward(ctx, x, index, valid, probs, scale):  # type: ignore[override]
        pb = _Problem(x, index, probs=probs, scale=scale)
        tp, predicted, softmax = _sums_pass(pb, valid)
        ctx.save_for_backward(x, index, valid, probs)
        ctx.softmax, ctx.scale = softmax, scale
        return tp, predicted

    @staticmethod
    @once_differentiable
    def backward(ctx, g_tp: Tensor, g_pred: Tensor):  # type: ignore[override]
        x, index, valid, probs = ctx.saved_tensors
        grad, ctx.softmax = ctx.softmax, None
        if grad is None:  # a second backward through a retained graph
            grad = _sums_pass(_Problem(x, index, probs=probs, scale=ctx.scale), valid)[2]
        g_tp, g_pred = g_tp.to(grad.dtype), g_pred.to(grad.dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            for rows, cols in _blocks.blocks(*x.shape):
                p = grad[rows, :, cols]  # turned into the gradient in place
                two_d = p.dim() == 2
                g_row = g_pred.view(1, -1) if two_d else g_pred.view(1, -1, 1)
                # dL/dp_nj = G_nj; dL/dz_nj = p_nj (G_nj - sum_k G_nk p_nk)
                if index is not None:
                    v = valid[rows, cols]
                    col = index[rows, cols].unsqueeze(1)
                    p_y = p.gather(1, col).squeeze(1)
                    g_y = g_tp[index[rows, cols]]
                    p_g = p @ g_pred if two_d else torch.einsum("rcs,c->rs", p, g_pred)
                    inner = (p_g + g_y * p_y).unsqueeze(1)
                    p.mul_(torch.sub(g_row, inner).mul_(v.unsqueeze(1)))
                    p.scatter_add_(1, col, (v * g_y * p_y).unsqueeze(1))
                else:
                    g = torch.mul(probs[rows, :, cols], g_tp.view_as(g_row)).add_(g_row)
                    p.mul_(g.sub_((g * p).sum(1, keepdim=True)))
        if ctx.scale != 1.0:
            grad.mul_(ctx.scale)
        return grad.to(x.dtype), None, None, None, None


def _scaled_logits(input: Tensor, temperature: float | Tensor) -> tuple[Tensor, float]:
    """``(x, scale)``: a float temperature is applied inside the blocks, a tensor one by autograd."""
    if isinstance(temperature, Tensor):
        return apply_temperature(input, temperature.reshape(())), 1.0
    return input, 1.0 / float(temperature)


def class_term_loss(
    input: Tensor,
    target: ClassTarget,
    *,
    kind: str,
    params: tuple[float, ...] = (),
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    temperature: float | Tensor = 1.0,
    shift: Tensor | None = None,
    slope: Tensor | None = None,
) -> Tensor:
    r"""Per-sample :math:`\sum_c a_c \phi(p_c)` of shape ``(N, d1, ...)`` in the compute dtype.

    ``shift`` / ``slope`` (index targets, shaped like the target) are added to the target score
    and multiply the target entry of the input gradient.
    """
    x, scale = _scaled_logits(input, temperature)
    n, c = x.shape[:2]
    spatial = math.prod(x.shape[2:])
    x = x.reshape(n, c, spatial)
    cd = compute_dtype(x.dtype)
    w = None if weight is None else weight.to(cd)
    eps = float(label_smoothing)
    flat = flat_target(target, n, spatial, w, eps, cd)
    tensors = (x, *flat, w)
    if target.index is not None:
        shift = None if shift is None else shift.reshape(n, spatial).to(cd)
        slope = None if slope is None else slope.reshape(n, spatial).to(cd)
    else:
        assert shift is None and slope is None
    params = tuple(float(v) for v in params)
    loss = ClassTermLoss.apply(*tensors, shift, slope, eps, scale, kind, params)
    return loss.reshape(n, *input.shape[2:])


def class_sums(
    input: Tensor, target: ClassTarget, *, temperature: float | Tensor = 1.0
) -> tuple[Tensor, Tensor]:
    """``(TP, P)`` per class, each ``(C,)`` in the compute dtype (see :class:`ClassSums`)."""
    x, scale = _scaled_logits(input, temperature)
    n, c = x.shape[:2]
    spatial = math.prod(x.shape[2:])
    x = x.reshape(n, c, spatial)
    if target.index is not None:
        assert target.valid is not None
        index = target.index.reshape(n, spatial)
        valid = target.valid.reshape(n, spatial).to(compute_dtype(x.dtype))
        return ClassSums.apply(x, index, valid, None, scale)
    assert target.probs is not None
    return ClassSums.apply(x, None, None, target.probs.reshape(n, c, spatial), scale)
