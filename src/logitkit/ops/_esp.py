r"""Log-space elementary symmetric polynomials (private; the ``"esp"`` soft top-k).

:math:`Z_k(z) = e_k(e^{z_1}, \dots, e^{z_n}) = \sum_{|S| = k} e^{\sum_{i\in S} z_i}`. The post's
recursion :math:`Z_{k,i} = e^{z_i}(Z_{k-1} - Z_{k-1,i})` subtracts nearly equal numbers and returns
NaN for large spreads (spec operators.md §3.4). Here nothing is ever subtracted:

* prefix tables :math:`P_j[i] = \log e_j(e^{z_1}, \dots, e^{z_i})` by
  :math:`P_j[i] = \mathrm{logcumsumexp}_{i' = j..i}(z_{i'} + P_{j-1}[i'-1])` (the largest element
  of a subset is :math:`i'`), computed only on the reachable suffix :math:`i \ge j`;
* suffix tables :math:`Q_j` the same on the reversed vector;
* the mask :math:`\partial \log Z_k / \partial z_i = e^{z_i} e_{k-1}(z_{\setminus i}) / Z_k` with
  :math:`\log e_{k-1}(z_{\setminus i}) = \mathrm{LSE}_j (P_j[i-1] + Q_{k-1-j}[n-i])`.

All of it is ordinary differentiable torch code (``k`` steps of ``logcumsumexp``), so autograd gives
the Jacobian of the mask (the Hessian of :math:`\log Z_k`) and ``torch.compile`` traces it.
Time and memory are :math:`O(nk)` per row.

Entries that are never selected (``keep`` false) are replaced by a finite floor far below the
smallest kept score (:math:`\Delta = 50 + 2\log(n+1)`), which changes the kept outputs by a relative
:math:`n^2 e^{-\Delta} < 10^{-21}` and keeps ``-inf`` (and its NaN gradients) out of the tables;
their outputs are then set to 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

INF = float("inf")


class LogCumSumExp(torch.autograd.Function):
    r"""``torch.logcumsumexp`` along the last dim with a backward that is safe to differentiate.

    Core PyTorch's backward takes ``log|g|`` behind a single ``where``, so its double backward
    is NaN wherever an upstream gradient is exactly 0, which is most entries in the DP. Here
    :math:`\partial L/\partial x_i = \sum_{j \ge i} g_j e^{x_i - y_j}` is written with the sign
    split in log space and double ``where`` guards (and this Function again for the reversed
    cumulative sums), so every order of derivative is finite.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        y = torch.logcumsumexp(x, dim=-1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        x, y = ctx.saved_tensors
        return _logcumsumexp_backward(grad, x, y)


def logcumsumexp(x: Tensor) -> Tensor:
    if torch.compiler.is_compiling():
        return torch.logcumsumexp(x, dim=-1)
    return LogCumSumExp.apply(x)


def _reverse_logcumsumexp(a: Tensor) -> Tensor:
    return LogCumSumExp.apply(a.flip(-1)).flip(-1)


def _logcumsumexp_backward(grad: Tensor, x: Tensor, y: Tensor) -> Tensor:
    finite_y = y > -INF
    nonzero = (grad != 0) & finite_y
    log_abs = torch.log(torch.where(nonzero, grad.abs(), 1.0))
    base = log_abs - torch.where(finite_y, y, 0.0)
    out = torch.zeros_like(x)
    for sign, part in ((1.0, grad > 0), (-1.0, grad < 0)):
        r = _reverse_logcumsumexp(torch.where(part & nonzero, base, -INF))
        ok = (r > -INF) & (x > -INF)
        term = torch.exp(torch.where(ok, r + torch.where(x > -INF, x, 0.0), -INF))
        out = out + sign * torch.where(ok, term, 0.0)
    return out


def floor_masked(z: Tensor, keep: Tensor) -> Tensor:
    """Replace entries with ``keep`` false by a finite value far below every kept one."""
    n = z.shape[-1]
    gap = 50.0 + 2.0 * math.log(n + 1)
    low = torch.where(keep, z, INF).amin(-1, keepdim=True)
    low = torch.where(torch.isfinite(low), low, 0.0).detach() - gap
    return torch.where(keep, z, low)


def prefix_tables(z: Tensor, steps: int) -> list[Tensor]:
    """``[P_0, ..., P_steps]``, each ``(..., n + 1)``; unreachable entries are ``-inf``."""
    n = z.shape[-1]
    zeros = torch.zeros_like(z[..., :1]).expand(*z.shape[:-1], n + 1)
    tables = [zeros]
    for j in range(1, steps + 1):
        prev = tables[-1]
        cur = logcumsumexp(z[..., j - 1 :] + prev[..., j - 1 : n])
        pad = torch.full_like(z[..., :1], -INF).expand(*z.shape[:-1], j)
        tables.append(torch.cat([pad, cur], dim=-1))
    return tables


def log_esp(z: Tensor, k: Tensor, steps: int) -> Tensor:
    """:math:`\\log Z_k` (shape ``(..., 1)``) for integer ``k`` in [0, steps] per row."""
    tables = torch.stack(prefix_tables(z, steps), dim=0)[..., -1:]  # (steps+1, ..., 1)
    return tables.gather(0, k.long().unsqueeze(0)).squeeze(0)


def esp_mask(z: Tensor, k: Tensor, steps: int) -> Tensor:
    """:math:`\\nabla_z \\log Z_k(z)` for integer ``k`` (shape ``(..., 1)``) in [0, steps]."""
    n = z.shape[-1]
    if steps == 0:
        return z * 0.0  # k = 0 everywhere (z is finite here): zeros, attached to the graph
    prefix = prefix_tables(z, steps)
    suffix = prefix_tables(z.flip(-1), steps - 1)
    log_z = torch.stack(prefix, dim=0)[..., -1:].gather(0, k.long().unsqueeze(0)).squeeze(0)
    # Q_{k-1-j} evaluated after position i, for every j: gather along the table axis.
    suffix_stack = torch.stack([q[..., :n].flip(-1) for q in suffix], dim=0)  # (steps, ..., n)
    kk = k.long()
    terms = []
    for j in range(steps):
        idx = kk - 1 - j
        valid = idx >= 0
        q = suffix_stack.gather(0, idx.clamp_min(0).unsqueeze(0).expand(1, *z.shape)).squeeze(0)
        terms.append(torch.where(valid, prefix[j][..., :n] + q, -INF))
    stacked = torch.stack(terms, dim=0)
    alive = kk > 0
    # Rows with k = 0 have no valid term: a zero placeholder keeps NaN out of logsumexp's backward.
    stacked = torch.where(alive.unsqueeze(0), stacked, 0.0)
    rest = torch.logsumexp(stacked, dim=0)
    # Rounding can leave a saturated entry a few ulps above 1; the exact value is at most 1.
    out = torch.exp(z + rest - log_z).clamp(max=1.0)
    return torch.where(alive, out, 0.0)
