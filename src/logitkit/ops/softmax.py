r"""Numerically safe softmax, log-softmax and log-sum-exp with temperature and masks; smooth max/min.

With temperature :math:`\tau > 0` and :math:`m = \max_i x_i`:

.. math::

    \mathrm{LSE}_\tau(x) = \tau \log \sum_i e^{x_i/\tau} = m + \tau \log \sum_i e^{(x_i - m)/\tau},
    \qquad \mathrm{softmax}_\tau(x)_i = e^{x_i/\tau - \mathrm{LSE}_\tau(x)/\tau}.

:math:`\mathrm{LSE}_\tau` is the smooth maximum (:math:`\max \le \mathrm{LSE}_\tau \le \max + \tau
\log n`); softmax is the smooth one-hot of the arg-max, not a smooth max. :math:`\tau \to 0^+`
gives the hard operators, :math:`\tau \to \infty` the uniform distribution.

Masking. ``mask`` is a boolean tensor broadcastable to the input, ``True`` keeps an entry. Masked
entries, and ``-inf`` inputs, take no probability mass and receive zero gradient. A row with no
entry left is *dead*: softmax gives zeros, log-softmax and log-sum-exp give ``-inf``, and its
gradient is zero, never NaN (core PyTorch returns NaN there, pytorch/pytorch#31829). A ``+inf``
input is outside the domain (its softmax is undefined; core PyTorch returns NaN, #6864).

Precision. float16 / bfloat16 inputs are computed in float32 and returned in the input dtype;
``dtype=`` casts the input first, as in :func:`torch.nn.functional.softmax`.

References: J. Su, "寻求一个光滑的最大值函数" (kexue.fm/archives/3290, 2015) and
"函数光滑化杂谈" (kexue.fm/archives/6620, 2019); S. Ogun, "You Don't Really Know Softmax" (2020).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from logitkit import _checks

__all__ = [
    "LogSoftmax",
    "LogSumExp",
    "SmoothMax",
    "SmoothMin",
    "Softmax",
    "apply_temperature",
    "log_softmax",
    "logsumexp",
    "smooth_max",
    "smooth_min",
    "soft_argmax",
    "softmax",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_SMOOTH_MAX_METHODS = ("lse", "pnorm", "loglog")


# --------------------------------------------------------------------------------------------
# Shared preparation
# --------------------------------------------------------------------------------------------


def apply_temperature(input: Tensor, temperature: float | Tensor = 1.0, mask: Tensor | None = None) -> Tensor:
    r"""Scores :math:`z = x / \tau` with masked entries set to ``-inf``.

    Returns ``input`` itself when there is nothing to do. A tensor ``temperature`` (broadcastable
    to ``input``) may require grad; ``-inf`` inputs then contribute zero, not NaN, to its gradient.
    """
    if isinstance(temperature, Tensor):
        temperature = temperature.to(input.dtype)
        if temperature.requires_grad:
            # Double `where`: -inf / tau is fine forward, but its gradient w.r.t. tau is NaN.
            neg_inf = torch.isneginf(input)
            safe = torch.where(neg_inf, 0.0, input)
            z = torch.where(neg_inf, float("-inf"), safe / temperature)
        else:
            z = input / temperature
        return z if mask is None else z.masked_fill(~mask, float("-inf"))
    if temperature != 1.0:
        z = input / temperature
        # In place: the division's backward does not need its output.
        return z if mask is None else z.masked_fill_(~mask, float("-inf"))
    return input if mask is None else input.masked_fill(~mask, float("-inf"))


def _prepare(
    input: Tensor,
    dim: int,
    temperature: float | Tensor,
    mask: Tensor | None,
    dtype: torch.dtype | None,
) -> tuple[Tensor, int, torch.dtype]:
    """Validate, upcast and temper: returns (scores, normalised dim, output dtype)."""
    _checks.check_floating(input, "input")
    dim = _checks.check_dim(input, dim)
    _checks.check_temperature(temperature, input)
    if mask is not None:
        _checks.check_mask(mask, input)
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
    out_dtype = dtype or input.dtype
    work_dtype = dtype or (torch.float32 if input.dtype in _LOW_PRECISION else input.dtype)
    return apply_temperature(input.to(work_dtype), temperature, mask), dim, out_dtype


def _dead_rows(z: Tensor, dim: int) -> Tensor:
    """Rows (along ``dim``, kept as size 1) with no finite entry."""
    return z.amax(dim, keepdim=True) == float("-inf")


def _fill_dead_(y: Tensor, dead: Tensor, value: float) -> Tensor:
    # On CPU in eager mode a dead row is rare and the check is cheaper than a pass over `y`;
    # compiled graphs fuse the fill, and on accelerators the check would synchronise.
    if torch.compiler.is_compiling() or y.device.type != "cpu" or bool(dead.any()):
        y.masked_fill_(dead, value)
    return y


# --------------------------------------------------------------------------------------------
# Autograd Functions: native kernels plus dead-row handling
# --------------------------------------------------------------------------------------------


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, dim: int) -> Tensor:  # type: ignore[override]
        y = _fill_dead_(torch.softmax(z, dim), _dead_rows(z, dim), 0.0)
        ctx.dim = dim
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        # dJ^T g = y * (g - <g, y>); y = 0 on dead rows and masked entries, so they get 0.
        (y,) = ctx.saved_tensors
        return torch._softmax_backward_data(grad, y, ctx.dim, y.dtype), None


class _LogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, dim: int) -> Tensor:  # type: ignore[override]
        dead = _dead_rows(z, dim)
        y = _fill_dead_(torch.log_softmax(z, dim), dead, float("-inf"))
        ctx.dim = dim
        ctx.save_for_backward(y, dead)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        # g - exp(y) * sum(g); dead rows are constant (-inf) and get zero gradient.
        y, dead = ctx.saved_tensors
        grad_z = torch._log_softmax_backward_data(grad, y, ctx.dim, y.dtype)
        return _fill_dead_(grad_z, dead, 0.0), None


class _LogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, dim: int) -> Tensor:  # type: ignore[override]
        # torch.logsumexp already returns -inf (not NaN) for dead rows; only its gradient is NaN.
        out = torch.logsumexp(z, dim, keepdim=True)
        ctx.save_for_backward(z, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        z, out = ctx.saved_tensors
        safe = torch.where(torch.isneginf(out), 0.0, out)
        return grad * torch.exp(z - safe), None


def _empty_along(z: Tensor, dim: int) -> bool:
    return z.shape[dim] == 0


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def softmax(
    input: Tensor,
    dim: int,
    *,
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Softmax with temperature and mask, safe on fully masked rows.

    .. math::

        \mathrm{softmax}_\tau(x)_i = \frac{e^{(x_i - m)/\tau}}{\sum_{j \in K} e^{(x_j - m)/\tau}}
        \quad (i \in K), \qquad 0 \quad (i \notin K),

    with :math:`K` the kept (unmasked, finite) entries and :math:`m = \max_{j \in K} x_j`.

    Args:
        input: scores of any shape.
        dim: the dimension to normalise over (required, as in torch).
        temperature: :math:`\tau > 0`, a float or a tensor broadcastable to ``input``.
        mask: bool tensor broadcastable to ``input``; ``True`` keeps an entry.
        dtype: cast ``input`` to this dtype first (the result has it too).

    Returns:
        Probabilities shaped like ``input``: each row sums to 1, or is all zeros when no entry is
        kept (its gradient is zero too).

    Example:
        >>> softmax(torch.tensor([38.0, 20.0, 40.0, 39.0]), dim=0, temperature=100.0)
        tensor([0.2587, 0.2161, 0.2639, 0.2613])

    Reference: S. Ogun, "You Don't Really Know Softmax" (2020); J. Su, kexue.fm/archives/6620.
    """
    z, dim, out_dtype = _prepare(input, dim, temperature, mask, dtype)
    if _empty_along(z, dim):
        return z.to(out_dtype)
    return _Softmax.apply(z, dim).to(out_dtype)


def log_softmax(
    input: Tensor,
    dim: int,
    *,
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Log-softmax with temperature and mask: :math:`x_i/\tau - \mathrm{LSE}(x/\tau)`.

    Never computed as ``log(softmax)``, whose small probabilities underflow to ``log 0``. Masked
    entries and fully masked rows give ``-inf`` with zero gradient (never NaN).

    Args are as in :func:`softmax`.

    Example:
        >>> log_softmax(torch.tensor([1000.0, 1001.0, 1002.0]), dim=0)
        tensor([-2.4076, -1.4076, -0.4076])
    """
    z, dim, out_dtype = _prepare(input, dim, temperature, mask, dtype)
    if _empty_along(z, dim):
        return z.to(out_dtype)
    return _LogSoftmax.apply(z, dim).to(out_dtype)


def logsumexp(
    input: Tensor,
    dim: int,
    keepdim: bool = False,
    *,
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    r"""Log-sum-exp with temperature: :math:`\mathrm{LSE}_\tau(x) = \tau \log \sum_i e^{x_i/\tau}`.

    The temperature multiplies back, so the result is in the units of ``x`` and is the smooth
    maximum: :math:`\max_i x_i \le \mathrm{LSE}_\tau(x) \le \max_i x_i + \tau \log n`, increasing in
    :math:`\tau`. Rows with no kept entry give ``-inf`` and zero gradient. Its gradient is
    :math:`\mathrm{softmax}_\tau(x)`.

    Example:
        >>> logsumexp(torch.tensor([-1000.0, -1001.0, -1002.0]), dim=0)
        tensor(-999.5924)
    """
    z, dim, out_dtype = _prepare(input, dim, temperature, mask, dtype)
    if _empty_along(z, dim):
        out = torch.full_like(z.sum(dim, keepdim=True), float("-inf"))
    else:
        out = _LogSumExp.apply(z, dim)
        if isinstance(temperature, Tensor):
            # Double `where`: d(tau * lse)/d tau = lse is -inf on a dead row.
            dead = torch.isneginf(out)
            tau = _reduced_temperature(temperature, input, dim).to(out.dtype)
            out = torch.where(dead, float("-inf"), torch.where(dead, 0.0, out) * tau)
        elif temperature != 1:
            out = out * temperature
    if not keepdim:
        out = out.squeeze(dim)
    return out.to(out_dtype)


def _reduced_temperature(temperature: Tensor, input: Tensor, dim: int) -> Tensor:
    """A tensor temperature reshaped to broadcast against an output reduced over ``dim``."""
    shape = (1,) * (input.dim() - temperature.dim()) + tuple(temperature.shape)
    # A temperature that varies along `dim` has no single value for the reduced output.
    if shape[dim] != 1:
        raise ValueError(
            "temperature: a reduction needs a temperature constant along the reduced dim "
            f"(size 1 there), got shape {tuple(temperature.shape)}"
        )
    return temperature.reshape(shape)


def smooth_max(
    input: Tensor,
    dim: int,
    keepdim: bool = False,
    *,
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
    method: str = "lse",
) -> Tensor:
    r"""Smooth maximum along ``dim``; :math:`\tau \to 0^+` recovers :math:`\max`.

    Methods (post 3290, with inverse temperature :math:`k = 1/\tau`):

    * ``"lse"`` (default, eq. 11/12): :math:`\tau \log \sum_i e^{x_i/\tau}`, for all reals. An
      upper bound, within :math:`\tau \log n` of the max. The recommended choice.
    * ``"pnorm"`` (eq. 13): :math:`\big(\sum_i x_i^{p}\big)^{1/p}` with :math:`p = 2k + 1`.
      **Non-negative inputs only** (for mixed signs it tends to the entry of largest
      :math:`|x|`); error :math:`O(\log n / p)` relative to the max. Masked entries count as 0.
    * ``"loglog"`` (eq. 14): :math:`\tau \log \log \sum_i e^{e^{x_i/\tau}}`, evaluated without
      overflow. **Non-negative inputs only** (for negative inputs it tends to 0, not the max).

    Rows with no kept entry give ``-inf`` (``"lse"``) or 0 (the others: the empty maximum of
    non-negative numbers).

    Example:
        >>> smooth_max(torch.tensor([1.0, 2.0]), dim=0, temperature=0.2)
        tensor(2.0013)
    """
    _checks.check_one_of(method, "method", _SMOOTH_MAX_METHODS)
    if method == "lse":
        return logsumexp(input, dim, keepdim, temperature=temperature, mask=mask)
    z, dim, out_dtype = _prepare(input, dim, 1.0, None, None)
    _checks.check_positive(temperature, "temperature")
    if isinstance(temperature, Tensor):
        temperature = _reduced_temperature(temperature, input, dim).to(z.dtype)
    if mask is not None:
        _checks.check_mask(mask, input)
    # Masked entries count as 0 in the p-norm and are -inf (excluded) in the double exponential.
    kept = z if mask is None else z.masked_fill(~mask, 0.0)
    _checks.check_nonnegative_values(kept, f"input (method={method!r})")
    if method == "pnorm":
        out = _pnorm_max(kept, dim, temperature)
    else:
        u = apply_temperature(z, temperature if isinstance(temperature, Tensor) else float(temperature), mask)
        out = _LogLogSumExpExp.apply(u, dim) * temperature
    if not keepdim:
        out = out.squeeze(dim)
    return out.to(out_dtype)


def _pnorm_max(z: Tensor, dim: int, temperature: float | Tensor) -> Tensor:
    p = 1.0 + 2.0 / temperature
    # Homogeneous of degree 1, so scaling by a constant (detached) max is exact.
    scale = z.detach().amax(dim, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    total = ((z / scale) ** p).sum(dim, keepdim=True)
    empty = total == 0
    safe = torch.where(empty, torch.ones_like(total), total)
    return torch.where(empty, torch.zeros_like(total), scale * safe ** (1.0 / p))


class _LogLogSumExpExp(torch.autograd.Function):
    r"""Row-wise :math:`\log\log\sum_i e^{e^{u_i}}` (keepdim) without overflow; ``-inf`` = masked.

    With :math:`c = \max_i u_i`, :math:`d = u - c` and :math:`v_i = e^c\,\mathrm{expm1}(d_i) \le 0`:
    :math:`\log\sum_i e^{e^{u_i}} = e^c + s`, :math:`s = \mathrm{LSE}(v) \in [0, \log n]`, so the
    result is :math:`c + \mathrm{log1p}(s e^{-c})`. Its gradient,
    :math:`\mathrm{softmax}(v)_i\, e^{d_i} / (1 + s e^{-c})`, has only bounded factors.
    """

    @staticmethod
    def forward(ctx, u: Tensor, dim: int) -> Tensor:  # type: ignore[override]
        c = u.amax(dim, keepdim=True)
        empty = torch.isneginf(c)
        c = torch.where(empty, 0.0, c)
        d = u - c
        gap = -torch.expm1(d)  # in [0, 1]: 0 at the max
        v = torch.where(gap == 0, 0.0, -torch.exp(c + torch.log(gap)))
        v = v.masked_fill(torch.isneginf(u), float("-inf"))
        r = torch.logsumexp(v, dim, keepdim=True) * torch.exp(-c)
        ctx.dim = dim
        ctx.save_for_backward(v, d, r, empty)
        return torch.where(empty, 0.0, c + torch.log1p(r))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        v, d, r, empty = ctx.saved_tensors
        share = _Softmax.apply(v, ctx.dim) * torch.exp(d) / (1.0 + r)
        return grad * share.masked_fill(empty, 0.0), None


def smooth_min(
    input: Tensor,
    dim: int,
    keepdim: bool = False,
    *,
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
    method: str = "lse",
) -> Tensor:
    r"""Smooth minimum: :math:`-\mathrm{smooth\_max}(-x)`, e.g. :math:`-\tau\log\sum_i e^{-x_i/\tau}`.

    A lower bound of :math:`\min_i x_i` within :math:`\tau \log n`. For ``method="pnorm"`` or
    ``"loglog"`` the input must be non-positive (their smooth max needs non-negative input).
    Rows with no kept entry give ``+inf`` (``"lse"``) or 0.

    Example:
        >>> smooth_min(torch.tensor([1.0, 2.0]), dim=0, temperature=0.2)
        tensor(0.9987)
    """
    _checks.check_floating(input, "input")
    return -smooth_max(-input, dim, keepdim, temperature=temperature, mask=mask, method=method)


def soft_argmax(
    input: Tensor,
    dim: int,
    keepdim: bool = False,
    *,
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
) -> Tensor:
    r"""Soft arg-max, a float index: :math:`\sum_i i \cdot \mathrm{softmax}_\tau(x)_i` (0-based).

    Tends to the arg-max index as :math:`\tau \to 0^+` (the mean of tied maxima), and equals the
    mean index for a constant row. A row with no kept entry gives 0.

    Example:
        >>> soft_argmax(torch.tensor([2.0, 1.0, 4.0, 5.0, 3.0]), dim=0, temperature=0.01)
        tensor(3.)

    Reference: J. Su, kexue.fm/archives/6620.
    """
    probs = softmax(input, dim, temperature=temperature, mask=mask)
    dim = _checks.check_dim(input, dim)
    shape = [1] * input.dim()
    shape[dim] = input.shape[dim]
    index = torch.arange(input.shape[dim], dtype=probs.dtype, device=probs.device).view(shape)
    return (probs * index).sum(dim, keepdim=keepdim)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class _TemperedOp(nn.Module):
    """Holds ``dim`` and ``temperature`` (a float, a buffer, or a learnable Parameter)."""

    def __init__(self, dim: int, *, temperature: float | Tensor = 1.0) -> None:
        super().__init__()
        _checks.check_positive(temperature, "temperature")
        self.dim = dim
        if isinstance(temperature, nn.Parameter):
            self.temperature = temperature
        elif isinstance(temperature, Tensor):
            self.register_buffer("temperature", temperature)
        else:
            self.temperature = float(temperature)

    def extra_repr(self) -> str:
        t = self.temperature
        return f"dim={self.dim}, temperature={t.tolist() if isinstance(t, Tensor) else t}"


class Softmax(_TemperedOp):
    """Module form of :func:`softmax`; ``forward(input, mask=None)``."""

    def forward(self, input: Tensor, mask: Tensor | None = None) -> Tensor:
        return softmax(input, self.dim, temperature=self.temperature, mask=mask)


class LogSoftmax(_TemperedOp):
    """Module form of :func:`log_softmax`; ``forward(input, mask=None)``."""

    def forward(self, input: Tensor, mask: Tensor | None = None) -> Tensor:
        return log_softmax(input, self.dim, temperature=self.temperature, mask=mask)


class LogSumExp(_TemperedOp):
    """Module form of :func:`logsumexp`; ``forward(input, mask=None)``."""

    def __init__(self, dim: int, keepdim: bool = False, *, temperature: float | Tensor = 1.0) -> None:
        super().__init__(dim, temperature=temperature)
        self.keepdim = keepdim

    def forward(self, input: Tensor, mask: Tensor | None = None) -> Tensor:
        return logsumexp(input, self.dim, self.keepdim, temperature=self.temperature, mask=mask)


class SmoothMax(_TemperedOp):
    """Module form of :func:`smooth_max`; ``forward(input, mask=None)``."""

    def __init__(
        self,
        dim: int,
        keepdim: bool = False,
        *,
        temperature: float | Tensor = 1.0,
        method: str = "lse",
    ) -> None:
        super().__init__(dim, temperature=temperature)
        _checks.check_one_of(method, "method", _SMOOTH_MAX_METHODS)
        self.keepdim = keepdim
        self.method = method

    def forward(self, input: Tensor, mask: Tensor | None = None) -> Tensor:
        return smooth_max(
            input,
            self.dim,
            self.keepdim,
            temperature=self.temperature,
            mask=mask,
            method=self.method,
        )


class SmoothMin(SmoothMax):
    """Module form of :func:`smooth_min`; ``forward(input, mask=None)``."""

    def forward(self, input: Tensor, mask: Tensor | None = None) -> Tensor:
        return smooth_min(
            input,
            self.dim,
            self.keepdim,
            temperature=self.temperature,
            mask=mask,
            method=self.method,
        )
