r"""Focal loss: softmax (multi-class, full cross-entropy semantics) and sigmoid (binary / multi-label).

The focal loss down-weights well-classified examples by :math:`(1 - p_t)^\gamma`:
:math:`L = -(1 - p_t)^\gamma \log p_t`; :math:`\gamma = 0` is cross-entropy. The binary form with
:math:`K = \gamma = 1` equals the softened truncated loss of :mod:`logitkit.losses.truncated`.

Numerics. The modulating factor is never formed as ``(1 - p) ** gamma`` with autograd's
``pow`` backward, whose :math:`\gamma (1-p)^{\gamma-1}` is infinite at :math:`p = 1` for
:math:`0 < \gamma < 1` (kornia/kornia#918) and NaN at :math:`\gamma = 0` (optax#1267). The
gradients are derived by hand so that the factor :math:`1 - p` cancels analytically, see
:mod:`logitkit.losses._softmax_terms` and :mod:`logitkit.losses._sigmoid_terms`; they are finite for
every :math:`\gamma \ge 0` and logits up to :math:`\pm 10^4`, and :math:`\gamma = 0` reproduces
cross-entropy / BCE with logits exactly, loss and gradient.

References: T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal Loss for Dense Object
Detection" (ICCV 2017, arXiv:1708.02002); J. Su, "从loss的硬截断、软化到focal loss"
(kexue.fm/archives/4733, 2017); torchvision.ops.sigmoid_focal_loss (semantics of ``alpha``).
"""

from __future__ import annotations

import torch  # noqa: F401 (the doctests use it)
from torch import Tensor

from logitkit import _checks
from logitkit.losses import _sigmoid_terms, _softmax_terms
from logitkit.losses._base import Loss
from logitkit.losses._sigmoid_terms import finish_binary, prepare_binary
from logitkit.losses._softmax_terms import (
    check_class_factor,
    check_unit_scalar,
    class_vector,
    finish_single_label,
    prepare_single_label,
)
from logitkit.losses.cross_entropy import compute_dtype

__all__ = ["FocalLoss", "SigmoidFocalLoss", "focal_loss", "sigmoid_focal_loss"]


# --------------------------------------------------------------------------------------------
# Softmax focal loss
# --------------------------------------------------------------------------------------------


def focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Multi-class (softmax) focal loss with the semantics of :func:`torch.nn.functional.cross_entropy`.

    .. math::

        \ell_n = -\sum_c q_{n,c}\, w_c\, \alpha_c\, (1 - p_{n,c})^\gamma \log p_{n,c},
        \qquad p_n = \mathrm{softmax}(x_n), \quad q = (1-\varepsilon)\, t + \varepsilon / C,

    with :math:`t` the one-hot of an index target or the given probabilities; for an index target
    :math:`\ell_n = -w_y \alpha_y (1 - p_y)^\gamma \log p_y`. :math:`\gamma = 0` (and no ``alpha``)
    is :func:`~logitkit.functional.cross_entropy` exactly, value and gradient.

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``.
        target: class indices ``(N, d1, ...)`` (integer) or class probabilities shaped like
            ``input`` (floating, in [0, 1]).
        gamma: focusing parameter :math:`\gamma \ge 0` (the paper's best: 2).
        alpha: optional per-class balance factors :math:`\alpha_c \in [0, 1]`, shape ``(C,)``.
            Unlike ``weight`` they do not enter the ``'mean'`` divisor (the paper normalises by
            the number of examples).
        weight: per-class weights ``(C,)`` with torch's weighted mean.
        ignore_index: index targets equal to it contribute nothing.
        reduction: ``'mean'`` (divides by :math:`\sum_n w_{y_n}` over non-ignored samples for
            index targets, by the number of samples for probability targets), ``'sum'``,
            ``'none'`` (shape ``(N, d1, ...)``).
        label_smoothing: :math:`\varepsilon \in [0, 1]`; each class's term carries its own
            focal factor :math:`(1 - p_c)^\gamma`.

    Gradients are finite for every :math:`\gamma \ge 0`, including :math:`0 < \gamma < 1` at
    :math:`p \to 1`; an empty or all-ignored batch gives 0 and a row of ``-inf`` logits gives loss
    0 and zero gradient, as in :func:`~logitkit.functional.cross_entropy`.

    Example:
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
        >>> focal_loss(logits, torch.tensor([0, 2]), gamma=2.0)
        tensor(0.4873)
        >>> focal_loss(logits, torch.tensor([0, 2]), gamma=0.0)  # cross-entropy
        tensor(0.8964)

    Reference: Lin et al., "Focal Loss for Dense Object Detection" (2017), eq. (5).
    """
    _checks.check_positive(gamma, "gamma", allow_zero=True)
    input, target, tgt, unbatched = prepare_single_label(
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    check_class_factor(alpha, tgt.num_classes, "alpha")
    cd = compute_dtype(input.dtype)
    per_sample = _softmax_terms.per_sample_loss(
        "focal",
        float(gamma),
        input,
        target,
        tgt,
        cvec=class_vector(weight, alpha, cd),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    return finish_single_label(per_sample, tgt, weight, reduction, unbatched, input.dtype)


class FocalLoss(Loss):
    """Module form of :func:`focal_loss` (``weight`` and ``alpha`` are buffers)."""

    alpha: Tensor | None

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: Tensor | None = None,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_positive(gamma, "gamma", allow_zero=True)
        _checks.check_label_smoothing(label_smoothing)
        if alpha is not None:
            _checks.check_floating(alpha, "alpha")
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.register_buffer("alpha", alpha)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal_loss(
            input,
            target,
            gamma=self.gamma,
            alpha=self.alpha,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


# --------------------------------------------------------------------------------------------
# Sigmoid focal loss
# --------------------------------------------------------------------------------------------


def sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    pos_weight: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary / multi-label focal loss on logits, with torchvision's ``gamma`` / ``alpha`` semantics.

    .. math::

        L = -t\, \alpha\, \beta\, \omega\, (1 - p)^\gamma \log p
            - (1 - t)(1 - \alpha)\, \omega\, p^\gamma \log(1 - p), \qquad p = \sigma(x),

    elementwise, with :math:`\beta` = ``pos_weight`` and :math:`\omega` = ``weight``.
    :math:`\alpha` weighs positives and :math:`1 - \alpha` negatives; ``alpha=None`` drops both
    factors (torchvision's ``alpha=-1``). :math:`\gamma = 0` with ``alpha=None`` is
    :func:`torch.nn.functional.binary_cross_entropy_with_logits` exactly, value and gradient.

    Args:
        input: logits of any shape.
        target: same shape, floating, in [0, 1]. For hard targets the loss equals
            ``torchvision.ops.sigmoid_focal_loss``; soft targets mix the positive and negative
            terms linearly (torchvision instead modulates BCE by :math:`(1 - p_t)^\gamma` with
            :math:`p_t = p t + (1-p)(1-t)`).
        gamma: focusing parameter :math:`\gamma \ge 0`.
        alpha: positive-class balance in [0, 1] (default 0.25, the paper's detector setting), or
            None.
        pos_weight: optional non-negative multiplier of the positive term, broadcast against
            ``input`` (``BCEWithLogitsLoss`` semantics, e.g. one value per class).
        weight: optional non-negative elementwise weight broadcast against ``input``.
        reduction: ``'mean'`` over all elements (as ``BCEWithLogitsLoss``; torchvision's default
            is ``'none'``), ``'sum'`` or ``'none'``.

    Gradients are finite for every :math:`\gamma \ge 0` and logits up to :math:`\pm 10^4`; a
    ``-inf`` logit with target 0 costs 0 with zero gradient.

    Example:
        >>> x = torch.tensor([[3.0, -1.0], [0.5, -4.0]])
        >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> sigmoid_focal_loss(x, t, reduction="none")
        tensor([[2.7321e-05, 1.6994e-02],
                [2.8306e-01, 9.6873e-01]])

    Reference: Lin et al. (2017), eq. (5); torchvision.ops.sigmoid_focal_loss.
    """
    _checks.check_positive(gamma, "gamma", allow_zero=True)
    if alpha is not None:
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha < 0:
            raise ValueError(
                f"alpha: expected a value in [0, 1] or None, got {alpha!r} "
                "(torchvision's alpha=-1 is alpha=None here)"
            )
        alpha = check_unit_scalar(alpha, "alpha")
    prepare_binary(input, target, pos_weight=pos_weight, weight=weight, reduction=reduction)
    out = _sigmoid_terms.elementwise_loss(
        "focal",
        float(gamma),
        input,
        target,
        alpha=alpha,
        pos_weight=pos_weight,
        weight=weight,
        elementwise=reduction == "none",
    )
    return finish_binary(out, reduction, input.numel(), input.dtype)


class SigmoidFocalLoss(Loss):
    """Module form of :func:`sigmoid_focal_loss` (``pos_weight`` and ``weight`` are buffers)."""

    pos_weight: Tensor | None

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | None = 0.25,
        pos_weight: Tensor | None = None,
        weight: Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_positive(gamma, "gamma", allow_zero=True)
        if alpha is not None:
            check_unit_scalar(alpha, "alpha")
        if pos_weight is not None:
            _checks.check_floating(pos_weight, "pos_weight")
        self.gamma = gamma
        self.alpha = alpha
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return sigmoid_focal_loss(
            input,
            target,
            gamma=self.gamma,
            alpha=self.alpha,
            pos_weight=self.pos_weight,
            weight=self.weight,
            reduction=self.reduction,
        )
