r"""Dense ZLPR kernels: the plain composition and the fused, blocked autograd Function.

Both compute, per row of ``(R, C)`` logits :math:`s` with labels :math:`t \in [0, 1]`,

.. math::

    \ell = \log\Big(1 + \sum_i t_i e^{-s_i}\Big) + \log\Big(1 + \sum_i (1 - t_i) e^{s_i}\Big)
    = \log(1 + P) + \log(1 + Q)

over the *kept* classes (``keep`` True and :math:`s_i \ne -\infty`), with gradient

.. math::

    \frac{\partial \ell}{\partial s_i} = -\frac{t_i e^{-s_i}}{1 + P} + \frac{(1 - t_i) e^{s_i}}{1 + Q}.

:func:`plain_zlpr` is the reference: the log-space algorithm of the spec (exact logs of :math:`t` and
:math:`1 - t`, log-sum-exp with an appended 0), differentiable twice, used under ``torch.compile``,
for target gradients, for the rows the fused kernel hands back, and in the tests.

The fused kernel walks the logits in cache-sized row blocks and writes the gradient while a block is
in cache (the upstream gradient is one factor per sample, so backward only scales the buffer, or
does nothing when that factor was predicted in forward). Per block:

* **Hard labels** (:math:`t \in \{0, 1\}`, checked per block with :math:`t - t^2`, which also
  validates :math:`t \in [0, 1]`): one native softmax of :math:`u = (1 - 2t) \odot s` gives both
  sums at once: with :math:`p = \mathrm{softmax}(u)` and :math:`L = \mathrm{LSE}(u)`,
  :math:`Q = e^L S_n`, :math:`P = e^L S_p`, :math:`S_n = \sum_{t_i = 0} p_i`,
  :math:`S_p = \sum_{t_i = 1} p_i`, and the gradient is :math:`p_i f_n` on negatives and
  :math:`-p_i f_p` on positives with :math:`f = 1 / (e^{-L} + S)`. :math:`L = m - \log \max_i p_i`
  (:math:`m = \max u`) is exact because the largest probability is at least :math:`1/C`.
* **Soft labels**: two native softmaxes, of :math:`s` and of :math:`-s`, weighted by :math:`1 - t`
  and :math:`t`.

:math:`u` is first computed in one fused op, :math:`s - 2st`; a ``-inf`` logit makes that NaN
(:math:`-\infty \cdot 0`), so the block is redone as :math:`(1 - 2t) s` with the masked entries
filled with ``-inf``, and the following blocks start that way (masks come in bulk).

The sums are normalised by the softmax, so a group whose mass is far below the other's may lose
precision to underflow. Each term that underflows is below ``tiny``, so a group sum
:math:`S > C \cdot \mathrm{tiny} / \mathrm{eps}` is accurate to ``eps``; rows with a smaller
non-empty sum, with a NaN (a ``-inf`` logit carrying a positive label, a fully masked row, a NaN
input), or with an infinite gradient factor (an empty group next to logits beyond ~100) are
recomputed by :func:`plain_zlpr`. Those rows need logit gaps of about 60 (float32) or 600 (float64)
between the two groups.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from logitkit import _blocks, _checks
from logitkit.losses.cross_entropy import compute_dtype

__all__ = ["dense_zlpr", "log1p_sum_exp", "plain_zlpr"]

_NEG_INF = float("-inf")

# Blocks of twice the shared size. Measured on the 2-core development CPU: one thread runs this
# kernel equally fast with 1, 2 or 4 MiB blocks (+-4%: its softmax-heavy passes are compute-bound),
# while with two threads every torch op is a fork/join and fewer, larger ops waste less time in
# barriers (2-4 MiB took 20-40% less time than 1 MiB under load). One block-sized scratch buffer
# is the only allocation besides the gradient: 2 MiB keeps it at 13% of the (4096, 1000) logits.
_BLOCK_SCALE = 2


def log1p_sum_exp(a: Tensor) -> Tensor:
    r""":math:`\log(1 + \sum_i e^{a_i})` over dim 1: the log-sum-exp with an appended 0.

    Computed as ``softplus(logsumexp(a))``, which keeps full relative precision when the sum is tiny
    (``logsumexp`` of ``a`` with a 0 column would round :math:`1 + 10^{-20}` to 1). A row of all
    ``-inf`` gives 0 with zero gradient (double ``where``), never NaN; a NaN propagates.
    """
    alive = (~torch.isneginf(a)).any(1)  # NaN counts as alive and propagates
    safe = torch.where(alive.unsqueeze(1), a, 0.0)
    return torch.where(alive, torch.nn.functional.softplus(torch.logsumexp(safe, 1)), 0.0)


# ---------------------------------------------------------------------------------------------
# The plain composition
# ---------------------------------------------------------------------------------------------


def plain_zlpr(x: Tensor, t: Tensor, keep: Tensor | None) -> Tensor:
    """Per-row ZLPR of ``(R, C)`` logits, computed as written in the spec (log space).

    Differentiable twice in ``x``. When ``t`` requires grad, its gradient
    :math:`e^{-s_i}/(1+P) - e^{s_i}/(1+Q)` is attached exactly (including at :math:`t_i \\in \\{0,
    1\\}`, where the log form alone would give 0/0).
    """
    cd = compute_dtype(x.dtype)
    x = x.to(cd)
    labels = t.detach().to(cd)
    valid = ~torch.isneginf(x)
    if keep is not None:
        valid = valid & keep
    # Double `where`: excluded logits (-inf, masked) never enter arithmetic, so no NaN gradient.
    xs = torch.where(valid, x, 0.0)
    pos = valid & (labels > 0)
    neg = valid & (labels < 1)
    log_t = torch.log(torch.where(pos, labels, 1.0))
    log_1mt = torch.log1p(-torch.where(neg, labels, 0.0))
    a = torch.where(pos, log_t - xs, _NEG_INF)
    b = torch.where(neg, log_1mt + xs, _NEG_INF)
    lse_pos = log1p_sum_exp(a)
    lse_neg = log1p_sum_exp(b)
    loss = lse_pos + lse_neg
    if t.requires_grad:
        # d loss / d t_i = exp(-s_i - lse_pos) - exp(s_i - lse_neg), attached without changing the
        # value (straight-through): first derivatives in t are exact, second ones are not provided.
        with torch.no_grad():
            dt = torch.exp(-xs - lse_pos.unsqueeze(1)) - torch.exp(xs - lse_neg.unsqueeze(1))
            dt = torch.where(valid, dt, 0.0)
        tc = t.to(cd)
        loss = loss + (dt * (tc - tc.detach())).sum(1)
    return loss


# ---------------------------------------------------------------------------------------------
# The fused kernel
# ---------------------------------------------------------------------------------------------


class _Pass:
    """State of one fused pass over ``(N, C)`` logits.

    ``stats`` rows, per sample: ``0, 1`` shifts :math:`m` of the negative / positive softmax,
    ``2, 3`` their largest probabilities, ``4, 5`` the group sums :math:`S_n, S_p`.
    """

    def __init__(self, x: Tensor, t: Tensor, keep: Tensor | None, factor: float, need_grad: bool):
        n, c = x.shape
        self.x, self.t, self.keep, self.factor, self.need_grad = x, t, keep, factor, need_grad
        self.cd = compute_dtype(x.dtype)
        self.hard_dtype = t.dtype == torch.bool
        self.stats = torch.empty(6, n, dtype=self.cd, device=x.device)
        self.grad = torch.empty(n, c, dtype=x.dtype, device=x.device) if need_grad else None
        # After one block shows a -inf logit, later blocks go straight to the masked variants.
        self.robust = keep is not None
        self.rows = max(1, min(n, _BLOCK_SCALE * _blocks.BLOCK_BYTES // (4 * max(c, 1))))
        self._scratch: list[Tensor] = []
        self.check = torch.zeros(3, dtype=self.cd, device=x.device)
        self.blocks = 0
        self.hard_blocks: list[slice] = []

    def scratch(self, k: int, rows: int) -> Tensor:
        """The k-th block-sized scratch buffer (allocated once per pass, reused by every block)."""
        while len(self._scratch) <= k:
            self._scratch.append(torch.empty(self.rows, self.x.shape[1], dtype=self.cd, device=self.x.device))
        return self._scratch[k][:rows]

    def work(self, n0: int, n1: int) -> Tensor:
        """Where a block's gradient is built: the gradient rows themselves when possible."""
        if self.grad is not None and self.grad.dtype == self.cd:
            return self.grad[n0:n1]
        return self.scratch(0, n1 - n0)

    def factors(self, r: slice, hard: bool) -> Tensor:
        """:math:`g / (e^{-L} + S)` for both groups, shape ``(2, rows)``.

        Infinite where :math:`e^{-L} + S` underflows (an empty group next to logits beyond ~100);
        :func:`_loss_and_handback` recomputes those rows.
        """
        st = self.stats[:, r]
        # Hard blocks share one softmax: the shift and largest probability are in rows 0 and 2.
        shift, top = (st[0:1], st[2:3]) if hard else (st[0:2], st[2:4])
        f = torch.addcmul(st[4:6], torch.exp(shift.neg()), top).reciprocal_()
        return f.mul_(self.factor) if self.factor != 1.0 else f


def _hard_block(ps: _Pass, r: slice, tb: Tensor, w: Tensor, h: Tensor) -> None:
    """One block with hard labels; ``h`` is a scratch block, ``w`` holds :math:`u` on entry."""
    st = ps.stats[:, r]
    torch._softmax(w, 1, False, out=w)
    torch.amax(w, 1, out=st[2])
    pt = torch.mul(w, tb, out=h)
    w.sub_(pt)  # exact: p (1 - t) for t in {0, 1}
    torch.sum(w, 1, out=st[4])
    torch.sum(pt, 1, out=st[5])
    ps.hard_blocks.append(r)  # rows 1 and 3 of the stats are filled in after the loop
    if ps.need_grad:
        f = ps.factors(r, hard=True)
        # Two exact steps (p f_n on negatives, then - p f_p added where p (1 - t) is 0).
        w.mul_(f[0].unsqueeze(1)).addcmul_(pt, f[1].unsqueeze(1), value=-1.0)


def _robust_u(z: Tensor, tb: Tensor, drop: Tensor | None, w: Tensor, h: Tensor) -> None:
    """:math:`u = (1 - 2t) s` without the ``-inf * 0`` of the fused form, masked entries ``-inf``."""
    sign = torch.mul(tb, -2.0, out=h).add_(1.0)
    torch.mul(z, sign, out=w)
    if drop is not None:
        w.masked_fill_(drop, _NEG_INF)


def _soft_block(ps: _Pass, r: slice, z: Tensor, tb: Tensor, drop: Tensor | None, w: Tensor):
    """One block with soft labels: softmax of :math:`s` weighted by :math:`1 - t`, of :math:`-s`
    weighted by :math:`t`."""
    st = ps.stats[:, r]
    q = ps.scratch(1, w.shape[0])  # first 1 - t, then the softmax of -s
    w.copy_(z)
    if drop is not None:
        w.masked_fill_(drop, _NEG_INF)
    torch.amax(w, 1, out=st[0])
    torch._softmax(w, 1, False, out=w)
    torch.amax(w, 1, out=st[2])
    w.mul_(torch.neg(tb, out=q).add_(1.0))
    torch.sum(w, 1, out=st[4])
    torch.neg(z, out=q)
    if ps.robust:  # (a mask makes the pass robust from the start)
        q.masked_fill_(torch.isneginf(z) if drop is None else drop | torch.isneginf(z), _NEG_INF)
    torch.amax(q, 1, out=st[1])
    if not ps.robust and bool(torch.isposinf(st[1]).any()):
        # A -inf logit: excluded from the positive side too (its label does not matter).
        ps.robust = True
        q.masked_fill_(torch.isneginf(z), _NEG_INF)
        torch.amax(q, 1, out=st[1])
    torch._softmax(q, 1, False, out=q)
    torch.amax(q, 1, out=st[3])
    q.mul_(tb)
    torch.sum(q, 1, out=st[5])
    if ps.need_grad:
        f = ps.factors(r, hard=False)
        w.mul_(f[0].unsqueeze(1)).addcmul_(q, f[1].unsqueeze(1), value=-1.0)


def _run(ps: _Pass) -> Tensor:
    """The block loop, then the per-sample loss with the hand-back rows recomputed exactly."""
    n = ps.x.shape[0]
    for n0 in range(0, n, ps.rows):
        _block(ps, n0, min(n, n0 + ps.rows))
        ps.blocks += 1
    st = ps.stats
    hard = [slice(None)] if len(ps.hard_blocks) == ps.blocks else ps.hard_blocks
    for r in hard:  # one softmax for both groups: same shift and largest probability
        st[1, r] = st[0, r]
        st[3, r] = st[2, r]
    return _loss_and_handback(ps)


def _block(ps: _Pass, n0: int, n1: int) -> None:
    """One row block: classify (and validate) its labels, then run the hard or the soft kernel."""
    cd, r = ps.cd, slice(n0, n1)
    z = ps.x[r] if ps.x.dtype == cd else ps.x[r].to(cd)
    tb = ps.t[r] if ps.t.dtype == cd else ps.t[r].to(cd)
    drop = None if ps.keep is None else ~ps.keep[r]  # per block: a broadcast mask stays a view
    w = ps.work(n0, n1)
    h = ps.scratch(1, n1 - n0)
    chk = ps.check  # max and min of t - t^2, sum of the row maxima of u
    if not ps.hard_dtype:
        # t - t^2 is exactly 0 on hard labels, negative outside [0, 1] and NaN for NaN.
        torch.addcmul(tb, tb, tb, value=-1.0, out=h)
        torch.amax(h, out=chk[0])
        torch.amin(h, out=chk[1])
    if ps.robust:
        hi, lo = chk[:2].tolist()
        total = 0.0
    else:
        # Speculative fused u = s - 2 s t; a -inf logit makes it NaN (-inf * 0), caught by `total`.
        torch.addcmul(z, z, tb, value=-2.0, out=w)
        torch.amax(w, 1, out=ps.stats[0, r])
        torch.sum(ps.stats[0, r], 0, out=chk[2])
        hi, lo, total = chk.tolist()  # the block's one synchronisation
    if hi != 0.0 or lo != 0.0:
        if not lo >= 0.0:  # a label outside [0, 1], or NaN
            _checks.check_in_unit_interval(ps.t, "target")
        _soft_block(ps, r, z, tb, drop, w)
    else:
        if not math.isfinite(total):
            ps.robust = True  # -inf logits tend to come in bulk (masks): stop speculating
        if ps.robust:
            _robust_u(z, tb, drop, w, h)
            torch.amax(w, 1, out=ps.stats[0, r])
        _hard_block(ps, r, tb, w, h)
    _finish_block(ps, n0, n1, w)


def _finish_block(ps: _Pass, n0: int, n1: int, w: Tensor) -> None:
    if ps.grad is not None and w.data_ptr() != ps.grad[n0:n1].data_ptr():
        ps.grad[n0:n1].copy_(w)


def _loss_and_handback(ps: _Pass) -> Tensor:
    c = ps.x.shape[1]
    st = ps.stats
    sums = st[4:6]
    log_lse = st[0:2] - st[2:4].log()
    loss = torch.nn.functional.softplus(log_lse + sums.log()).sum(0)
    finfo = torch.finfo(ps.cd)
    threshold = max(c, 1) * finfo.tiny / finfo.eps
    big = sums > threshold  # False for NaN
    finite = None
    suspect = ~big
    if ps.need_grad:
        # The factors g / (e^{-L} + S) multiply probabilities that may be 0: they must be finite.
        denominator = torch.addcmul(sums, torch.exp(-st[0:2]), st[2:4])
        finite = torch.isfinite(denominator.reciprocal_() * ps.factor)
        suspect |= ~finite
    if not bool(suspect.any()):
        return loss
    rows = suspect.any(0).nonzero().squeeze(1)
    # A zero sum is right when the group is empty: no positive (max t = 0) or no negative (min t = 1).
    t_rows = ps.t[rows].to(ps.cd)
    empty = torch.stack((t_rows.amin(1) == 1, t_rows.amax(1) == 0))
    side_ok = big[:, rows] | ((sums[:, rows] == 0) & empty)
    if finite is not None:
        side_ok &= finite[:, rows]
    rows = rows[~side_ok.all(0)]
    if rows.numel() == 0:
        return loss
    keep = None if ps.keep is None else ps.keep[rows]
    z = ps.x[rows].detach()
    if ps.grad is None:
        loss[rows] = plain_zlpr(z, ps.t[rows], keep)
        return loss
    with torch.enable_grad():
        zr = z.to(ps.cd).requires_grad_()
        exact = plain_zlpr(zr, ps.t[rows], keep)
        (g,) = torch.autograd.grad(exact.sum(), zr)
    loss[rows] = exact.detach()
    ps.grad[rows] = (g * ps.factor).to(ps.grad.dtype)
    return loss


def _fused_pass(x: Tensor, t: Tensor, keep: Tensor | None, factor: float, need_grad: bool):
    n, c = x.shape
    if c == 0 or n == 0:
        zeros = torch.zeros(n, dtype=compute_dtype(x.dtype), device=x.device)
        return zeros, (torch.zeros_like(x) if need_grad else None)
    ps = _Pass(x, t, keep, factor, need_grad)
    with torch.autocast(device_type=x.device.type, enabled=False):
        loss = _run(ps)
    return loss, ps.grad


class _DenseZLPR(torch.autograd.Function):
    """Per-sample loss ``(N,)``; the gradient is computed in forward, pre-multiplied by ``factor``
    (the upstream gradient the reduction will send)."""

    @staticmethod
    def forward(ctx, x, t, keep, factor):  # type: ignore[override]
        loss, grad = _fused_pass(x, t, keep, factor, need_grad=True)
        ctx.save_for_backward(x, t, keep)
        ctx.grad_buffer = grad  # not a saved tensor: backward scales it in place
        ctx.factor = factor
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, t, keep = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: a differentiable gradient keeps second derivatives exact.
            with torch.enable_grad():
                exact = plain_zlpr(x, t.detach(), keep)
                (g,) = torch.autograd.grad(exact, x, grad.to(exact.dtype), create_graph=True)
            return g, None, None, None
        buffer, ctx.grad_buffer = ctx.grad_buffer, None
        factor = ctx.factor
        if buffer is None:  # a second backward through a retained graph: same numbers again
            _, buffer = _fused_pass(x, t, keep, factor, need_grad=True)
        scale = grad / factor
        if not bool((scale == 1).all()):
            buffer.mul_(scale.unsqueeze(1).to(buffer.dtype))
        return buffer, None, None, None


def dense_zlpr(x: Tensor, t: Tensor, keep: Tensor | None, factor: float) -> Tensor:
    """Per-sample ZLPR of ``(N, C)`` logits by the fused kernel (eager mode).

    ``factor`` is the upstream gradient per sample that the caller's reduction will send (``1/N``
    for a mean); a backward that receives exactly it does no work.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _DenseZLPR.apply(x, t, keep, factor)
    loss, _ = _fused_pass(x, t, keep, factor, need_grad=False)
    return loss
