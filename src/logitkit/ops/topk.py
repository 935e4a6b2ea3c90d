r"""Soft top-k: differentiable masks in the capped simplex, and the smooth top-k sum.

The hard top-k mask :math:`\mathcal T_k(x)_i = \mathbf 1[i \in \Omega_k(x)]` (the indices of the
:math:`k` largest entries) is piecewise constant. A soft top-k
:math:`\mathcal{ST}_k(x / \tau)` maps scores to the *capped simplex*
:math:`\Delta_k = \{p : 0 \le p_i \le 1,\ \sum_i p_i = k\}`, is monotone
(:math:`x_i \ge x_j \Rightarrow p_i \ge p_j`), shift-invariant, and tends to
:math:`\mathcal T_k(x)` as the temperature :math:`\tau \to 0^+`. Constructions (``method``):

* ``"smooth"`` (default): threshold :math:`p_i = f(z_i - \lambda)`, :math:`\sum_i p_i = k`, with
  the Laplace CDF :math:`f(t) = \tfrac12 e^{t}\ (t<0),\ 1 - \tfrac12 e^{-t}\ (t \ge 0)`
  (the post's "best of both"); :math:`C^1`, every entry strictly inside (0, 1), closed form after a
  partial sort of the top :math:`2k` entries. Not softmax at :math:`k = 1` in general.
* ``"exp"``: threshold with :math:`f(t) = \min(1, e^t)`; closed form after a partial sort of the
  top :math:`k`; **exactly softmax at** :math:`k = 1`; the top entries saturate at exactly 1 (zero
  gradient there) and the map is only continuous, not differentiable, where an entry saturates.
* ``"sigmoid"``: threshold with :math:`f = \sigma`; :math:`C^\infty`, no closed form (monotone
  Newton from the ``"smooth"`` solution, fixed step count); not softmax at :math:`k = 1`.
* ``"esp"``: :math:`p = \nabla_z \log Z_k(z)` with
  :math:`Z_k = \sum_{|S| = k} e^{\sum_{i \in S} z_i}` (GradTopK; the elementary symmetric
  polynomial of :math:`e^z`), computed by a log-space dynamic programme; :math:`C^\infty`,
  exactly softmax at :math:`k = 1`, integer :math:`k` only, :math:`O(nk)` time and memory
  (computed in float64: the DP adds up to :math:`k` scores, whose float32 rounding would show).

Here :math:`z = x / \tau`. Threshold gradients use the implicit-function theorem, never unrolled
iterations: with :math:`w_i = f'(z_i - \lambda)` and :math:`W = \sum_i w_i`,
:math:`\partial p / \partial z = \mathrm{diag}(w) - w w^\top / W` and
:math:`\partial p / \partial k = w / W` (so a real-valued ``k`` is differentiable).

Masks. ``mask`` (bool, ``True`` keeps) and ``-inf`` scores mark entries that are never selected:
their output and gradient are 0, and a row with fewer than ``k`` kept entries returns 1 on each of
them (its sum is the number of kept entries).

References: J. Su, "Softmax后传：寻找Top-K的光滑近似" (kexue.fm/archives/10373, 2024) and
"函数光滑化杂谈" (kexue.fm/archives/6620, 2019); math.stackexchange answer 4506773 (threshold);
W. Ogryczak and A. Tamir, "Minimizing the sum of the k largest functions in linear time" (2003).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from logitkit import _checks
from logitkit.ops import _esp, _threshold
from logitkit.ops.softmax import apply_temperature

__all__ = ["SoftTopK", "soft_topk", "soft_topk_iterative", "soft_topk_sum"]

METHODS = ("smooth", "exp", "sigmoid", "esp")
_ITERATIVE = ("softkmax", "weighted")
_LOW_PRECISION = (torch.float16, torch.bfloat16)
INF = float("inf")


# --------------------------------------------------------------------------------------------
# Argument preparation
# --------------------------------------------------------------------------------------------


def _scores(input: Tensor, dim: int, temperature: float | Tensor, mask: Tensor | None) -> tuple[Tensor, int]:
    """Validated, upcast, tempered scores with ``dim`` moved last (masked entries ``-inf``)."""
    _checks.check_floating(input, "input")
    dim = _checks.check_dim(input, dim)
    _checks.check_temperature(temperature, input)
    if mask is not None:
        _checks.check_mask(mask, input)
    work = torch.float32 if input.dtype in _LOW_PRECISION else input.dtype
    x = input.to(work)
    if input.dim() == 0:
        x, mask = x.reshape(1), None if mask is None else mask.reshape(1)
    z = apply_temperature(x, temperature, mask)
    return z.movedim(dim, -1), dim


def _budget(k: float | Tensor, z: Tensor, dim: int, ndim: int, *, integer: bool) -> Tensor:
    """``k`` as a ``(..., 1)`` tensor in the working dtype (validated: 0 <= k <= n)."""
    n = z.shape[-1]
    what = "an integer" if integer else "a number"
    if isinstance(k, Tensor):
        if k.is_complex() or k.dtype == torch.bool:
            raise TypeError(f"k: expected a real tensor, got dtype {k.dtype}")
        if k.is_floating_point() is False and k.requires_grad:  # pragma: no cover - torch forbids it
            raise TypeError("k: an integer tensor cannot require grad")
        batch = z.shape[:-1]
        kt = k
        if kt.dim() == ndim and ndim > 0 and kt.shape[dim] == 1:
            kt = kt.squeeze(dim)
        try:
            shape = torch.broadcast_shapes(kt.shape, batch)
        except RuntimeError:
            shape = None
        if shape != batch:
            raise ValueError(
                f"k: expected a number or a tensor broadcastable to the input's shape without dim "
                f"{tuple(batch)}, got shape {tuple(k.shape)}"
            )
        if _checks.validate_args_enabled() and kt.numel():
            detached = kt.detach().double()
            bad = torch.isnan(detached) | (detached < 0) | (detached > n)
            if integer:
                bad |= detached != detached.round()
            if bool(bad.any()):
                got = detached.flatten()[bad.flatten()][0].item()
                raise ValueError(f"k: expected {what} in [0, {n}] (the size of dim {dim}), got {got:g}")
        return kt.to(z.dtype).expand(batch).unsqueeze(-1)
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise TypeError(f"k: expected a number or a tensor, got {type(k).__name__}")
    if not (0 <= k <= n) or (integer and k != int(k)):
        raise ValueError(f"k: expected {what} in [0, {n}] (the size of dim {dim}), got {k!r}")
    return torch.full_like(z[..., :1], float(k))


def _kept(z: Tensor) -> Tensor:
    return z > -INF


def _count_kept(z: Tensor) -> Tensor:
    """Finite entries per row, ``(..., 1)`` in ``z``'s dtype; one cheap reduction when none is
    masked (bool tensors are slow on CPU)."""
    if not torch.compiler.is_compiling() and z.numel() and bool(z.detach().amin() > -INF):
        return torch.full_like(z[..., :1], float(z.shape[-1]))
    return _kept(z).sum(-1, keepdim=True).to(z.dtype)


def _restore(y: Tensor, dim: int, input: Tensor) -> Tensor:
    y = y.movedim(-1, dim)
    if input.dim() == 0:
        y = y.reshape(())
    return y.to(input.dtype)


def _esp_plan(k: float | Tensor, kt: Tensor, n: int) -> tuple[int, bool]:
    """(number of DP steps, use the complement identity)."""
    if isinstance(k, Tensor):
        if torch.compiler.is_compiling() or kt.numel() == 0:
            return n, False
        return int(kt.detach().max()), False
    k = int(k)
    if 2 * k > n:
        return n - k, True
    return k, False


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def soft_topk(
    input: Tensor,
    k: float | Tensor,
    dim: int = -1,
    *,
    temperature: float | Tensor = 1.0,
    method: str = "smooth",
    mask: Tensor | None = None,
    straight_through: bool = False,
) -> Tensor:
    r"""Soft top-k mask :math:`\mathcal{ST}_k(x/\tau)` along ``dim``: entries in [0, 1], summing to k.

    .. math::

        p_i = f\big(x_i/\tau - \lambda\big), \qquad \sum_i p_i = k
        \qquad\text{(threshold methods)},

    .. math::

        p_i = \frac{\partial}{\partial z_i} \log \sum_{|S| = k} e^{\sum_{j\in S} z_j},
        \quad z = x / \tau \qquad (\texttt{"esp"}).

    See the module docstring for the four constructions; ``docs/soft_topk.md`` compares them.

    Args:
        input: scores of any shape.
        k: the budget, :math:`0 \le k \le n` (``n`` = size of ``dim``): a number, or a tensor
            broadcastable to the input's shape without ``dim`` (one budget per row; may require
            grad for the threshold methods). Real-valued for ``"smooth"``, ``"exp"``,
            ``"sigmoid"``; integer for ``"esp"`` and for ``straight_through``.
        dim: the dimension to select along (default ``-1``, like :func:`torch.topk`).
        temperature: :math:`\tau > 0`, a float or a tensor broadcastable to ``input``.
        method: ``"smooth"`` (default), ``"exp"``, ``"sigmoid"`` or ``"esp"``.
        mask: bool tensor broadcastable to ``input``; ``True`` keeps an entry. Masked and ``-inf``
            entries are never selected (output 0, gradient 0).
        straight_through: return the hard top-k mask in the forward pass and the soft mask's
            gradient in the backward pass (ties broken as :func:`torch.topk` does).

    Returns:
        A tensor shaped like ``input``, in its dtype (half precision is computed in float32).

    Example:
        >>> x = torch.tensor([3.0, 2.0, 1.0, 4.0], dtype=torch.float64)
        >>> soft_topk(x, 2)
        tensor([0.6967, 0.3033, 0.1116, 0.8884], dtype=torch.float64)
        >>> soft_topk(x, 1, method="exp")  # exactly softmax at k = 1
        tensor([0.2369, 0.0871, 0.0321, 0.6439], dtype=torch.float64)
        >>> soft_topk(x, 2, temperature=0.2)  # toward the hard mask [1, 0, 0, 1]
        tensor([9.5896e-01, 4.1042e-02, 2.7654e-04, 9.9972e-01], dtype=torch.float64)

    Reference: J. Su, kexue.fm/archives/10373 (2024).
    """
    _checks.check_one_of(method, "method", METHODS)
    z, dim = _scores(input, dim, temperature, mask)
    integer = method == "esp" or straight_through
    kt = _budget(k, z, dim, input.dim(), integer=integer)
    n = z.shape[-1]
    if n == 0 or z.numel() == 0:
        return _restore(torch.zeros_like(z), dim, input)
    if method == "esp":
        # The DP adds up to k scores, whose float32 rounding would show in the mask: float64.
        y = _esp_topk(z.double(), k, kt.double(), _kept(z)).to(z.dtype)
    else:
        size = _threshold.topk_size(k, n, method)
        n_kept = _count_kept(z)
        kt = torch.minimum(kt, n_kept)
        y = _threshold.ThresholdMask.apply(z, kt, n_kept, method, size)
    if straight_through:
        hard = _hard_topk(z.detach(), kt.detach(), k, _kept(z))
        y = hard + (y - y.detach())
    return _restore(y, dim, input)


def _esp_topk(z: Tensor, k: float | Tensor, kt: Tensor, keep: Tensor) -> Tensor:
    n = z.shape[-1]
    n_kept = keep.sum(-1, keepdim=True).to(kt.dtype)
    kt = torch.minimum(kt, n_kept)
    steps, complement = _esp_plan(k, kt, n)
    if complement:
        # ST_k(z) = 1 - ST_{n'-k}(-z) on the n' kept entries: fewer DP steps.
        zc = _esp.floor_masked(-z, keep)
        y = 1.0 - _esp.esp_mask(zc, n_kept - kt, steps)  # in [0, 1]: the mask is at most 1
    else:
        y = _esp.esp_mask(_esp.floor_masked(z, keep), kt, steps)
    # A row with no more kept entries than k selects all of them, exactly (and constantly).
    full = kt >= n_kept
    return torch.where(keep, torch.where(full, 1.0, y), 0.0)


def _hard_topk(z: Tensor, kt: Tensor, k: float | Tensor, keep: Tensor) -> Tensor:
    """The hard mask of the ``k`` largest kept entries (``-inf`` never chosen)."""
    n = z.shape[-1]
    if isinstance(k, Tensor):
        order = torch.sort(z, dim=-1, descending=True, stable=True).indices
        rank_ok = torch.arange(n, device=z.device, dtype=kt.dtype) < kt
        hard = torch.zeros_like(z).scatter(-1, order, rank_ok.to(z.dtype).expand_as(z))
    else:
        index = torch.topk(z, int(k), dim=-1).indices
        hard = torch.zeros_like(z).scatter(-1, index, 1.0)
    return torch.where(keep, hard, 0.0)


def soft_topk_sum(
    input: Tensor,
    k: float | Tensor,
    dim: int = -1,
    keepdim: bool = False,
    *,
    temperature: float | Tensor = 1.0,
    method: str = "smooth",
    mask: Tensor | None = None,
) -> Tensor:
    r"""Smooth sum of the k largest entries; its gradient is exactly :func:`soft_topk`.

    For the threshold methods, with :math:`F' = f`, :math:`F(-\infty) = 0`, :math:`z = x/\tau`:

    .. math::

        \mathrm{topk\_sum}_\tau(x) = \tau \min_\lambda \Big[\sum_i F(z_i - \lambda) + k\lambda\Big]
        = \tau \Big[\sum_i F(z_i - \lambda^*) + k\lambda^*\Big],

    the smoothing of the Ogryczak–Tamir identity
    :math:`\sum_{j\le k} x_{[j]} = \min_\lambda \sum_i [x_i - \lambda]_+ + k\lambda`:
    :math:`F(t) = \mathrm{softplus}(t)` (``"sigmoid"``), :math:`[t]_+ + \tfrac12 e^{-|t|}`
    (``"smooth"``) and :math:`[t]_+` (``"exp"``, after removing the exact constant offset
    :math:`k`, so that :math:`k = 1` gives :math:`\mathrm{LSE}_\tau`). For ``"esp"`` it is
    :math:`\tau \log Z_k(x/\tau)`, within :math:`[0, \tau \log\binom nk]` of the top-k sum. All are
    convex, at least the top-k sum, and tend to it as :math:`\tau \to 0^+`; the envelope theorem
    makes the gradient the soft top-k mask of the same method.

    Args are as in :func:`soft_topk`; ``keepdim`` keeps the reduced dim. Rows with :math:`k = 0`
    give 0; masked entries are left out of the sum.

    Example:
        >>> x = torch.tensor([3.0, 2.0, 1.0, 4.0])
        >>> soft_topk_sum(x, 2, temperature=0.1)  # 4 + 3
        tensor(7.0007)
        >>> soft_topk_sum(x, 1, method="esp")  # log-sum-exp at k = 1
        tensor(4.4402)

    Reference: J. Su, kexue.fm/archives/10373 (2024), and its comments.
    """
    _checks.check_one_of(method, "method", METHODS)
    z, dim = _scores(input, dim, temperature, mask)
    kt = _budget(k, z, dim, input.dim(), integer=method == "esp")
    keep = _kept(z)
    n = z.shape[-1]
    n_kept = keep.sum(-1, keepdim=True).to(kt.dtype)
    kt = torch.minimum(kt, n_kept)
    if n == 0 or z.numel() == 0:
        out = torch.zeros_like(z[..., :1])
    elif method == "esp":
        out = _esp_sum(z.double(), k, kt.double(), keep, n_kept.double()).to(z.dtype)
    else:
        size = _threshold.topk_size(k, n, method)
        lam = _threshold.Threshold.apply(z, kt, n_kept, method, size)
        out = _threshold_sum(z, kt, lam, keep, n_kept, method)
    out = _scale_back(out, temperature, input, dim)
    out = out.movedim(-1, dim) if input.dim() else out.reshape(())
    if not keepdim and input.dim():
        out = out.squeeze(dim)
    return out.to(input.dtype)


def _threshold_sum(z: Tensor, kt: Tensor, lam: Tensor, keep: Tensor, n_kept: Tensor, kind: str) -> Tensor:
    regular = torch.isfinite(lam)
    lam0 = torch.where(regular, lam, 0.0)
    t = torch.where(keep & regular, z - lam0, 0.0)
    if kind == "exp":
        terms = torch.relu(t)
    elif kind == "smooth":
        terms = torch.relu(t) + 0.5 * torch.exp(-t.abs())
    else:
        terms = torch.logaddexp(t, torch.zeros_like(t))  # exact (F.softplus is linear past 20)
    terms = torch.where(keep & regular, terms, 0.0)
    value = terms.sum(-1, keepdim=True) + kt * lam0
    # k = all kept entries: lambda = -inf and the sum is exact; k = 0: lambda = +inf, sum 0.
    total = torch.where(keep, z, 0.0).sum(-1, keepdim=True)
    full = (kt >= n_kept) & (n_kept > 0)
    value = torch.where(full, total, value)
    return torch.where(kt <= 0, 0.0, value)


def _esp_sum(z: Tensor, k: float | Tensor, kt: Tensor, keep: Tensor, n_kept: Tensor) -> Tensor:
    n = z.shape[-1]
    steps, complement = _esp_plan(k, kt, n)
    if complement:
        total = torch.where(keep, z, 0.0).sum(-1, keepdim=True)
        return total + _esp.log_esp(_esp.floor_masked(-z, keep), n_kept - kt, steps)
    zf = _esp.floor_masked(z, keep)
    # log Z_0 = 0: keep the result attached to the graph even when no step runs.
    value = _esp.log_esp(zf, kt, steps) + 0.0 * zf.sum(-1, keepdim=True)
    return torch.where(n_kept > 0, value, 0.0)


def _scale_back(out: Tensor, temperature: float | Tensor, input: Tensor, dim: int) -> Tensor:
    if isinstance(temperature, Tensor):
        shape = (1,) * (input.dim() - temperature.dim()) + tuple(temperature.shape)
        if input.dim() and shape[dim] != 1:
            raise ValueError(
                "temperature: a reduction needs a temperature constant along the reduced dim "
                f"(size 1 there), got shape {tuple(temperature.shape)}"
            )
        tau = temperature.reshape(shape).to(out.dtype) if input.dim() else temperature.to(out.dtype)
        tau = tau.movedim(dim, -1) if input.dim() else tau.reshape(1)
        return out * tau
    return out * temperature if temperature != 1 else out


def soft_topk_iterative(
    input: Tensor,
    k: int,
    dim: int = -1,
    *,
    temperature: float | Tensor = 1.0,
    variant: str = "softkmax",
    mask: Tensor | None = None,
) -> Tensor:
    r"""The two iterative soft top-k constructions, **for comparison only** (known defects).

    ``variant="softkmax"`` (post 6620): :math:`z \leftarrow z - \min z`, :math:`p \leftarrow 0`,
    then :math:`k` times :math:`p \leftarrow p + \mathrm{softmax}((1 - p) \odot z)`.
    Heuristic: **entries can exceed 1** (:math:`x = [3,2,1,4]`, :math:`k = 3`:
    :math:`p_4 = 1.1175`), so it is not a map into the capped simplex.

    ``variant="weighted"`` (stats.stackexchange answer 454788): :math:`k` times
    :math:`p \leftarrow p + w \odot e^{z} / \sum_j w_j e^{z_j}` with :math:`w = 1 - p`.
    **Wrong hard limit**: at :math:`k = 2`, :math:`\tau \to 0` it gives 1.5 at the maximum and 0.5
    at the runner-up, because :math:`1 - p_{\max}` is of the order of :math:`e^{-z_{\max}}`; it
    also violates monotonicity and, once an entry exceeds 1, uses negative weights.

    Use :func:`soft_topk` instead. Both run :math:`k` softmax passes and need an integer ``k``.

    Example:
        >>> x = torch.tensor([3.0, 2.0, 1.0, 4.0], dtype=torch.float64)
        >>> soft_topk_iterative(x, 3)
        tensor([0.9717, 0.6291, 0.2818, 1.1175], dtype=torch.float64)
        >>> soft_topk_iterative(x, 2, temperature=0.1, variant="weighted").round(decimals=4)
        tensor([0.5000, 0.0000, 0.0000, 1.5000], dtype=torch.float64)

    Reference: J. Su, kexue.fm/archives/6620 and 10373.
    """
    _checks.check_one_of(variant, "variant", _ITERATIVE)
    z, dim = _scores(input, dim, temperature, mask)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    n = z.shape[-1]
    if not 0 <= k <= n:
        raise ValueError(f"k: expected an integer in [0, {n}] (the size of dim {dim}), got {k!r}")
    keep = _kept(z)
    p = torch.zeros_like(z)
    if variant == "softkmax":
        low = torch.where(keep, z, INF).amin(-1, keepdim=True)
        base = torch.where(keep, z - torch.where(torch.isfinite(low), low, 0.0), 0.0)
        for _ in range(k):
            y = torch.where(keep, (1.0 - p) * base, -INF)
            p = p + _safe_softmax(y, keep)
    else:
        top = torch.where(keep, z, -INF).amax(-1, keepdim=True)
        e = torch.where(keep, torch.exp(z - torch.where(torch.isfinite(top), top, 0.0)), 0.0)
        for _ in range(k):
            weighted = (1.0 - p) * e
            total = weighted.sum(-1, keepdim=True)
            p = p + torch.where(total != 0, weighted / torch.where(total != 0, total, 1.0), 0.0)
    return _restore(p, dim, input)


def _safe_softmax(y: Tensor, keep: Tensor) -> Tensor:
    alive = keep.any(-1, keepdim=True)
    return torch.where(alive, torch.softmax(torch.where(alive, y, 0.0), -1), 0.0)


# --------------------------------------------------------------------------------------------
# Module
# --------------------------------------------------------------------------------------------


class SoftTopK(nn.Module):
    """Module form of :func:`soft_topk`; ``forward(input, mask=None)``.

    ``temperature`` may be an ``nn.Parameter`` (learned) or a tensor (stored as a buffer).
    """

    def __init__(
        self,
        k: float,
        dim: int = -1,
        *,
        temperature: float | Tensor = 1.0,
        method: str = "smooth",
        straight_through: bool = False,
    ) -> None:
        super().__init__()
        _checks.check_one_of(method, "method", METHODS)
        _checks.check_positive(temperature, "temperature")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
            raise ValueError(f"k: expected a non-negative number, got {k!r}")
        self.k = k
        self.dim = dim
        self.method = method
        self.straight_through = straight_through
        if isinstance(temperature, nn.Parameter):
            self.temperature = temperature
        elif isinstance(temperature, Tensor):
            self.register_buffer("temperature", temperature)
        else:
            self.temperature = float(temperature)

    def forward(self, input: Tensor, mask: Tensor | None = None) -> Tensor:
        return soft_topk(
            input,
            self.k,
            self.dim,
            temperature=self.temperature,
            method=self.method,
            mask=mask,
            straight_through=self.straight_through,
        )

    def extra_repr(self) -> str:
        t = self.temperature
        t = t.tolist() if isinstance(t, Tensor) else t
        return f"k={self.k}, dim={self.dim}, temperature={t}, method={self.method!r}"
