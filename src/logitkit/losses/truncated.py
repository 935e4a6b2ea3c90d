r"""The hard-truncated loss and its softened form (softmax and sigmoid).

Hard truncation stops learning from examples that are already right: a positive with
:math:`\sigma(x) > m` (a negative with :math:`\sigma(x) < 1 - m`) contributes nothing. In logit form,
with :math:`\ell_m = \log\frac{m}{1-m} \ge 0`,

.. math::

    L^{\cdot} = -\theta(\ell_m - x) \log\sigma(x) \;(y = 1), \qquad
    -\theta(x + \ell_m) \log\sigma(-x) \;(y = 0),

with :math:`\theta(0) = 1/2`; the gate has no gradient, so the model learns "stop once past
:math:`m`" but not "stay past it", and examples oscillate around the threshold. Softening the gate
at :math:`m = 1/2` with :math:`\theta(x) = \lim_{K\to\infty} \sigma(Kx)` gives the softened loss
:math:`L^{\cdot\cdot} = -\sigma(-Kx) \log\sigma(x)` (:math:`y = 1`), whose weight *is*
differentiated; :math:`K = 1` is the focal loss with :math:`\gamma = 1`.

Multi-class forms, each with the cross-entropy semantics of :mod:`logitkit._reduce` (one term per
class, weighted by the label-smoothed target):

* hard-truncated: :math:`\phi_c = -\theta(m - p_c) \log p_c` — a class's term is dropped once its
  probability exceeds :math:`m`; for two classes this is the binary rule, and :math:`m = 1` is
  cross-entropy;
* softened: :math:`\phi_c = -\mathrm{softmax}(-K x)_c \log p_c`, the post's form (the :math:`t`-th
  component of :math:`\mathrm{softmax}(-Kx)`; the only reading that reduces to the binary loss for
  two classes). Masked (``-inf``) classes are left out of both softmaxes.

References: J. Su, "从loss的硬截断、软化到focal loss" (kexue.fm/archives/4733, 2017) and
"文本情感分类（四）：更好的损失函数" (kexue.fm/archives/4293, 2017, the threshold :math:`m`);
Lin et al., "Focal Loss for Dense Object Detection" (2017).
"""

from __future__ import annotations

import math

import torch  # noqa: F401 (the doctests use it)
from torch import Tensor

from logitkit import _checks
from logitkit.losses import _sigmoid_terms, _softmax_terms
from logitkit.losses._base import Loss
from logitkit.losses._sigmoid_terms import finish_binary, prepare_binary
from logitkit.losses._softmax_terms import (
    check_unit_scalar,
    class_vector,
    finish_single_label,
    prepare_single_label,
)
from logitkit.losses.cross_entropy import compute_dtype

__all__ = [
    "SoftenedBinaryCrossEntropyLoss",
    "SoftenedCrossEntropyLoss",
    "TruncatedBinaryCrossEntropyLoss",
    "TruncatedCrossEntropyLoss",
    "softened_binary_cross_entropy",
    "softened_cross_entropy",
    "truncated_binary_cross_entropy",
    "truncated_cross_entropy",
]


def _check_softmax_margin(margin: float) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise TypeError(f"margin: expected a float in (0, 1], got {margin!r}")
    if not (math.isfinite(margin) and 0 < margin <= 1):
        raise ValueError(f"margin: expected a probability threshold in (0, 1], got {margin!r}")
    return float(margin)


def _logit_margin(margin: float) -> float:
    r""":math:`\ell_m = \log\frac{m}{1-m}` for :math:`m \in [1/2, 1]` (infinite at 1)."""
    m = check_unit_scalar(margin, "margin", low=0.5, high=1.0)
    return math.inf if m == 1 else math.log(m) - math.log1p(-m)


def _single_label(kind, param, input, target, weight, ignore_index, reduction, label_smoothing):
    input, target, tgt, unbatched = prepare_single_label(
        input,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    per_sample = _softmax_terms.per_sample_loss(
        kind,
        param,
        input,
        target,
        tgt,
        cvec=class_vector(weight, None, compute_dtype(input.dtype)),
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    return finish_single_label(per_sample, tgt, weight, reduction, unbatched, input.dtype)


def truncated_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    margin: float = 0.5,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Hard-truncated softmax cross-entropy: terms of classes already above ``margin`` are dropped.

    .. math::

        \ell_n = -\sum_c q_{n,c}\, w_c\, \theta(m - p_{n,c}) \log p_{n,c},
        \qquad \theta(t) = 1, \tfrac12, 0 \text{ for } t >, =, < 0,

    the gate not differentiated; for an index target
    :math:`\ell_n = -w_y\, \theta(m - p_y) \log p_y`, i.e. the per-sample cross-entropy set to 0
    once it falls below :math:`-\log m`. :math:`m = 1` is cross-entropy.

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``.
        target: class indices or class probabilities (as :func:`~logitkit.functional.cross_entropy`).
        margin: probability threshold :math:`m \in (0, 1]` (the post's :math:`m`; 1/2 in post
            4733, 0.6 in post 4293). Below 1/2 a dropped class need not be the arg-max.
        weight, ignore_index, reduction, label_smoothing: as in
            :func:`~logitkit.functional.cross_entropy` (torch's weighted mean).

    Example:
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
        >>> truncated_cross_entropy(logits, torch.tensor([0, 2]), reduction="none")
        tensor([0.0000, 1.5514])

    Reference: J. Su, kexue.fm/archives/4733 and /4293 (2017).
    """
    m = _check_softmax_margin(margin)
    return _single_label(
        "truncated", math.log(m), input, target, weight, ignore_index, reduction, label_smoothing
    )


def softened_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    sharpness: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Softened truncated softmax cross-entropy: the gate replaced by a differentiable weight.

    .. math::

        \ell_n = -\sum_c q_{n,c}\, w_c\, \mathrm{softmax}(-K x_n)_c \log p_{n,c},

    the weight differentiated. Two classes give the binary softened loss on :math:`x_1 - x_0`;
    :math:`K = 1` with two classes is the focal loss with :math:`\gamma = 1`. For many classes the
    weight of a fresh model is near :math:`1/C` for every class (a reader's objection; the post
    answers that adaptive optimisers do not mind).

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``; ``-inf`` entries are
            excluded from both softmaxes.
        target: class indices or class probabilities.
        sharpness: :math:`K > 0` (the post: "between 1 and 2 is about enough").
        weight, ignore_index, reduction, label_smoothing: as in
            :func:`~logitkit.functional.cross_entropy`.

    Example:
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
        >>> softened_cross_entropy(logits, torch.tensor([0, 2]), reduction="none")
        tensor([0.0094, 0.6552])

    Reference: J. Su, kexue.fm/archives/4733 (2017), the multi-class softened loss.
    """
    _checks.check_positive(sharpness, "sharpness")
    return _single_label(
        "softened", float(sharpness), input, target, weight, ignore_index, reduction, label_smoothing
    )


def truncated_binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    margin: float = 0.5,
    pos_weight: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Hard-truncated binary cross-entropy on logits (binary / multi-label).

    .. math::

        L = -t\, \beta\, \omega\, \theta(\ell_m - x) \log\sigma(x)
            - (1 - t)\, \omega\, \theta(x + \ell_m) \log\sigma(-x),
        \qquad \ell_m = \log\frac{m}{1-m},

    elementwise; positives stop contributing once :math:`\sigma(x) > m`, negatives once
    :math:`\sigma(x) < 1 - m`; the gate is not differentiated and is 1/2 at the threshold.
    :math:`m = 1` is :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    Args:
        input: logits of any shape.
        target: same shape, floating, in [0, 1] (soft targets mix the two terms linearly).
        margin: :math:`m \in [1/2, 1]`.
        pos_weight, weight, reduction: as in ``BCEWithLogitsLoss`` (``'mean'`` over elements).

    Example:
        >>> x = torch.tensor([3.0, -1.0, 0.0, 0.2])
        >>> t = torch.tensor([1.0, 1.0, 1.0, 0.0])
        >>> truncated_binary_cross_entropy(x, t, reduction="none")
        tensor([0.0000, 1.3133, 0.3466, 0.7981])

    Reference: J. Su, kexue.fm/archives/4293 and /4733 (2017).
    """
    ell = _logit_margin(margin)
    prepare_binary(input, target, pos_weight=pos_weight, weight=weight, reduction=reduction)
    out = _sigmoid_terms.elementwise_loss(
        "truncated",
        0.0,
        input,
        target,
        alpha=None,
        pos_weight=pos_weight,
        weight=weight,
        margin=ell,
        elementwise=reduction == "none",
    )
    return finish_binary(out, reduction, input.numel(), input.dtype)


def softened_binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    sharpness: float = 1.0,
    margin: float = 0.5,
    pos_weight: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Softened truncated binary cross-entropy on logits: the gate :math:`\theta` becomes
    :math:`\sigma(K\,\cdot)`, differentiated.

    .. math::

        L = -t\, \beta\, \omega\, \sigma(K(\ell_m - x)) \log\sigma(x)
            - (1 - t)\, \omega\, \sigma(K(x + \ell_m)) \log\sigma(-x),

    elementwise. At :math:`m = 1/2` (:math:`\ell_m = 0`) this is the post's
    :math:`-\sigma(-Kx)\log\sigma(x)`; :math:`K = 1` there equals
    :func:`~logitkit.functional.sigmoid_focal_loss` with :math:`\gamma = 1` and ``alpha=None``;
    :math:`K \to \infty` approaches the hard-truncated value. Softening a margin
    :math:`m > 1/2` the same way is an extension, not in the posts.

    Args:
        input: logits of any shape.
        target: same shape, floating, in [0, 1].
        sharpness: :math:`K > 0`.
        margin: :math:`m \in [1/2, 1]`.
        pos_weight, weight, reduction: as in ``BCEWithLogitsLoss``.

    Example:
        >>> x = torch.tensor([3.0, -1.0, 0.0, 0.2])
        >>> t = torch.tensor([1.0, 1.0, 1.0, 0.0])
        >>> softened_binary_cross_entropy(x, t, reduction="none")
        tensor([0.0023, 0.9601, 0.3466, 0.4388])

    Reference: J. Su, kexue.fm/archives/4733 (2017).
    """
    _checks.check_positive(sharpness, "sharpness")
    ell = _logit_margin(margin)
    prepare_binary(input, target, pos_weight=pos_weight, weight=weight, reduction=reduction)
    out = _sigmoid_terms.elementwise_loss(
        "softened",
        float(sharpness),
        input,
        target,
        alpha=None,
        pos_weight=pos_weight,
        weight=weight,
        margin=ell,
        elementwise=reduction == "none",
    )
    return finish_binary(out, reduction, input.numel(), input.dtype)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class TruncatedCrossEntropyLoss(Loss):
    """Module form of :func:`truncated_cross_entropy` (``weight`` is a buffer)."""

    def __init__(
        self,
        *,
        margin: float = 0.5,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _check_softmax_margin(margin)
        _checks.check_label_smoothing(label_smoothing)
        self.margin = margin
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return truncated_cross_entropy(
            input,
            target,
            margin=self.margin,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class SoftenedCrossEntropyLoss(Loss):
    """Module form of :func:`softened_cross_entropy` (``weight`` is a buffer)."""

    def __init__(
        self,
        *,
        sharpness: float = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_positive(sharpness, "sharpness")
        _checks.check_label_smoothing(label_smoothing)
        self.sharpness = sharpness
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return softened_cross_entropy(
            input,
            target,
            sharpness=self.sharpness,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class _BinaryLoss(Loss):
    pos_weight: Tensor | None

    def __init__(self, *, pos_weight: Tensor | None, weight: Tensor | None, reduction: str) -> None:
        super().__init__(weight=weight, reduction=reduction)
        if pos_weight is not None:
            _checks.check_floating(pos_weight, "pos_weight")
        self.register_buffer("pos_weight", pos_weight)


class TruncatedBinaryCrossEntropyLoss(_BinaryLoss):
    """Module form of :func:`truncated_binary_cross_entropy` (``pos_weight``, ``weight`` buffers)."""

    def __init__(
        self,
        *,
        margin: float = 0.5,
        pos_weight: Tensor | None = None,
        weight: Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(pos_weight=pos_weight, weight=weight, reduction=reduction)
        _logit_margin(margin)
        self.margin = margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return truncated_binary_cross_entropy(
            input,
            target,
            margin=self.margin,
            pos_weight=self.pos_weight,
            weight=self.weight,
            reduction=self.reduction,
        )


class SoftenedBinaryCrossEntropyLoss(_BinaryLoss):
    """Module form of :func:`softened_binary_cross_entropy` (``pos_weight``, ``weight`` buffers)."""

    def __init__(
        self,
        *,
        sharpness: float = 1.0,
        margin: float = 0.5,
        pos_weight: Tensor | None = None,
        weight: Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(pos_weight=pos_weight, weight=weight, reduction=reduction)
        _checks.check_positive(sharpness, "sharpness")
        _logit_margin(margin)
        self.sharpness = sharpness
        self.margin = margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return softened_binary_cross_entropy(
            input,
            target,
            sharpness=self.sharpness,
            margin=self.margin,
            pos_weight=self.pos_weight,
            weight=self.weight,
            reduction=self.reduction,
        )
