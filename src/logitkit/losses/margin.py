r"""AM-Softmax (CosFace) and the "simpler A-Softmax" on cosine logits, plus a cosine head.

Classification ≠ ranking: a point near a decision boundary can be closer to another class than to
far members of its own. With L2-normalised features :math:`z` and class vectors :math:`c_i` (no
bias), the logits are cosines :math:`\cos\theta_i`, and a margin on the target makes the classes
compact enough for retrieval by cosine:

.. math::

    \mathcal L = -\log \frac{e^{s\,\psi(\theta_t)}}
    {e^{s\,\psi(\theta_t)} + \sum_{i \ne t} e^{s \cos\theta_i}},
    \qquad
    \psi(\theta) = \begin{cases}
        \cos\theta - m & \text{AM-Softmax (additive margin)} \\
        \min(\cos m\theta, \cos\theta) & \text{simpler A-Softmax (post 5743), } m = 4
    \end{cases}

Any :math:`\psi(\theta_t) < \cos\theta_t` is a margin; the scale :math:`s` (default 30) lets
:math:`p_t` approach 1, since cosines live in :math:`[-1, 1]`. :math:`\cos m\theta` is the
Chebyshev polynomial :math:`T_m(\cos\theta)` (:math:`T_4(c) = 8c^4 - 8c^2 + 1`), so no
:math:`\arccos` (and no NaN at :math:`|\cos| = 1`) is needed; taking the minimum with
:math:`\cos\theta` replaces A-Softmax's piecewise definition.

The losses are functional on cosines (they own no weights): compute them with
:class:`CosineClassifier` (an explicit head to add to the optimizer) or any other cosine
similarity. Implementation: cross-entropy on the margin-adjusted scaled cosines, through the fused
kernel of :func:`~logitkit.functional.cross_entropy` (no sparse "remove the target term" trick,
whose :math:`\log(1 - e^a)` cancels in float32).

Reference: F. Wang et al., "Additive Margin Softmax for Face Verification" (arXiv 1801.05599);
H. Wang et al., "CosFace" (arXiv 1801.09414); J. Su, "基于GRU和AM-Softmax的句子相似度模型"
(kexue.fm/archives/5743, 2018), code bojone/margin-softmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from logitkit import _checks, _reduce
from logitkit.losses._base import Loss
from logitkit.losses._softmax_fused import class_term_loss
from logitkit.losses.cross_entropy import compute_dtype

__all__ = [
    "AMSoftmaxLoss",
    "CosineClassifier",
    "SimplerASoftmaxLoss",
    "am_softmax_loss",
    "simpler_a_softmax_loss",
]


def _check_cosines(input: Tensor) -> None:
    """Cosines in [-1, 1], up to rounding of the input dtype."""
    if not _checks.validate_args_enabled() or input.numel() == 0:
        return
    lo, hi = (v.item() for v in torch.aminmax(input.detach()))
    tol = max(1e-3, 2 * torch.finfo(input.dtype).eps)
    if math.isnan(lo) or math.isnan(hi) or lo < -1 - tol or hi > 1 + tol:
        raise ValueError(
            f"input: expected cosine similarities in [-1, 1], got values in [{lo:g}, {hi:g}] "
            "(normalise features and class weights, e.g. with CosineClassifier)"
        )


def _margin_cross_entropy(
    input: Tensor,
    target: Tensor,
    psi,
    *,
    scale: float,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> Tensor:
    r"""Cross-entropy of ``scale * cos`` with the target cosine replaced by ``psi(cos_t)``;
    ``psi(c)`` returns :math:`(\psi(c) - c, \psi'(c))`, the slope None when it is 1."""
    _checks.check_floating(input, "input")
    _checks.check_tensor(target, "target")
    _checks.check_number(scale, "scale", low=0.0, low_open=True)
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    tgt = _reduce.class_target(input, target, ignore_index=ignore_index)
    if tgt.index is None:
        raise TypeError(f"target: margin losses expect integer class indices, got dtype {target.dtype}")
    assert tgt.valid is not None
    _check_cosines(input)
    if weight is not None:
        _checks.check_class_weight(weight, tgt.num_classes)
    _checks.check_label_smoothing(label_smoothing)
    _checks.check_reduction(reduction)
    cd = compute_dtype(input.dtype)
    w = None if weight is None else weight.to(cd)
    cos_t = input.detach().gather(1, tgt.index.unsqueeze(1)).squeeze(1).to(cd)
    shift, slope = psi(cos_t)
    shift = torch.where(tgt.valid, shift, 0.0)
    slope = None if slope is None else torch.where(tgt.valid, slope, 1.0)
    # Cross-entropy of the scaled adjusted cosines in one fused pass: the target shift is added
    # inside each block (no copy of the logits) and psi' scales the target's gradient.
    per_sample = class_term_loss(
        input,
        tgt,
        kind="nll",
        weight=w,
        label_smoothing=label_smoothing,
        temperature=1.0 / scale,
        shift=shift,
        slope=slope,
    )
    denominator = _reduce.mean_denominator(tgt, w, cd) if reduction == "mean" else None
    out = _reduce.reduce_loss(per_sample, reduction, denominator)
    if unbatched and reduction == "none":
        out = out.squeeze(0)
    return out.to(input.dtype)


def am_softmax_loss(
    input: Tensor,
    target: Tensor,
    *,
    margin: float = 0.35,
    scale: float = 30.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""AM-Softmax (CosFace) on cosine logits: cross-entropy of :math:`s(\cos\theta - m\,\mathbf 1_t)`.

    .. math::

        \ell_n = -\log \frac{e^{s(\cos\theta_{n,t} - m)}}
        {e^{s(\cos\theta_{n,t} - m)} + \sum_{i \ne t} e^{s\cos\theta_{n,i}}},
        \qquad \frac{\partial \ell_n}{\partial \cos\theta_{n,i}} = s\,(p_{n,i} - [i = t]),

    with :math:`p` the softmax of the adjusted, scaled cosines. ``margin=0, scale=1`` is
    cross-entropy on the cosines. Targets are class indices; ``weight``, ``ignore_index``,
    ``reduction`` and ``label_smoothing`` act as in :func:`torch.nn.functional.cross_entropy` on the
    adjusted logits.

    Args:
        input: cosine similarities ``(N, C)`` (or ``(N, C, d1, ...)``) in :math:`[-1, 1]`, e.g.
            from :class:`CosineClassifier`.
        target: class indices ``(N, d1, ...)``.
        margin: additive margin :math:`m \ge 0` (paper and post: 0.35).
        scale: :math:`s > 0` (paper and post: 30).

    Example:
        >>> cos = torch.tensor([[0.9, 0.2, -0.1]])
        >>> am_softmax_loss(cos, torch.tensor([0]))
        tensor(2.7538e-05)
        >>> am_softmax_loss(cos, torch.tensor([0]), margin=0.0, scale=1.0)  # CE on the cosines
        tensor(0.6230)

    Reference: Wang et al., arXiv 1801.05599; kexue.fm/archives/5743.
    """
    _checks.check_number(margin, "margin", low=0.0)
    return _margin_cross_entropy(
        input,
        target,
        lambda cos_t: (torch.full_like(cos_t, -float(margin)), None),
        scale=scale,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def _chebyshev(c: Tensor, m: int) -> tuple[Tensor, Tensor]:
    r""":math:`T_m(c) = \cos(m \arccos c)` and :math:`T_m'(c) = m\,U_{m-1}(c)` by the recurrences
    :math:`T_{k+1} = 2c\,T_k - T_{k-1}` and :math:`U_{k+1} = 2c\,U_k - U_{k-1}` (:math:`U_0 = 1`,
    :math:`U_1 = 2c`)."""
    t_prev, t = torch.ones_like(c), c
    u_prev, u = torch.zeros_like(c), torch.ones_like(c)  # U_{-1} = 0, U_0 = 1
    for _ in range(m - 1):
        t_prev, t = t, 2.0 * c * t - t_prev
        u_prev, u = u, 2.0 * c * u - u_prev
    return t, m * u


def simpler_a_softmax_loss(
    input: Tensor,
    target: Tensor,
    *,
    m: int = 4,
    scale: float = 30.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""The post's "simpler A-Softmax": the target cosine replaced by :math:`\min(\cos m\theta, \cos\theta)`.

    .. math::

        \psi(\theta_t) = \min\big(T_m(\cos\theta_t), \cos\theta_t\big)
        = \cos\theta_t - \mathrm{relu}\big(\cos\theta_t - T_m(\cos\theta_t)\big),
        \qquad T_4(c) = 8c^4 - 8c^2 + 1,

    then cross-entropy of the scaled adjusted cosines, as in :func:`am_softmax_loss`. There is no
    additive margin; :math:`\psi = \cos m\theta` wherever :math:`\cos m\theta < \cos\theta`.
    ``m=1`` is the normalised softmax (no margin).

    Args:
        input: cosine similarities ``(N, C, ...)`` in :math:`[-1, 1]`.
        target: class indices.
        m: angular multiplier, an integer :math:`\ge 1` (post: 4).
        scale: :math:`s > 0` (post: 30).

    Example:
        >>> cos = torch.tensor([[0.95, 0.2, -0.1]])  # cos 4θ = 0.2962
        >>> simpler_a_softmax_loss(cos, torch.tensor([0]))
        tensor(0.0545)

    Reference: kexue.fm/archives/5743; code bojone/margin-softmax.
    """
    _checks.check_number(m, "m", low=1, integer=True)

    def psi(cos_t: Tensor) -> tuple[Tensor, Tensor]:
        # psi = min(T_m(c), c): shift T_m(c) - c where T_m(c) < c, slope T_m'(c) there, else 1
        t, dt = _chebyshev(cos_t, int(m))
        below = t < cos_t
        return torch.where(below, t - cos_t, 0.0), torch.where(below, dt, 1.0)

    return _margin_cross_entropy(
        input,
        target,
        psi,
        scale=scale,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


class AMSoftmaxLoss(Loss):
    """Module form of :func:`am_softmax_loss` (``weight`` is a buffer; no class weights of its
    own: pair it with :class:`CosineClassifier`)."""

    def __init__(
        self,
        *,
        margin: float = 0.35,
        scale: float = 30.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_number(margin, "margin", low=0.0)
        _checks.check_number(scale, "scale", low=0.0, low_open=True)
        _checks.check_label_smoothing(label_smoothing)
        self.margin = margin
        self.scale = scale
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return am_softmax_loss(
            input,
            target,
            margin=self.margin,
            scale=self.scale,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class SimplerASoftmaxLoss(Loss):
    """Module form of :func:`simpler_a_softmax_loss` (``weight`` is a buffer)."""

    def __init__(
        self,
        *,
        m: int = 4,
        scale: float = 30.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_number(m, "m", low=1, integer=True)
        _checks.check_number(scale, "scale", low=0.0, low_open=True)
        _checks.check_label_smoothing(label_smoothing)
        self.m = m
        self.scale = scale
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return simpler_a_softmax_loss(
            input,
            target,
            m=self.m,
            scale=self.scale,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class CosineClassifier(nn.Module):
    r"""Bias-free cosine head: :math:`\cos\theta_{n,i} = \hat z_n \cdot \hat c_i`, unit vectors.

    Holds the class vectors as a trainable ``weight`` of shape ``(num_classes, in_features)`` (as
    :class:`torch.nn.Linear`), so **add it to the optimizer** with the encoder. Features and weights
    are normalised in ``forward`` (a Keras ``unit_norm`` constraint instead projects after each
    update, which differs at step 0 only). The normalisation and the product run in float32 (or
    float64 for float64 inputs) even under autocast, and the cosines are returned in that dtype:
    half-precision class weights go NaN with Adam or lose accuracy (pytorch-metric-learning #209,
    #309).

    Input ``(*, in_features)``, output ``(*, num_classes)`` cosines in :math:`[-1, 1]`, for
    :func:`am_softmax_loss` (class dim last: for ``(N, T, C)`` sequences move it to dim 1).

    Example:
        >>> head = CosineClassifier(4, 3)
        >>> with torch.no_grad():
        ...     _ = head.weight.copy_(torch.eye(3, 4))
        >>> head(torch.tensor([[2.0, 0.0, 0.0, 0.0]])).detach()
        tensor([[1., 0., 0.]])

    Reference: kexue.fm/archives/5743; Wang et al., arXiv 1801.05599.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        eps: float = 1e-12,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _checks.check_number(in_features, "in_features", low=1, integer=True)
        _checks.check_number(num_classes, "num_classes", low=1, integer=True)
        _checks.check_number(eps, "eps", low=0.0, low_open=True)
        self.in_features = in_features
        self.num_classes = num_classes
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(num_classes, in_features, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Directions uniform on the sphere; the norm is irrelevant after normalisation.
        nn.init.normal_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        _checks.check_floating(input, "input")
        if input.shape[-1] != self.in_features:
            raise ValueError(
                f"input: expected a last dimension of in_features={self.in_features}, "
                f"got shape {tuple(input.shape)}"
            )
        dtype = torch.promote_types(torch.promote_types(input.dtype, self.weight.dtype), torch.float32)
        with torch.autocast(device_type=input.device.type, enabled=False):
            features = F.normalize(input.to(dtype), dim=-1, eps=self.eps)
            classes = F.normalize(self.weight.to(dtype), dim=-1, eps=self.eps)
            return F.linear(features, classes)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"
