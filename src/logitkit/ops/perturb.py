r"""Perturb-and-argmax distributions: the law of :math:`\arg\max_i(\mu_i + \varepsilon_i)`.

With :math:`\varepsilon_i` i.i.d. of density :math:`p` and CDF :math:`\Phi`, and
:math:`\mu = x/\tau`,

.. math::

    P_i = P\big[\arg\max_j (\mu_j + \varepsilon_j) = i\big]
        = \int p(\varepsilon) \prod_{j\ne i} \Phi(\mu_i - \mu_j + \varepsilon)\, d\varepsilon .

It is non-negative, sums to 1, is monotone and shift-invariant in :math:`\mu`. Gumbel noise,
:math:`\Phi(\varepsilon) = e^{-e^{-\varepsilon}}`, gives exactly :math:`\mathrm{softmax}(\mu)` (the
Gumbel-max trick); normal noise gives the probability behind EXACT (Karpukhin et al. 2022);
logistic noise a third smooth family. No other noise is known to have a closed form, so the
integral is computed by deterministic quadrature, in log space, differentiably in :math:`\mu`.

Quadrature (``nodes``):

* ``"grid"`` (default) [derived]: substitute :math:`s = \mu_i + \varepsilon`, the value of the
  maximum. Then :math:`P_i = \int \frac{p(s - \mu_i)}{\Phi(s - \mu_i)}\, \Pi(s)\, ds` with
  :math:`\Pi(s) = \prod_j \Phi(s - \mu_j)` shared by every class, so one grid in :math:`s` serves
  all classes: :math:`O(Kn)` per row instead of :math:`O(Kn^2)`. The integrand is analytic and
  decays at both ends, so the midpoint rule on a uniform grid converges exponentially fast; the
  grid spans :math:`[\max\mu + \Phi^{-1}(\epsilon), \max\mu + \Phi^{-1}(1 - \epsilon/n)]`
  (:math:`\epsilon` the dtype's resolution), so probabilities are accurate to about
  :math:`10^{-12}` (float64) for hundreds to thousands of classes. Classes whose probability is
  below :math:`\epsilon` are accurate in absolute terms only (their log-probability may not be).
* ``"midpoint"`` / ``"post"`` (post 9085): substitute :math:`t = \Phi(\varepsilon)` and average the
  integrand over nodes :math:`t_k = (k - \tfrac12)/K` or :math:`k/(K+1)` (the post's nodes, which
  bias the result: :math:`\sum_i P_i = 0.99954` at :math:`K = 2000`). :math:`O(Kn^2)`; the
  integrand :math:`\prod_j \Phi(\cdot)` is sharply peaked near :math:`t = 1` when :math:`n` is large,
  so these rules need :math:`K \gg n`. Kept for reproduction and comparison.

``renormalize=True`` divides by the quadrature's total.

Reference: J. Su, "从重参数的角度看离散概率分布的构建" (kexue.fm/archives/9085, 2022);
I. Karpukhin, S. Dereka, S. Kolesnikov, "EXACT: How to Train Your Accuracy" (arXiv 2205.09615).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from logitkit import _checks
from logitkit.ops.softmax import apply_temperature

__all__ = ["perturb_argmax_probs", "perturb_argmax_sample"]

NOISES = ("normal", "gumbel", "logistic")
NODES = ("grid", "midpoint", "post")
_LOW_PRECISION = (torch.float16, torch.bfloat16)
INF = float("inf")
_LOG_2PI_HALF = 0.5 * math.log(2.0 * math.pi)
# Grid spacing (in noise units) per (noise, precision): the midpoint rule's error on the smooth
# integrand is below the dtype's resolution at these spacings (tests/ops/test_perturb.py).
_SPACING = {"normal": (0.1, 0.25), "logistic": (0.3, 0.5), "gumbel": (0.2, 0.4)}
_CHUNK = 64  # quadrature nodes per chunk in the O(K n^2) rules


def _log_cdf(x: Tensor, noise: str) -> Tensor:
    if noise == "normal":
        return torch.special.log_ndtr(x)
    if noise == "logistic":
        return torch.nn.functional.logsigmoid(x)
    return -torch.exp(-x)


def _log_hazard(x: Tensor, noise: str) -> Tensor:
    """:math:`\\log p(x) - \\log \\Phi(x)` (the reversed hazard)."""
    if noise == "normal":
        return -0.5 * x * x - _LOG_2PI_HALF - torch.special.log_ndtr(x)
    if noise == "logistic":
        return -torch.logaddexp(x, torch.zeros_like(x))  # exact (F.softplus is linear past 20)
    return -x


def _quantile(t: Tensor, noise: str) -> Tensor:
    if noise == "normal":
        return torch.special.ndtri(t)
    if noise == "logistic":
        return torch.logit(t)
    return -torch.log(-torch.log(t))


def _grid_range(noise: str, n: int, dtype: torch.dtype) -> tuple[float, float]:
    """Offsets from :math:`\\max\\mu` outside which the density of the maximum is below rounding."""
    eps = torch.finfo(dtype).eps * 1e-2
    if noise == "normal":
        lo = torch.special.ndtri(torch.tensor(eps, dtype=torch.float64)).item()
        hi = -torch.special.ndtri(torch.tensor(eps / max(n, 1), dtype=torch.float64)).item()
    elif noise == "logistic":
        lo, hi = math.log(eps), -math.log(eps / max(n, 1))
    else:
        lo, hi = -math.log(-math.log(eps)), -math.log(eps / max(n, 1))
    return lo, hi


def _grid_log_probs(mu: Tensor, keep: Tensor, noise: str, num_nodes: int | None) -> Tensor:
    """log P by the midpoint rule in the value of the maximum (module docstring)."""
    n = mu.shape[-1]
    lo, hi = _grid_range(noise, n, mu.dtype)
    if num_nodes is None:
        spacing = _SPACING[noise][0 if mu.dtype == torch.float64 else 1]
        num_nodes = math.ceil((hi - lo) / spacing)
    h = (hi - lo) / num_nodes
    top = mu.detach().masked_fill(~keep, -INF).amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, 0.0)
    offsets = lo + h * (torch.arange(num_nodes, dtype=mu.dtype, device=mu.device) + 0.5)
    s = top.unsqueeze(-1) + offsets  # (..., 1, K)
    x = s - mu.unsqueeze(-1)  # (..., n, K)
    kept = keep.unsqueeze(-1)
    log_max_cdf = torch.where(kept, _log_cdf(x, noise), 0.0).sum(-2, keepdim=True)
    integrand = _log_hazard(x, noise) + log_max_cdf
    return torch.logsumexp(integrand, -1) + math.log(h)


def _tspace_log_probs(mu: Tensor, keep: Tensor, noise: str, num_nodes: int, rule: str) -> Tensor:
    """log P by the post's substitution t = Phi(eps) and equal-weight nodes in t."""
    n = mu.shape[-1]
    k = torch.arange(1, num_nodes + 1, dtype=torch.float64, device=mu.device)
    t = (k - 0.5) / num_nodes if rule == "midpoint" else k / (num_nodes + 1)
    eps = _quantile(t, noise).to(mu.dtype)
    diff = mu.unsqueeze(-1) - mu.unsqueeze(-2)  # (..., i, j) = mu_i - mu_j
    others = keep.unsqueeze(-2) & ~torch.eye(n, dtype=torch.bool, device=mu.device)
    parts = []
    for start in range(0, num_nodes, _CHUNK):
        e = eps[start : start + _CHUNK]
        terms = _log_cdf(diff.unsqueeze(-1) + e, noise)  # (..., i, j, K)
        parts.append(torch.where(others.unsqueeze(-1), terms, 0.0).sum(-2))
    log_terms = torch.cat(parts, dim=-1)
    return torch.logsumexp(log_terms, -1) - math.log(num_nodes)


def perturb_argmax_probs(
    logits: Tensor,
    dim: int = -1,
    *,
    noise: str = "normal",
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
    nodes: str = "grid",
    num_nodes: int | None = None,
    renormalize: bool = True,
    log: bool = False,
) -> Tensor:
    r"""Probabilities :math:`P_i = P[\arg\max_j (x_j/\tau + \varepsilon_j) = i]` by quadrature.

    .. math::

        P_i = \int \frac{p(s - \mu_i)}{\Phi(s - \mu_i)} \prod_{j} \Phi(s - \mu_j)\, ds,
        \qquad \mu = x / \tau,

    evaluated in log space on a grid in :math:`s` (``nodes="grid"``), or as the post's
    :math:`\int_0^1 \prod_{j \ne i}\Phi(\mu_i - \mu_j + \Phi^{-1}(t))\, dt` on nodes in :math:`t`
    (``"midpoint"``, ``"post"``). ``noise="gumbel"`` returns the exact closed form
    :math:`\mathrm{softmax}(\mu)`. For two classes with normal noise,
    :math:`P_1 = \Phi_{\mathcal N}((\mu_1 - \mu_2)/\sqrt 2)`.

    Args:
        logits: scores of any shape.
        dim: the class dimension (default ``-1``).
        noise: ``"normal"`` (default), ``"gumbel"`` or ``"logistic"``, each with unit scale.
        temperature: :math:`\tau > 0`, the noise scale (dividing the logits by it).
        mask: bool tensor broadcastable to ``logits``; ``True`` keeps a class. Masked and ``-inf``
            classes have probability 0 and zero gradient; a row with none kept gives zeros
            (``-inf`` with ``log=True``).
        nodes: ``"grid"`` (default, :math:`O(Kn)`), ``"midpoint"`` or ``"post"`` (:math:`O(Kn^2)`).
        num_nodes: quadrature nodes :math:`K` (default: from the dtype, about 120 for normal noise
            in float64, for ``"grid"``; 256 for the other rules).
        renormalize: divide by the quadrature's total so that rows sum to 1 (default True).
        log: return log-probabilities (accurate where the probability exceeds the dtype's
            resolution).

    Returns:
        Probabilities (or log-probabilities) shaped like ``logits``, in its dtype.

    Example:
        >>> mu = torch.tensor([1.0, 0.3, -0.5, 2.0], dtype=torch.float64)
        >>> perturb_argmax_probs(mu)
        tensor([0.2109, 0.0724, 0.0161, 0.7007], dtype=torch.float64)
        >>> torch.allclose(perturb_argmax_probs(mu, noise="gumbel"), torch.softmax(mu, 0))
        True

    Reference: J. Su, kexue.fm/archives/9085.
    """
    _checks.check_floating(logits, "logits")
    dim = _checks.check_dim(logits, dim, "dim")
    _checks.check_one_of(noise, "noise", NOISES)
    _checks.check_one_of(nodes, "nodes", NODES)
    _checks.check_positive(temperature, "temperature")
    if num_nodes is not None and (
        isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1
    ):
        raise ValueError(f"num_nodes: expected a positive int, got {num_nodes!r}")
    if mask is not None:
        _checks.check_mask(mask, logits)
    work = torch.float32 if logits.dtype in _LOW_PRECISION else logits.dtype
    x = logits.to(work)
    scalar = x.dim() == 0
    if scalar:
        x, mask = x.reshape(1), None if mask is None else mask.reshape(1)
    mu = apply_temperature(x, temperature, mask).movedim(dim, -1)
    keep = mu > -INF
    safe = torch.where(keep, mu, 0.0)
    if mu.shape[-1] == 0 or mu.numel() == 0:
        logp = mu.clone()
    elif noise == "gumbel":
        alive = keep.any(-1, keepdim=True)
        logp = torch.log_softmax(torch.where(keep, safe, -INF).masked_fill(~alive, 0.0), -1)
    elif nodes == "grid":
        logp = _grid_log_probs(safe, keep, noise, num_nodes)
    else:
        logp = _tspace_log_probs(safe, keep, noise, num_nodes or 256, nodes)
    if renormalize and noise != "gumbel" and mu.numel():
        logp = torch.where(keep, logp, -INF)
        total = torch.logsumexp(logp, -1, keepdim=True)
        logp = logp - torch.where(torch.isfinite(total), total, 0.0)
    logp = torch.where(keep, logp, -INF)
    out = logp if log else torch.exp(logp)
    out = out.movedim(-1, dim)
    return (out.reshape(()) if scalar else out).to(logits.dtype)


def perturb_argmax_sample(
    logits: Tensor,
    dim: int = -1,
    *,
    noise: str = "normal",
    temperature: float | Tensor = 1.0,
    mask: Tensor | None = None,
    sample_shape: tuple[int, ...] = (),
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Sample class indices :math:`\arg\max_i (x_i/\tau + \varepsilon_i)` with i.i.d. noise.

    The indices follow :func:`perturb_argmax_probs` (with ``noise="gumbel"``, the Gumbel-max trick:
    :math:`\mathrm{softmax}(x/\tau)`). Noise is drawn by inverse CDF from uniforms, so a
    ``generator`` makes the draw reproducible.

    Args:
        logits: scores of any shape.
        dim: the class dimension (default ``-1``).
        noise: ``"normal"`` (default), ``"gumbel"`` or ``"logistic"``.
        temperature: :math:`\tau > 0`.
        mask: bool tensor broadcastable to ``logits``; ``True`` keeps a class (masked and ``-inf``
            classes are never drawn; a row with none kept gives -1).
        sample_shape: leading shape of independent draws.
        generator: a :class:`torch.Generator` for the uniforms.

    Returns:
        A ``long`` tensor of shape ``sample_shape + logits.shape`` without ``dim``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> draws = perturb_argmax_sample(torch.tensor([0.0, 3.0]), sample_shape=(1000,), generator=g)
        >>> draws.shape, round(draws.float().mean().item(), 1)
        (torch.Size([1000]), 1.0)

    Reference: J. Su, kexue.fm/archives/9085.
    """
    _checks.check_floating(logits, "logits")
    dim = _checks.check_dim(logits, dim, "dim")
    _checks.check_one_of(noise, "noise", NOISES)
    _checks.check_positive(temperature, "temperature")
    if mask is not None:
        _checks.check_mask(mask, logits)
    shape = tuple(sample_shape)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
        raise ValueError(f"sample_shape: expected a tuple of non-negative ints, got {sample_shape!r}")
    work = torch.float32 if logits.dtype in _LOW_PRECISION else logits.dtype
    x = logits.detach().to(work)
    scalar = x.dim() == 0
    if scalar:
        x, mask = x.reshape(1), None if mask is None else mask.reshape(1)
    mu = apply_temperature(x, temperature.detach() if isinstance(temperature, Tensor) else temperature, mask)
    mu = mu.movedim(dim, -1)
    full = shape + tuple(mu.shape)
    tiny = torch.finfo(work).tiny
    u = torch.rand(full, generator=generator, dtype=work, device=mu.device).clamp_(
        tiny, 1.0 - torch.finfo(work).eps
    )
    scores = mu + _quantile(u, noise)
    index = scores.argmax(-1)
    dead = (mu == -INF).all(-1)
    return torch.where(dead, -1, index)
