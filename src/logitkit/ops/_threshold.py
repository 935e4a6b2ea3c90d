r"""Threshold solvers of the soft top-k family (private; used by :mod:`logitkit.ops.topk`).

A *threshold* soft top-k picks an increasing :math:`f:\mathbb R\to[0,1]` and returns
:math:`y_i = f(z_i - \lambda)` with :math:`\lambda` the root of :math:`\sum_i f(z_i - \lambda) = k`.
Three :math:`f` are supported (``kind``):

* ``"exp"``: :math:`f(t) = \min(1, e^t)`;
* ``"smooth"``: the Laplace CDF :math:`f(t) = \tfrac12 e^t` for :math:`t < 0`,
  :math:`1 - \tfrac12 e^{-t}` for :math:`t \ge 0` (:math:`C^1`);
* ``"sigmoid"``: :math:`f = \sigma`.

Everything here runs on scores ``z`` whose last dim is the selection dim, ``-inf`` marking entries
that are never selected, and a budget ``k`` of shape ``(..., 1)`` already clamped to the number of
finite entries. The solvers run without autograd; gradients come from the implicit-function
theorem (:class:`ThresholdMask`, :class:`Threshold`).

Closed forms (spec operators.md §3.5). Sort the top ``K`` entries, :math:`v_1 \ge v_2 \ge \dots`,
and let ``rest`` be the log-sum-exp of the others. On the interval :math:`v_{m+1} \le \lambda \le
v_m` the constraint is solvable in closed form; the interval is found by *counting* the breakpoints
where :math:`F(v_j) = \sum_i f(v_i - v_j) < k` (:math:`F` is decreasing in :math:`\lambda`, so these
values increase with :math:`j`). Counting is robust to ties and rounding, unlike testing each
candidate for membership in its interval (the search of the post's code, which crashes on ties).

* exp: :math:`F(v_j) \ge j`, so only the top :math:`\lceil k\rceil` entries matter, and
  :math:`\lambda = \log\sum_{i>m} e^{v_i} - \log(k - m)`.
* smooth: :math:`F(v_j) \ge j/2`, so :math:`m < 2k` and the top :math:`\lceil 2k\rceil` entries
  suffice. With :math:`S_- = \sum_{i\le m} e^{-v_i}`, :math:`S_+ = \sum_{i>m} e^{v_i}`,
  :math:`d = k - m` and :math:`P = S_-S_+` (bounded by :math:`m(n-m)`, so it never overflows):
  :math:`\lambda = \log S_+ - \log(d + \sqrt{d^2 + P})` for :math:`d > 0` and
  :math:`\lambda = \log(\sqrt{d^2+P} - d) - \log S_-` otherwise (no cancellation in either;
  :math:`m = n` is an ordinary candidate).
* sigmoid: :math:`\tfrac12 \le \sigma(t)/f_{\rm smooth}(t \mp \log 2)` bounds give
  :math:`\lambda_\sigma \in [\lambda_{\rm smooth} - \log 2, \lambda_{\rm smooth} + \log 2]`; Newton
  on :math:`u = e^{-\lambda}`, where :math:`\sum_i \sigma(z_i + \log u)` is concave and increasing,
  started at the upper end of that bracket converges monotonically (never overshoots) and
  quadratically; a fixed number of steps keeps ``torch.compile`` graphs static.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from logitkit import _blocks

KINDS = ("smooth", "exp", "sigmoid")
LOG2 = math.log(2.0)
INF = float("inf")
# Eager solver (see _solve_block): the sort-free active-set iteration, with these step limits
# before falling back to the partial sort (which torch.compile graphs always use).
_POLISH = True
# exp() inputs are kept in [-EXP_FLOOR, 0]: on CPU, exp of anything below about -88 (a subnormal
# or zero result, even -inf) is 10-100x slower than in range (measured), and spread scores put
# most entries there. A term clamped at e^-80 is below any sum it enters by a factor e^-40 or
# more (float64 included); outputs at masked entries are zeroed explicitly.
EXP_FLOOR = 80.0
_LOST = -EXP_FLOOR / 2
_BIG = 2.0**100
_HUGE = 1e30
_DENSE_RANGE = 16.0
_UPPER_STEPS = 3
_BISECT_WIDTH = 0.25  # bisect the k-th largest entry to this bracket width (in units of z)
_RANK_STEPS = 8


def sigmoid_steps(dtype: torch.dtype) -> int:
    """Newton steps of the sigmoid solver: enough for the working precision (see tests)."""
    return 8 if dtype == torch.float64 else 5


def topk_size(k: float | Tensor, n: int, kind: str) -> int:
    """How many of the largest entries the closed form needs (static, for ``torch.topk``)."""
    factor = 1.0 if kind == "exp" else 2.0
    if isinstance(k, Tensor):
        if torch.compiler.is_compiling() or k.numel() == 0:
            return n
        k = float(k.detach().max())
    return max(1, min(n, math.ceil(factor * k - 1e-9)))


def top_entries(z: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The ``size`` largest entries (descending) and the log-sum-exp of all the others."""
    n = z.shape[-1]
    if size >= n:
        values = torch.sort(z, dim=-1, descending=True).values
        return values, torch.full_like(values[..., :1], -INF)
    values, index = torch.topk(z, size, dim=-1)
    rest = torch.logsumexp(z.scatter(-1, index, -INF), dim=-1, keepdim=True)
    return values, rest


def lse(x: Tensor) -> Tensor:
    """Log-sum-exp over the last dim (keepdim) with exp() inputs clamped to [-EXP_FLOOR, 0];
    ``-inf`` for a row with no finite entry."""
    top = x.amax(-1, keepdim=True)
    finite = torch.isfinite(top)
    shift = torch.where(finite, top, 0.0)
    total = torch.exp((x - shift).clamp_(min=-EXP_FLOOR)).sum(-1, keepdim=True)
    return torch.where(finite, shift + torch.log(total), top)


def zero_masked(y: Tensor, z: Tensor) -> Tensor:
    """``y`` with 0 wherever ``z`` is ``-inf`` (checked cheaply first: bool tensors are slow)."""
    if torch.compiler.is_compiling() or not bool(z.amin() > -INF):
        y = y * (z > -INF).to(y.dtype)
    return y


def _suffix_lse(v: Tensor, rest: Tensor) -> Tensor:
    """``S[p] = log(sum_{i >= p} e^{v_i} + e^rest)`` for p = 0..K (``S[K] = rest``)."""
    tail = torch.logcumsumexp(v.flip(-1), dim=-1).flip(-1)
    return torch.cat([torch.logaddexp(tail, rest), rest], dim=-1)


def _exp_lambda(v: Tensor, rest: Tensor, k: Tensor) -> Tensor:
    finite = v > -INF
    s = _suffix_lse(v, rest)
    pos = torch.arange(v.shape[-1], dtype=v.dtype, device=v.device)
    # F(v_{p+1}) = p + exp(S_p - v_{p+1}) >= p + 1; +inf at masked breakpoints.
    f_at = pos + torch.exp(s[..., :-1] - torch.where(finite, v, 0.0))
    f_at = torch.where(finite, f_at, INF)
    m = (f_at < k).sum(-1, keepdim=True)
    lam = s.gather(-1, m) - torch.log(k - m)
    return torch.where(k > 0, lam, INF)


def _smooth_lambda(v: Tensor, rest: Tensor, k: Tensor) -> Tensor:
    finite = v > -INF
    v0 = torch.where(finite, v, 0.0)
    # A[p] = log sum_{i < p} e^{-v_i}, B[p] = log(sum_{i >= p} e^{v_i} + e^rest), p = 0..K.
    prefix = torch.logcumsumexp(torch.where(finite, -v0, -INF), dim=-1)
    a = torch.cat([torch.full_like(rest, -INF), prefix], dim=-1)
    b = _suffix_lse(v, rest)
    pos = torch.arange(v.shape[-1], dtype=v.dtype, device=v.device)
    # F(v_{p+1}) = p + 1/2 - 1/2 sum_{i<p} e^{v_p - v_i} + 1/2 sum_{i>p} e^{v_i - v_p}: bounded terms.
    f_at = pos + 0.5 - 0.5 * torch.exp(v0 + a[..., :-1]) + 0.5 * torch.exp(b[..., 1:] - v0)
    f_at = torch.where(finite, f_at, INF)
    m = (f_at < k).sum(-1, keepdim=True)
    am, bm = a.gather(-1, m), b.gather(-1, m)
    lam = _closed_smooth(am, bm, k - m)
    n_kept = finite.sum(-1, keepdim=True)
    return torch.where(k <= 0, INF, torch.where(k >= n_kept, -INF, lam))


def _sigmoid_lambda(z: Tensor, start: Tensor, k: Tensor) -> Tensor:
    n_kept = (z > -INF).sum(-1, keepdim=True)
    edge = (k <= 0) | (k >= n_kept)
    start = torch.where(edge, 0.0, start)
    lo, hi = start - LOG2, start + LOG2
    lam = hi  # sum sigma(z - lam) <= k here: Newton in u = e^{-lam} then climbs monotonically
    tiny = torch.finfo(z.dtype).tiny
    for _ in range(sigmoid_steps(z.dtype)):
        t = (z - lam).clamp_(-EXP_FLOOR, EXP_FLOOR)  # -inf (masked) adds e^-80: negligible
        s = torch.sigmoid(t)
        total = s.sum(-1, keepdim=True)
        slope = (s * torch.sigmoid(-t)).sum(-1, keepdim=True).clamp_min(tiny)
        # Newton on u = e^{-lam}: u <- u (1 + (k - total) / slope); concave in u, so from below.
        step = torch.log1p(((k - total) / slope).clamp_min(-0.5))
        lam = torch.minimum(torch.maximum(lam - step, lo), hi)
    return torch.where(k <= 0, INF, torch.where(k >= n_kept, -INF, lam))


def _solve_static(z: Tensor, k: Tensor, kind: str, size: int) -> Tensor:
    """Exact closed form after a partial sort; static shapes (used under ``torch.compile``)."""
    v, rest = top_entries(z, size)
    if kind == "exp":
        return _exp_lambda(v, rest, k)
    lam = _smooth_lambda(v, rest, k)
    return lam if kind == "smooth" else _sigmoid_lambda(z, lam, k)


def _closed_smooth(a: Tensor, b: Tensor, d: Tensor) -> Tensor:
    """Root on one piece: ``a = log S_-``, ``b = log S_+``, ``d = k - m`` (module docstring)."""
    log_d = torch.log(d.abs())
    # L = log(|d| + sqrt(d^2 + P)), log P = a + b, in log space: at d = 0 it is (a + b) / 2 even
    # when P underflows (its factors e^{-v} and e^{v} are each representable).
    half = 0.5 * torch.logaddexp(2.0 * log_d, a + b)
    big = half + torch.log1p(torch.exp(log_d - half))
    return torch.where(d > 0, b - big, big - a)


def _polish(
    z: Tensor, k: Tensor, n_kept: Tensor, kind: str, lam: Tensor, steps: int, out: Tensor | None = None
) -> Tensor | None:
    r"""Exact threshold by the active-set iteration from ``lam``, or None if it has not settled
    within ``steps`` closed-form solves.

    Given the partition :math:`\{i: z_i > \lambda_t\}`, the closed form of that piece gives
    :math:`\lambda_{t+1}`. The iterates move monotonically toward the root from either side and
    never overshoot it: on misclassified entries the piece model over-estimates
    :math:`\sum_i f` from above (:math:`\tfrac12 e^t \ge f(t)`, :math:`e^t \ge \min(1, e^t)`)
    and under-estimates it from below (:math:`1 - \tfrac12 e^{-t} \le f(t)`), with an error of
    second order near the threshold. It stops, exactly, as soon as the partition repeats. Each step
    is a few passes over the block, without sorting: the piece sums are taken relative to
    :math:`\lambda_t` (:math:`e^{-|z_i - \lambda_t|} \le 1`), re-taken with per-row shifts in a
    step where one underflows (a piece more than ~90 units from the threshold). With ``out``, the mask
    :math:`f(z - \lambda)` is written there from the last step's terms. The exp iteration needs
    fewer than ``k`` entries above the start (an upper bound, or the k-th largest entry).
    """
    regular = (k > 0) & (k < n_kept)
    lam = torch.where(regular & torch.isfinite(lam), lam, 0.0)
    prev = None
    for _ in range(steps + 1):
        t = z - lam
        above = _step(t)  # 1.0 above the threshold, 0.0 at or below (float: bool ops are slow)
        m = above.sum(-1, keepdim=True)
        e = t.abs_().clamp_(max=EXP_FLOOR).neg_().exp_()  # e^{-|t|} (e^-80 at masked entries)
        if prev is not None and bool(((m == prev) | ~regular).all()):
            final = torch.where(k <= 0, INF, torch.where(regular, lam, -INF))
            if out is not None:
                out.copy_(zero_masked(_fix_edges(_from_terms(e, above, kind), z, final), z))
            return final
        prev = m
        if kind == "exp" and bool((regular & (m >= k)).any()):
            return None
        e_above = e * above
        log_above = torch.log(e_above.sum(-1, keepdim=True))
        log_below = torch.log(e.sub_(e_above).sum(-1, keepdim=True))
        # A piece whose entries are all ~40+ units from the threshold has a sum near the e^-80
        # clamp: take that step's sums with per-row shifts instead (rare, slower).
        lost = ((log_below < _LOST) & (m < n_kept)) | ((log_above < _LOST) & (m > 0))
        if bool((regular & lost).any()):
            log_above, log_below = _shifted_piece_sums(z - lam, above)
        if kind == "exp":
            lam = lam + log_below - torch.log(k - m)
        else:
            lam = _closed_smooth(log_above - lam, log_below + lam, k - m)
        lam = torch.where(regular, lam, 0.0)
    return None


def _shifted_piece_sums(t: Tensor, above: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`\log\sum_{t_i > 0} e^{-t_i}` and :math:`\log\sum_{t_i \le 0} e^{t_i}` with each
    sum shifted by its own largest term (arithmetic only; ``-inf`` for an empty piece)."""
    below = 1.0 - above
    tc = t.clamp(min=-_HUGE)  # masked entries (-inf) become a finite, far-away value
    low = (tc * above + below * _HUGE).amin(-1, keepdim=True)  # smallest t above
    high = (tc * below - above * _HUGE).amax(-1, keepdim=True)  # largest t at or below 0
    sum_above = (above * torch.exp(-(tc - low).clamp_(0.0, EXP_FLOOR))).sum(-1, keepdim=True)
    sum_below = (below * torch.exp((tc - high).clamp_(-EXP_FLOOR, 0.0))).sum(-1, keepdim=True)
    return torch.log(sum_above) - low, torch.log(sum_below) + high


def _step(t: Tensor) -> Tensor:
    r""":math:`\mathbf 1[t > 0]` as a float tensor: ``clamp(t * 2^100, 0, 1)`` (a multiply and a
    clamp are 5-10x faster than ``sign`` or a comparison on CPU). Only ``0 < t < 2^-100`` would
    give a fraction, which the iteration handles as an entry split between both pieces (``f`` and
    its slope agree there)."""
    return (t * _BIG).clamp_(0.0, 1.0)


def _from_terms(e: Tensor, above: Tensor, kind: str) -> Tensor:
    r""":math:`f(t)` from :math:`e = e^{-|t|}` and :math:`\mathbf 1[t > 0]` (in place on ``e``)."""
    if kind == "exp":
        return e.add_(above * (1.0 - e))  # 1 above, e^t below
    half = e.mul_(0.5)
    return half.add_(above * (1.0 - 2.0 * half))  # 1 - e^{-t}/2 above, e^t/2 below


def _fix_edges(y: Tensor, z: Tensor, lam: Tensor) -> Tensor:
    r"""Edge rows: :math:`\lambda = -\infty` (k = all kept entries) selects every finite entry,
    :math:`\lambda = +\infty` (k = 0) none."""
    if torch.compiler.is_compiling() or bool(torch.isinf(lam).any()):
        y = torch.where(torch.isposinf(lam), 0.0, y)
        y = torch.where(torch.isneginf(lam), (z > -INF).to(y.dtype), y)
    return y


def _upper_start(z: Tensor, k: Tensor, kind: str) -> Tensor:
    r""":math:`\mathrm{LSE}(z) - \log(ck)`: the root of the all-below piece, an upper bound."""
    return lse(z) - torch.log((2.0 if kind == "smooth" else 1.0) * k)


def _rank_start(z: Tensor, k: Tensor, kind: str, steps: int) -> Tensor:
    r"""About the :math:`\lceil k \rceil`-th largest entry, by bisection on the count of entries
    above a value (no exponentials, no sort): the root lies within a few units of it for any
    spread. For exp it returns the upper end of the bracket, which has fewer than ``k`` entries
    above it (the iteration's requirement)."""
    finite_min = z.amin(-1, keepdim=True)
    if bool(torch.isneginf(finite_min).any()):
        finite_min = torch.where(z > -INF, z, INF).amin(-1, keepdim=True)
    lo = torch.where(torch.isfinite(finite_min), finite_min, 0.0)
    hi = z.amax(-1, keepdim=True)
    hi = torch.where(torch.isfinite(hi), hi, 0.0)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        few = _step(z - mid).sum(-1, keepdim=True) < k  # fewer than k above: the k-th is below mid
        hi = torch.where(few, mid, hi)
        lo = torch.where(few, lo, mid)
    return hi if kind == "exp" else 0.5 * (lo + hi)


def _solve_block(
    z: Tensor, k: Tensor, n_kept: Tensor, kind: str, size: int, out: Tensor | None = None
) -> Tensor:
    r"""Eager solver for a block of rows: the cheapest exact method for the budget. With ``out``,
    also writes the mask :math:`f(z - \lambda)` there.

    The active-set iteration runs first: from the cheap upper bound when the scores are dense
    (every row within 16 units: it settles in 1-3 steps), otherwise, or if that did not settle,
    from about the k-th largest entry found by bisecting a count (2-5 steps for smooth at any
    spread; up to ~8 for exp); the partial sort remains the exact fallback. On the 2-core
    development CPU the iteration takes 0.2-0.3x the time of ``torch.sort`` on the same rows, the
    partial sort 0.4-1x.
    """
    base = "smooth" if kind == "sigmoid" else kind
    target = out if kind != "sigmoid" else None
    lam = None
    if _POLISH:
        # Scores within a few units of each other: start from the upper bound; spread ones (or
        # masked entries): from the bisected k-th largest entry.
        spread = z.amax(-1) - z.amin(-1)
        dense = bool((spread <= _DENSE_RANGE).all())
        if dense:
            lam = _polish(z, k, n_kept, base, _upper_start(z, k, base), _UPPER_STEPS, target)
        if lam is None:
            finite = torch.where(torch.isfinite(spread), spread, 0.0)
            width = max(float(finite.max()), _BISECT_WIDTH) if spread.numel() else _BISECT_WIDTH
            steps = min(40, math.ceil(math.log2(width / _BISECT_WIDTH)) + 1)
            start = _rank_start(z, k, base, steps)
            lam = _polish(z, k, n_kept, base, start, _RANK_STEPS, target)
    if lam is None:
        target = None
        lam = _solve_static(z, k, base, size)
    if kind == "sigmoid":
        lam = _sigmoid_lambda(z, lam, k)
    if out is not None and target is None:
        _mask_into(z, lam, kind, out)
    return lam


@torch.no_grad()
def solve(z: Tensor, k: Tensor, n_kept: Tensor, kind: str, size: int) -> Tensor:
    r"""The threshold :math:`\lambda` (shape ``(..., 1)``) with ``sum f(z - lambda) = k``."""
    if torch.compiler.is_compiling():
        return _solve_static(z, k, kind, size)
    n = z.shape[-1]
    flat, kf, nf = z.reshape(-1, n), k.reshape(-1, 1), n_kept.reshape(-1, 1)
    lam = torch.empty_like(kf)
    for rows in row_blocks(flat.shape[0], n):
        lam[rows] = _solve_block(flat[rows], kf[rows], nf[rows], kind, size)
    return lam.reshape(k.shape)


def row_blocks(rows: int, n: int) -> list[slice]:
    """Cache-sized blocks of whole rows (see :mod:`logitkit._blocks`)."""
    step = max(1, _blocks.BLOCK_BYTES // (4 * max(n, 1)))
    return [slice(r, min(rows, r + step)) for r in range(0, rows, step)]


# Full-size tensors below use arithmetic only: on CPU, torch.where and bool tensors cost 5-50x
# a float multiply (measured on the development machine), and these run once per entry.


def apply_f(t: Tensor, kind: str) -> Tensor:
    """:math:`f(t)` (``t`` may hold -inf)."""
    if kind == "sigmoid":
        return torch.sigmoid(t.clamp(-EXP_FLOOR, EXP_FLOOR))
    if kind == "exp":
        return torch.exp(t.clamp(-EXP_FLOOR, 0.0))
    above = _step(t)
    return _from_terms(torch.exp(-t.abs().clamp_(max=EXP_FLOOR)), above, kind)


def slope_from_output(y: Tensor, kind: str) -> Tensor:
    """:math:`w = f'(f^{-1}(y))`, written in ``y`` so that double backward flows through it."""
    if kind == "sigmoid":
        return y * (1.0 - y)
    if kind == "exp":
        return y * (1.0 - torch.floor(y))  # 0 where saturated (y = 1)
    return 0.5 - (y - 0.5).abs()  # min(y, 1 - y)


def slope(t: Tensor, kind: str) -> Tensor:
    """:math:`f'(t)` (zero at +-inf)."""
    if kind == "sigmoid":
        t = t.clamp(-EXP_FLOOR, EXP_FLOOR)
        return torch.sigmoid(t) * torch.sigmoid(-t)
    if kind == "exp":
        return torch.exp(t.clamp(-EXP_FLOOR, 0.0)) * (1.0 - _step(t) - (t == 0).to(t.dtype))
    return 0.5 * torch.exp(-t.abs().clamp(max=EXP_FLOOR))


def _implicit(w: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    r"""``J^T g`` for :math:`J = \mathrm{diag}(w) - w w^\top / W` and ``d y / d k = w / W``."""
    total = w.sum(-1, keepdim=True)
    alive = total > 0
    safe = torch.where(alive, total, 1.0)
    dot = torch.where(alive, (w * grad).sum(-1, keepdim=True) / safe, 0.0)
    return torch.addcmul(w * grad, w, dot, value=-1.0), dot


def _mask_into(z: Tensor, lam: Tensor, kind: str, out: Tensor | None = None) -> Tensor:
    r""":math:`f(z - \lambda)`, 0 on ``-inf`` entries (also when :math:`\lambda = -\infty`)."""
    finite = torch.where(torch.isneginf(lam), 0.0, lam)
    y = zero_masked(_fix_edges(apply_f(z - finite, kind), z, lam), z)
    if out is not None:
        out.copy_(y)
        return out
    return y


class ThresholdMask(torch.autograd.Function):
    r""":math:`y = f(z - \lambda(z, k))`; backward by the implicit-function theorem.

    Eager mode walks cache-sized blocks of rows (solve, then write the mask); the backward is a
    differentiable expression of the saved output, so double backward is exact.
    """

    @staticmethod
    def forward(ctx, z: Tensor, k: Tensor, n_kept: Tensor, kind: str, size: int) -> Tensor:  # type: ignore[override]
        if torch.compiler.is_compiling():
            y = _mask_into(z, _solve_static(z, k, kind, size), kind)
        else:
            n = z.shape[-1]
            flat, kf, nf = z.reshape(-1, n), k.reshape(-1, 1), n_kept.reshape(-1, 1)
            y = torch.empty_like(flat)
            for rows in row_blocks(flat.shape[0], n):
                _solve_block(flat[rows], kf[rows], nf[rows], kind, size, y[rows])
            y = y.reshape(z.shape)
        ctx.kind = kind
        ctx.k_grad = ctx.needs_input_grad[1]
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            grad_z, grad_k = _implicit(slope_from_output(y, ctx.kind), grad)
        else:
            grad_z, grad_k = _implicit_blocked(y, grad, ctx.kind)
        return grad_z, (grad_k if ctx.k_grad else None), None, None, None


def _implicit_blocked(y: Tensor, grad: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    n = y.shape[-1]
    yf, gf = y.reshape(-1, n), grad.reshape(-1, n)
    grad_z = torch.empty_like(yf)
    grad_k = torch.empty_like(yf[:, :1])
    for rows in row_blocks(yf.shape[0], n):
        w = slope_from_output(yf[rows], kind)
        gz, gk = _implicit(w, gf[rows])
        grad_z[rows] = gz
        grad_k[rows] = gk
    return grad_z.reshape(y.shape), grad_k.reshape(*y.shape[:-1], 1)


class Threshold(torch.autograd.Function):
    r""":math:`\lambda(z, k)` with :math:`\partial\lambda/\partial z = w / W`,
    :math:`\partial\lambda/\partial k = -1/W`."""

    @staticmethod
    def forward(ctx, z: Tensor, k: Tensor, n_kept: Tensor, kind: str, size: int) -> Tensor:  # type: ignore[override]
        lam = solve(z, k, n_kept, kind, size)
        ctx.kind = kind
        ctx.k_grad = ctx.needs_input_grad[1]
        ctx.save_for_backward(z, lam)
        return lam

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        z, lam = ctx.saved_tensors
        finite = torch.isfinite(lam)
        t = torch.where(finite & (z > -INF), z - torch.where(finite, lam, 0.0), -INF)
        w = torch.where(t > -INF, slope(t, ctx.kind), 0.0)
        total = w.sum(-1, keepdim=True)
        alive = total > 0
        inv = torch.where(alive, 1.0 / torch.where(alive, total, 1.0), 0.0)
        grad_z = w * (grad * inv)
        grad_k = -grad * inv if ctx.k_grad else None
        return grad_z, grad_k, None, None, None
