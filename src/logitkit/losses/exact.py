r"""EXACT: train the expected accuracy of a Gaussian-perturbed arg-max.

.. math::

    p(y \mid x) = P\Big(\arg\max_i \Big(\frac{\mu_i(x)}{\sigma} + \varepsilon_i\Big) = y\Big),
    \qquad \varepsilon_i \sim \mathcal N(0, 1) \text{ i.i.d.},
    \qquad \mathcal L = 1 - \mathbb E_{(x, y)}\, p(y \mid x) .

The probability is a one-dimensional integral,


.. math::

    p_y = \int \varphi(\varepsilon) \prod_{i \ne y}
    \Phi\Big(\frac{\mu_y - \mu_i}{\sigma} + \varepsilon\Big)\,d\varepsilon

(equivalently the positive-orthant probability of a :math:`(C-1)`-dimensional Gaussian with
covariance :math:`I + \mathbf 1\mathbf 1^\top`). It is computed deterministically: exactly for two
classes, :math:`\Phi\big((\mu_y - \mu_o)/(\sigma\sqrt2)\big)`, and for more by Gauss–Hermite
quadrature centred on each row's integrand (a few Newton steps find its peak), in log space, with
an analytic gradient. (The official code uses 16 Genz quasi-Monte-Carlo
samples.) Replacing the normal noise by Gumbel noise gives exactly the softmax: EXACT is
"perturb-and-argmax" with another noise, which is the post's critique.

References: I. Karpukhin, S. Dereka, S. Kolesnikov, "EXACT: How to Train Your Accuracy"
(arXiv 2205.09615), code tinkoff-ai/exact; J. Su, "如何训练你的准确率？" (kexue.fm/archives/9098,
2022) and "从重参数的角度看离散概率分布的构建" (kexue.fm/archives/9085, 2022).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from logitkit import _blocks, _checks, _reduce
from logitkit.losses._base import Loss
from logitkit.losses.cross_entropy import compute_dtype
from logitkit.losses.smooth_metrics import _check_log_reduction, _neg_log_mean
from logitkit.ops.softmax import apply_temperature

__all__ = ["ExactLoss", "exact_loss"]

_QUADRATURES = ("hermite", "midpoint")
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


_RULES: dict[tuple[str, int], tuple[Tensor, Tensor]] = {}
# |score differences| beyond this are saturated: probabilities are exactly 0 or 1 there.
_BIG = 1e6
_NEWTON_STEPS = 6
_MAX_HERMITE_NODES = 256  # numpy's hermgauss loses its weights to overflow beyond ~350


@torch.compiler.assume_constant_result
def _quadrature_rule(quadrature: str, nodes: int) -> tuple[Tensor, Tensor]:
    r"""Nodes and log-weights (float64, CPU), cached; marked constant for ``torch.compile``.

    ``"hermite"``: Gauss–Hermite :math:`(x_k, \log w_k)` for :math:`\int e^{-x^2} f(x)\,dx`;
    ``"midpoint"``: :math:`(\varepsilon_k, -\log K)` with :math:`\varepsilon_k = \Phi^{-1}((k - \tfrac12)/K)`,
    a rule for :math:`\mathbb E f(\varepsilon)` (operators.md §6.3).
    """
    key = (quadrature, nodes)
    if key not in _RULES:
        if quadrature == "hermite":
            x, w = np.polynomial.hermite.hermgauss(nodes)
            with np.errstate(divide="ignore"):  # weights of far nodes may underflow: log 0 = -inf
                rule = (x, np.log(w))
            nodes_t, log_w = (torch.tensor(v, dtype=torch.float64) for v in rule)
        else:
            t = (torch.arange(nodes, dtype=torch.float64) + 0.5) / nodes
            nodes_t, log_w = (
                torch.special.ndtri(t),
                torch.full((nodes,), -math.log(nodes), dtype=torch.float64),
            )
        _RULES[key] = (nodes_t, log_w)
    return _RULES[key]


def _mills(a: Tensor, log_cdf: Tensor) -> Tensor:
    r""":math:`\varphi(a) / \Phi(a)` from :math:`\log\Phi(a)` (finite for every finite ``a``)."""
    return torch.exp(-0.5 * a * a - _LOG_SQRT_2PI - log_cdf)


def _adaptive_rule(d: Tensor, x: Tensor, log_w: Tensor) -> tuple[Tensor, Tensor]:
    r"""Per-row nodes and log-weights of Gauss–Hermite centred on the integrand's peak.

    The log-integrand :math:`h(\varepsilon) = -\varepsilon^2/2 + \sum_c \log\Phi(d_c + \varepsilon)`
    is concave; a few Newton steps find its mode :math:`\mu` and curvature, :math:`s^2 = -1/h''(\mu)`,
    and with :math:`\varepsilon = \mu + \sqrt2 s x`,
    :math:`\int \varphi\prod\Phi\,d\varepsilon = \sqrt2 s \int e^{-x^2}\,[e^{x^2} \varphi\prod\Phi]\,dx`.
    The integral does not depend on :math:`(\mu, s)`; centring only makes few nodes accurate when
    many classes sharpen the integrand (an uncentred rule of 32 nodes is off by ~3e-4 at 1000
    classes, the centred one by ~1e-11).
    """
    mu = torch.zeros(d.shape[0], 1, dtype=d.dtype, device=d.device)
    curvature = torch.full_like(mu, -1.0)
    for _ in range(_NEWTON_STEPS):
        a = d + mu
        m = _mills(a, torch.special.log_ndtr(a))
        slope = m.sum(1, keepdim=True) - mu
        # h'' = -1 - sum m (a + m) <= -1; clamped against float32 cancellation in a + m
        curvature = (-1.0 - (m * (a + m)).sum(1, keepdim=True)).clamp(max=-1.0)
        mu = mu - slope / curvature
    scale = math.sqrt(2.0) * torch.rsqrt(-curvature)
    eps = mu + scale * x
    return eps, log_w + x * x + torch.log(scale) - 0.5 * eps * eps - _LOG_SQRT_2PI


class _NormalOrthantLogProb(torch.autograd.Function):
    r""":math:`\log \sum_k \omega_k \prod_c \Phi(d_c + \varepsilon_k)` per row of ``d`` ``(M, C)``.

    ``nodes``, ``log_w``: a rule for :math:`\mathbb E f(\varepsilon)` (``adaptive=False``) or the
    Gauss–Hermite rule, centred per row by :func:`_adaptive_rule` (``adaptive=True``). Walks the
    rows in cache-sized blocks (the ``(rows, C, K)`` grid is never materialised at full size) and
    writes the analytic gradient for the rule's (constant) nodes,
    :math:`\partial/\partial d_c = \sum_k r_k\, \varphi(a_{ck}) / \Phi(a_{ck})` with
    :math:`a_{ck} = d_c + \varepsilon_k` and
    :math:`r = \mathrm{softmax}_k\big(\log\omega_k + \sum_c \log\Phi(a_{ck})\big)`.
    """

    @staticmethod
    def forward(ctx, d: Tensor, nodes: Tensor, log_w: Tensor, adaptive: bool) -> Tensor:  # type: ignore[override]
        m, c = d.shape
        k = nodes.numel()
        log_p = d.new_empty(m)
        grad = torch.empty_like(d) if ctx.needs_input_grad[0] else None
        rows = max(1, _blocks.BLOCK_BYTES // (4 * max(c, 1) * k))
        for r0 in range(0, m, rows):
            block = d[r0 : r0 + rows]
            if adaptive:
                eps, weights = _adaptive_rule(block, nodes, log_w)
                a = block.unsqueeze(2) + eps.unsqueeze(1)
            else:
                a, weights = block.unsqueeze(2) + nodes, log_w
            log_cdf = torch.special.log_ndtr(a)
            s = log_cdf.sum(1) + weights
            lse = torch.logsumexp(s, 1)
            log_p[r0 : r0 + rows] = lse
            if grad is not None:
                r = torch.exp(s - lse.unsqueeze(1))
                mills = a.square_().mul_(-0.5).sub_(_LOG_SQRT_2PI).sub_(log_cdf).exp_()
                grad[r0 : r0 + rows] = torch.bmm(mills, r.unsqueeze(2)).squeeze(2)
        ctx.save_for_backward(grad)
        return log_p

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_out.unsqueeze(1), None, None, None


def _gaussian_argmax_log_prob(z: Tensor, index: Tensor, quadrature: str, nodes: int) -> Tensor:
    r"""Log-probability that class ``index`` is the arg-max of :math:`z + \varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, I)`, for each row of ``z`` ``(M, C)``.

    This is the perturb-and-argmax probability with normal noise (operators.md §6) for the target
    class only:

    .. math::

        p_y = \mathbb E_\varepsilon \prod_{i \ne y} \Phi(z_y - z_i + \varepsilon)
        \approx \sum_k \omega_k \prod_{i \ne y} \Phi(z_y - z_i + \varepsilon_k),

    exactly :math:`\Phi((z_y - z_o)/\sqrt2)` for two classes, otherwise in log space on a
    quadrature rule: ``"hermite"``, Gauss–Hermite centred and scaled on each row's integrand
    (:func:`_adaptive_rule`; exponentially convergent since every factor is smooth with unit width
    in :math:`\varepsilon`), or ``"midpoint"``, the midpoint rule in :math:`t = \Phi(\varepsilon)`
    (operators.md §6.3, error :math:`O(1/K)`). Differentiable in ``z``. ``-inf`` scores are excluded
    classes; a row whose target score is ``-inf`` gives ``-inf``.

    :func:`logitkit.ops.perturb.perturb_argmax_probs` (normal noise, ``temperature=sigma``) gives
    every class's probability by another quadrature (C times this work); the tests check that the
    two agree on the target.
    """
    m, c = z.shape
    if c == 1:
        return torch.zeros(m, dtype=z.dtype, device=z.device)
    col = index.unsqueeze(1)
    z_y = z.gather(1, col)
    lost = torch.isneginf(z_y.squeeze(1))  # target excluded (or the whole row): p = 0
    d = torch.where(lost.unsqueeze(1), 0.0, z_y - z)
    if c == 2:
        other = d.gather(1, 1 - col).squeeze(1)
        log_p = torch.special.log_ndtr(other.clamp(-_BIG, _BIG) / math.sqrt(2.0))
    else:
        d = d.scatter(1, col, _BIG).clamp(-_BIG, _BIG)
        rule, log_w = _quadrature_rule(quadrature, nodes)
        log_p = _NormalOrthantLogProb.apply(d, rule.to(d), log_w.to(d), quadrature == "hermite")
    return torch.where(lost, float("-inf"), log_p)


def _check_nodes(nodes: int, quadrature: str) -> None:
    high = _MAX_HERMITE_NODES if quadrature == "hermite" else 100_000
    _checks.check_number(nodes, f"nodes (quadrature={quadrature!r})", low=1, high=high, integer=True)


def exact_loss(
    input: Tensor,
    target: Tensor,
    *,
    sigma: float | Tensor = 1.0,
    log: bool = False,
    nodes: int = 32,
    quadrature: str = "hermite",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""EXACT: one minus the expected accuracy of the Gaussian-perturbed arg-max.

    .. math::

        \ell_n = 1 - p_n, \qquad
        p_n = P\Big(\arg\max_i \big(x_{n,i} / \sigma + \varepsilon_i\big) = y_n\Big)
            = \int \varphi(\varepsilon) \prod_{i \ne y_n} \Phi\Big(\frac{x_{n,y_n} - x_{n,i}}{\sigma}
              + \varepsilon\Big)\, d\varepsilon,

    with :math:`\varepsilon_i \sim \mathcal N(0, 1)` i.i.d.; ``log=True`` gives
    :math:`-\log\big(\sum_n w_{y_n} p_n / \sum_n w_{y_n}\big)` (the paper's variant, log outside the
    batch mean). Two classes: :math:`p = \Phi\big((x_y - x_o)/(\sigma\sqrt2)\big)` exactly. More
    classes: a deterministic quadrature in log space with an analytic gradient, cost
    :math:`O(N C K)` for :math:`K` = ``nodes``. :math:`\sigma \to 0` gives the hard 0/1 accuracy,
    :math:`\sigma \to \infty` gives :math:`1/C`; shifting all logits changes nothing.

    Softmax is the same construction with Gumbel instead of normal noise (post 6620/9085), which
    is the author's "new bottle, old wine" critique (post 9098, docs/exact.md).

    Args:
        input: logits ``(N, C)`` or ``(N, C, d1, ...)``; ``-inf`` excludes a class.
        target: class indices ``(N, d1, ...)`` (probability targets are not supported).
        sigma: noise scale :math:`\sigma > 0` (float or one-element tensor, may require grad).
        log: the :math:`-\log` variant (``reduction="mean"`` only).
        nodes: quadrature nodes :math:`K` (ignored for two classes; at most 256 for
            ``"hermite"``). The default 32 gives probabilities to about :math:`10^{-8}` from 10 to
            10,000 classes, 16 to about :math:`10^{-5}` (docs/exact.md).
        quadrature: ``"hermite"`` (default: Gauss–Hermite centred on each row's integrand) or
            ``"midpoint"`` (the rule of operators.md §6.3, error :math:`O(1/K)`).
        weight, ignore_index, reduction: cross-entropy semantics (weighted mean over
            :math:`\sum_n w_{y_n}`).

    Example:
        >>> x = torch.tensor([[1.0, 0.3, -0.5, 2.0]])
        >>> 1 - exact_loss(x, torch.tensor([3]), reduction="none")  # P(class 3 wins)
        tensor([0.7007])

    Reference: Karpukhin et al., arXiv 2205.09615; kexue.fm/archives/9098 and 9085.
    """
    _checks.check_floating(input, "input")
    _checks.check_reduction(reduction)
    _check_log_reduction(log, reduction)
    _checks.check_one_of(quadrature, "quadrature", _QUADRATURES)
    _check_nodes(nodes, quadrature)
    _checks.check_positive(sigma, "sigma")
    if isinstance(sigma, Tensor) and sigma.numel() != 1:
        raise ValueError(f"sigma: expected a float or a one-element tensor, got shape {tuple(sigma.shape)}")
    tgt = _reduce.class_target(input, target, ignore_index=ignore_index)
    if tgt.index is None:
        raise TypeError(f"target: exact_loss expects integer class indices, got dtype {target.dtype}")
    assert tgt.valid is not None
    if weight is not None:
        _checks.check_class_weight(weight, tgt.num_classes)
    cd = compute_dtype(input.dtype)
    w = None if weight is None else weight.to(cd)
    sigma = sigma.reshape(()) if isinstance(sigma, Tensor) else float(sigma)
    z = apply_temperature(input.to(cd), sigma)
    rows = z.movedim(1, -1).reshape(-1, tgt.num_classes)
    log_p = _gaussian_argmax_log_prob(rows, tgt.index.reshape(-1), quadrature, int(nodes))
    log_p = log_p.reshape(tgt.index.shape)
    # Rows of all -inf logits (nothing to learn from) and ignored samples count as correct.
    dead = torch.isneginf(input.detach().amax(1))
    log_p = torch.where(dead | ~tgt.valid, 0.0, log_p)
    denominator = _reduce.mean_denominator(tgt, w, cd)
    if log:
        log_w = 0.0 if w is None else torch.log(w)[tgt.index]
        log_acc = torch.where(tgt.valid, log_w + log_p, float("-inf"))
        return _neg_log_mean(log_acc, denominator.log()).to(input.dtype)
    per_sample = -torch.expm1(log_p)
    if w is not None:
        per_sample = per_sample * w[tgt.index]
    return _reduce.reduce_loss(per_sample, reduction, denominator).to(input.dtype)


class ExactLoss(Loss):
    """Module form of :func:`exact_loss` (``weight`` is a buffer; ``sigma`` a fixed float: pass a
    tensor to the function for a learnable one)."""

    def __init__(
        self,
        *,
        sigma: float = 1.0,
        log: bool = False,
        nodes: int = 32,
        quadrature: str = "hermite",
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_positive(sigma, "sigma")
        _check_log_reduction(log, reduction)
        _checks.check_one_of(quadrature, "quadrature", _QUADRATURES)
        _check_nodes(nodes, quadrature)
        self.sigma, self.log, self.nodes, self.quadrature = sigma, log, nodes, quadrature
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return exact_loss(
            input,
            target,
            sigma=self.sigma,
            log=self.log,
            nodes=self.nodes,
            quadrature=self.quadrature,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
