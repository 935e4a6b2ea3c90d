r"""Softmax cross-entropy with temperature: torch's semantics, fused and blocked.

.. math::

    \ell_n = \sum_c q_{n,c}\, w_c \big(\mathrm{LSE}(z_n) - z_{n,c}\big), \qquad z = x / \tau,

with :math:`q` the (label-smoothed) target distribution and :math:`w` the class weights; see
:mod:`logitkit._reduce` for targets, ``ignore_index`` and the weighted mean. The gradient is
:math:`\partial \ell_n / \partial z_{n,j} = A_n\, p_{n,j} - a_{n,j}` with :math:`a = q \odot w`,
:math:`A_n = \sum_c a_{n,c}` and :math:`p = \mathrm{softmax}(z_n)`.

Implementation. The logits are walked in cache-sized blocks. Each block runs the native fused
softmax kernel (about twice as fast per element as ``exp`` plus reductions) and, since every
reduction's upstream gradient is a per-sample factor :math:`g_n`, writes the normalised per-sample
gradient :math:`p - a / A` while the block is in cache; the first backward scales that buffer by
:math:`g_n A_n / \tau` in place. Only the loss and the gradient are allocated at full size
(torch allocates log-probabilities, a zero-filled NLL gradient and the gradient).

* :math:`\log p_y` is read from the softmax block for plain index targets, with an exact
  :math:`z_y - \mathrm{LSE}` fallback for rows where :math:`p_y` is below ``tiny / eps``. With label
  smoothing or probability targets, :math:`\mathrm{LSE} = m - \log \max_j p_j` (exact: the
  largest probability is at least :math:`1/C`), and sums use the shifted scores :math:`z - m`.
* A second backward through the same graph (``retain_graph``, ``gradcheck``, ``jacobian``)
  recomputes the buffer; a backward with ``create_graph=True`` returns a differentiable
  expression, so Hessian-vector products and gradient penalties are exact.
* float16 / bfloat16 logits are processed in float32 inside the blocks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from logitkit import _blocks, _checks, _reduce
from logitkit.losses._base import Loss
from logitkit.ops.softmax import _fill_dead_, apply_temperature

__all__ = ["CrossEntropyLoss", "cross_entropy"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs, else the input's own dtype."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


class _Problem:
    """One softmax-cross-entropy call on ``(N, C, S)`` logits, with its per-sample coefficients.

    Index targets: ``index`` ``(N, S)``, ``coef`` :math:`= (1-\\varepsilon) w_y [\\text{valid}]`,
    ``smooth`` :math:`= (\\varepsilon / C) [\\text{valid}]` or None. Probability targets:
    ``probs`` ``(N, C, S)``. ``scale`` :math:`= 1/\\tau` is applied inside the blocks.
    """

    def __init__(self, x, index, coef, smooth, probs, weight, eps, scale):
        _, c, s = x.shape
        self.x, self.index, self.coef, self.smooth, self.probs = x, index, coef, smooth, probs
        self.weight, self.eps, self.scale = weight, eps, scale
        self.cd = compute_dtype(x.dtype)
        # Per-class weights shaped like a block: (1, C) for 2-D blocks, (1, C, 1) otherwise.
        self.w_block = None if weight is None else weight.view((1, c) if s == 1 else (1, c, 1))
        self.w_total = float(c) if weight is None else weight.sum()
        self.index_col = None if index is None else index.unsqueeze(1)
        # Plain index targets read log p_y from the softmax block (module docstring).
        self.plain = index is not None and smooth is None

    def scores(self, rows, cols) -> Tensor:
        block = self.x[rows, :, cols]
        z = block if block.dtype == self.cd else block.to(self.cd)
        return z * self.scale if self.scale != 1.0 else z

    def target_weights(self, rows, cols) -> Tensor:
        """Effective per-class weights :math:`a = ((1 - \\varepsilon) t + \\varepsilon / C)\\, w`."""
        assert self.probs is not None
        a = self.probs[rows, :, cols].to(self.cd)
        if self.eps > 0:
            a = a * (1.0 - self.eps) + self.eps / self.probs.shape[1]
        return a if self.w_block is None else a * self.w_block

    def index_totals(self) -> Tensor:
        """:math:`A_n = \\sum_c a_{n,c}` for index targets, shape ``(N, S)``."""
        return self.coef if self.smooth is None else self.coef + self.smooth * self.w_total

    def loss(self, logp_y: Tensor | None, logp_sum: Tensor) -> Tensor:
        """Per-sample loss from :math:`\\log p_y` and :math:`\\sum_c w_c \\log p_c` (index
        targets) or :math:`\\sum_c a_c \\log p_c` (probability targets)."""
        if self.index is None:
            return -logp_sum
        # where, not product: an ignored sample may point at a -inf logit.
        loss = torch.where(self.coef == 0, 0.0, -self.coef * logp_y)
        if self.smooth is not None:
            loss = loss + torch.where(self.smooth == 0, 0.0, -self.smooth * logp_sum)
        return loss


def _weighted_sum(values: Tensor, weights: Tensor | None) -> Tensor:
    """:math:`\\sum_c w_c v_c` over dim 1, a zero weight on an infinite value counting 0."""
    if weights is None:
        return values.sum(1)
    return torch.where(weights == 0, 0.0, values * weights).sum(1)


def _softmax_into(z: Tensor, out: Tensor | None) -> Tensor:
    """Softmax over dim 1, written into ``out`` when it is a contiguous block."""
    # The out= variant silently mis-writes non-contiguous views; dynamo prefers the functional op.
    if out is None or not out.is_contiguous() or torch.compiler.is_compiling():
        return torch.softmax(z, 1)
    return torch._softmax(z, 1, False, out=out)


def _forward_only(pb: _Problem) -> Tensor:
    """Per-sample loss without the gradient: one log-softmax per block."""
    n, c, s = pb.x.shape
    picked = torch.empty((n, s), dtype=pb.cd, device=pb.x.device)
    class_sum = torch.empty_like(picked) if pb.smooth is not None else None
    for rows, cols in _blocks.blocks(n, c, s):
        logp = torch.log_softmax(pb.scores(rows, cols), 1)
        if pb.index_col is not None:
            picked[rows, cols] = logp.gather(1, pb.index_col[rows, :, cols]).squeeze(1)
            if class_sum is not None:
                class_sum[rows, cols] = _weighted_sum(logp, pb.w_block)
        else:
            picked[rows, cols] = _weighted_sum(logp, pb.target_weights(rows, cols))
    loss = pb.loss(picked, class_sum) if pb.index is not None else pb.loss(None, picked)
    # A row of all -inf logits ("dead") has NaN log-probabilities and loss 0. Only rows whose
    # loss is NaN need the check (a NaN input stays NaN).
    nan = torch.isnan(loss)
    if torch.compiler.is_compiling() or bool(nan.any()):
        loss = torch.where(nan & (pb.x.amax(1) == float("-inf")), 0.0, loss)
    return loss


def _fused_pass(pb: _Problem) -> tuple[Tensor, Tensor, Tensor]:
    """One pass over the blocks: (per-sample loss, normalised gradient :math:`p - a/A`, :math:`A`).

    Dead rows get loss 0, gradient 0 and :math:`A = 0`.
    """
    n, c, s = pb.x.shape
    cd = pb.cd
    grad = torch.empty_like(pb.x)
    picked = torch.empty((n, s), dtype=cd, device=pb.x.device)  # p_y, or shifted z_y / sum a (z-m)
    row_max = None if pb.plain else torch.empty_like(picked)
    p_max = None if pb.plain else torch.empty_like(picked)
    class_sum = torch.empty_like(picked) if pb.smooth is not None else None  # sum_c w_c (z_c - m)
    total = pb.index_totals() if pb.index is not None else torch.empty_like(picked)
    if pb.index is not None:
        safe_total = torch.where(total == 0, 1.0, total)
        neg_share_col = (-pb.coef / safe_total).unsqueeze(1)
        neg_smooth_col = None if pb.smooth is None else (-pb.smooth / safe_total).unsqueeze(1)
    with torch.autocast(device_type=pb.x.device.type, enabled=False):
        for rows, cols in _blocks.blocks(n, c, s):
            z = pb.scores(rows, cols)
            out = grad[rows, :, cols]
            if not pb.plain:
                m = z.amax(1, keepdim=True)
                row_max[rows, cols] = m.squeeze(1)
            p = _softmax_into(z, out if out.dtype == cd else None)
            if not pb.plain:
                p_max[rows, cols] = p.amax(1)
                # Shifted scores: sums of z would cancel catastrophically against LSE at |z| ~ 1e4.
                z = z - m
            if pb.index_col is not None:
                index_block = pb.index_col[rows, :, cols]
                picked[rows, cols] = (p if pb.plain else z).gather(1, index_block).squeeze(1)
                if class_sum is not None:
                    class_sum[rows, cols] = _weighted_sum(z, pb.w_block)
                p.scatter_add_(1, index_block, neg_share_col[rows, :, cols])
                if neg_smooth_col is not None:
                    step = neg_smooth_col[rows, :, cols]
                    if pb.w_block is None:
                        p.add_(step)
                    else:
                        p.addcmul_(step, pb.w_block)
            else:
                a = pb.target_weights(rows, cols)
                a_total = a.sum(1, keepdim=True)
                total[rows, cols] = a_total.squeeze(1)
                # sum_c a_c (z_c - m); 0 * -inf is NaN here and means 0 (a NaN input is caught
                # by max p, which is NaN too).
                products = (z * a).nan_to_num_(nan=0.0, posinf=math.inf, neginf=-math.inf)
                picked[rows, cols] = products.sum(1)
                p.addcmul_(a, -1.0 / torch.where(a_total == 0, 1.0, a_total))
            if p is not out:
                out.copy_(p)
    if pb.plain:
        loss = pb.loss(_log_target_prob(pb, picked), None)
        # A row of all -inf logits ("dead") has NaN probabilities: loss 0, gradient 0.
        nan = torch.isnan(loss)
        if torch.compiler.is_compiling() or bool(nan.any()):
            dead = nan & (pb.x.amax(1) == float("-inf"))
        else:
            dead = nan
    else:
        dead = row_max == float("-inf")
        log_p_max = p_max.log()  # = m - LSE
        if pb.index is not None:
            logp_sum = None if class_sum is None else class_sum + pb.w_total * log_p_max
            loss = pb.loss(picked + log_p_max, logp_sum)
        else:
            loss = pb.loss(None, picked + total * log_p_max)
    _fill_dead_(grad, dead.unsqueeze(1), 0.0)
    return torch.where(dead, 0.0, loss), grad, torch.where(dead, 0.0, total)


def _log_target_prob(pb: _Problem, p_y: Tensor) -> Tensor:
    """:math:`\\log p_y` from the softmax value, exact where :math:`p_y` is tiny.

    Below ``tiny / eps`` the probability has lost mantissa bits (or underflowed); those rows,
    rare (a loss above ~70 in float32), are recomputed as :math:`z_y - \\mathrm{LSE}(z)`.
    """
    finfo = torch.finfo(p_y.dtype)
    small = p_y < finfo.tiny / finfo.eps
    logp = torch.log(p_y)
    if torch.compiler.is_compiling():
        return torch.where(small, _exact_log_target_prob(pb, None), logp)
    if bool(small.any()):
        logp = logp.clone()
        logp[small] = _exact_log_target_prob(pb, small)
    return logp


def _exact_log_target_prob(pb: _Problem, where: Tensor | None) -> Tensor:
    """:math:`z_y - \\mathrm{LSE}(z)` where ``where`` is True (at every position if None)."""
    assert pb.index is not None
    if where is None:
        z, index = pb.x.to(pb.cd) * pb.scale, pb.index
    else:
        n_idx, s_idx = where.nonzero(as_tuple=True)
        z, index = pb.x[n_idx, :, s_idx].to(pb.cd) * pb.scale, pb.index[n_idx, s_idx]
    return torch.log_softmax(z, 1).gather(1, index.unsqueeze(1)).squeeze(1)


def _differentiable_gradient(pb: _Problem, grad: Tensor) -> Tensor:
    """:math:`g_n (A_n p - a) / \\tau` as an autograd expression of ``x`` (for ``create_graph``)."""
    z = pb.x.to(pb.cd) * pb.scale
    dead = (z.amax(1, keepdim=True) == float("-inf")).expand_as(z)
    p = torch.softmax(torch.where(dead, 0.0, z), 1).masked_fill(dead, 0.0)
    c = z.shape[1]
    w = torch.ones(c, dtype=pb.cd, device=z.device) if pb.weight is None else pb.weight
    w_col = w.view(1, c, 1)
    if pb.index is not None:
        onehot = torch.zeros_like(z).scatter_(1, pb.index.unsqueeze(1), 1.0)
        a = pb.coef.unsqueeze(1) * onehot
        if pb.smooth is not None:
            a = a + pb.smooth.unsqueeze(1) * w_col
    else:
        a = pb.probs.to(pb.cd)
        if pb.eps > 0:
            a = a * (1.0 - pb.eps) + pb.eps / c
        a = a * w_col
    total = torch.where(dead[:, :1], 0.0, a.sum(1, keepdim=True))
    a = a.masked_fill(dead, 0.0)
    g = grad.to(pb.cd).unsqueeze(1)
    return (g * (total * p - a) * pb.scale).to(pb.x.dtype)


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """Per-sample loss ``(N, S)``; the gradient is computed in forward (module docstring)."""

    @staticmethod
    def forward(ctx, x, index, coef, smooth, probs, weight, eps, scale):  # type: ignore[override]
        pb = _Problem(x, index, coef, smooth, probs, weight, eps, scale)
        loss, grad_buffer, total = _fused_pass(pb)
        ctx.save_for_backward(x, index, coef, smooth, probs, weight, total)
        # Not a saved tensor: backward scales it in place (it is neither input nor output).
        ctx.grad_buffer = grad_buffer
        ctx.eps, ctx.scale = eps, scale
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, index, coef, smooth, probs, weight, total = ctx.saved_tensors
        pb = _Problem(x, index, coef, smooth, probs, weight, ctx.eps, ctx.scale)
        grad_probs = None
        if probs is not None and ctx.needs_input_grad[4]:
            # d loss / d t_c = -(1 - eps) w_c log p_c
            logp = torch.log_softmax(x.to(pb.cd) * ctx.scale, 1)
            g = grad.to(pb.cd).unsqueeze(1)
            dq = torch.where(g == 0, 0.0, logp * g * (ctx.eps - 1.0))
            if weight is not None:
                dq = dq * weight.view(1, -1, 1)
            grad_probs = dq.to(probs.dtype)
        grad_input = None
        if ctx.needs_input_grad[0]:
            if torch.is_grad_enabled():
                # create_graph=True: a differentiable expression keeps second derivatives exact.
                grad_input = _differentiable_gradient(pb, grad)
            else:
                buffer, ctx.grad_buffer = ctx.grad_buffer, None
                if buffer is None:  # a second backward through a retained graph
                    _, buffer, total = _fused_pass(pb)
                factor = grad.to(pb.cd) * total * ctx.scale
                grad_input = buffer.mul_(factor.unsqueeze(1))
        return grad_input, None, None, None, grad_probs, None, None, None


def cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    temperature: float | Tensor = 1.0,
) -> Tensor:
    r"""Softmax cross-entropy with temperature; :func:`torch.nn.functional.cross_entropy` semantics.

    .. math::

        \ell_n = \sum_c q_{n,c}\, w_c \left(\log\sum_j e^{x_{n,j}/\tau} - \frac{x_{n,c}}{\tau}\right),
        \qquad q = (1-\varepsilon)\, t + \varepsilon / C,

    where :math:`t` is the one-hot of an index target or the given probabilities.

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``.
        target: class indices ``(N, d1, ...)`` (integer dtype) or class probabilities shaped like
            ``input`` (floating, values in [0, 1]).
        weight: per-class weights ``(C,)``, treated as constants.
        ignore_index: index targets equal to it contribute nothing (index targets only).
        reduction: ``'mean'`` (torch's weighted mean: divides by :math:`\sum_n w_{y_n}` over
            non-ignored samples for index targets, by the number of samples for probability
            targets), ``'sum'`` or ``'none'`` (shape ``(N, d1, ...)``).
        label_smoothing: :math:`\varepsilon \in [0, 1]`.
        temperature: :math:`\tau > 0`, float or tensor (may require grad, e.g. temperature
            scaling); the logits are divided by it.

    Differences from torch, each pinned by a test: an empty batch or an all-ignored batch gives
    0 (torch: NaN); a zero target on a ``-inf`` logit contributes 0 (torch: NaN); a row whose
    logits are all ``-inf`` gives loss 0 and zero gradient.

    Example:
        >>> logits = torch.tensor([[2.0, 0.5, -1.0]])
        >>> cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1)
        tensor(0.3913)

    Reference: the PyTorch documentation of ``CrossEntropyLoss``; label smoothing from Szegedy et
    al., "Rethinking the Inception Architecture" (2016).
    """
    _checks.check_floating(input, "input")
    _checks.check_tensor(target, "target")
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    tgt = _reduce.class_target(input, target, ignore_index=ignore_index)
    num_classes = tgt.num_classes
    if weight is not None:
        _checks.check_class_weight(weight, num_classes)
    _checks.check_label_smoothing(label_smoothing)
    _checks.check_reduction(reduction)
    _checks.check_positive(temperature, "temperature")

    cd = compute_dtype(input.dtype)
    scale = 1.0
    if isinstance(temperature, Tensor):
        if temperature.dim() > 0 and temperature.numel() != 1:
            raise ValueError(
                f"temperature: expected a float or a one-element tensor, got shape {tuple(temperature.shape)}"
            )
        logits = apply_temperature(input, temperature.reshape(()))
    else:
        logits = input
        scale = 1.0 / float(temperature)
    n = logits.shape[0]
    spatial = math.prod(logits.shape[2:])
    x = logits.reshape(n, num_classes, spatial)
    w = None if weight is None else weight.to(cd)
    eps = float(label_smoothing)
    args = (x, *_reduce.flat_target(tgt, n, spatial, w, eps, cd), w, eps, scale)
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or (args[4] is not None and args[4].requires_grad)
    )
    # Without a graph there is no gradient to precompute: a lighter log-softmax pass suffices.
    per_sample = _SoftmaxCrossEntropy.apply(*args) if needs_grad else _forward_only(_Problem(*args))
    per_sample = per_sample.reshape(n, *input.shape[2:])
    denominator = _reduce.mean_denominator(tgt, w, cd) if reduction == "mean" else None
    out = _reduce.reduce_loss(per_sample, reduction, denominator)
    if unbatched and reduction == "none":
        out = out.squeeze(0)
    return out.to(input.dtype)


class CrossEntropyLoss(Loss):
    """Module form of :func:`cross_entropy` (``weight`` is a buffer)."""

    def __init__(
        self,
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_label_smoothing(label_smoothing)
        _checks.check_positive(temperature, "temperature")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.temperature = temperature

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            temperature=self.temperature,
        )
