r"""ZLPR, the multi-label "softmax + cross-entropy": dense hard and soft labels, sparse indices, decoding.

For scores :math:`s` of one sample, positive classes :math:`\Omega_{pos}` and negative classes
:math:`\Omega_{neg}`,

.. math::

    \ell(s) = \log\Big(1 + \sum_{i \in \Omega_{neg}} e^{s_i}\Big)
            + \log\Big(1 + \sum_{j \in \Omega_{pos}} e^{-s_j}\Big),

the pairwise "every positive above every negative" loss with a threshold class fixed at 0. It
generalises softmax cross-entropy to several positive labels, needs no class weights or threshold
tuning under label imbalance, and decodes with the label-independent rule :math:`s_i > 0`. Compared
with sigmoid + BCE, :math:`\sum_j \mathrm{BCE}_j = \log\prod_{neg}(1 + e^{s_i}) + \log\prod_{pos}(1 +
e^{-s_j})`, it keeps only the first-order terms of the two products; the dropped terms are positive,
so ZLPR :math:`\le` summed BCE.

Soft labels :math:`t \in [0, 1]` (label smoothing, distillation) give

.. math::

    \ell(s, t) = \log\Big(1 + \sum_i t_i e^{-s_i}\Big) + \log\Big(1 + \sum_i (1 - t_i) e^{s_i}\Big),

exactly the hard loss on :math:`t \in \{0, 1\}`, minimised at :math:`s_i = \tfrac12 \log \frac{t_i}{1 -
t_i}`, so :math:`\sigma(2 s_i)` reads as a probability (:func:`zlpr_probs`).

Numerics: masks are ``-inf`` / boolean (never the :math:`10^{12}` of the reference code, which
overflows float16), :math:`\log t` and :math:`\log(1 - t)` are exact at 0 and 1 (no
:math:`\epsilon` clipping bias), and the sparse form never subtracts partition functions (no
bert4keras#436 NaN).

References: J. Su, "将'Softmax+交叉熵'推广到多标签分类问题" (kexue.fm/archives/7359, 2020) and
"多标签'Softmax+交叉熵'的软标签版本" (kexue.fm/archives/9064, 2022); J. Su et al., "ZLPR: A Novel Loss
for Multi-label Classification" (arXiv:2208.02955); bojone/bert4keras (the original Keras code).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from logitkit import _checks, _reduce
from logitkit.losses._base import Loss
from logitkit.losses._zlpr_dense import dense_zlpr, plain_zlpr
from logitkit.losses._zlpr_sparse import clean_positives, plain_sparse_zlpr, sparse_zlpr

__all__ = [
    "SparseZLPRLoss",
    "ZLPRLoss",
    "sparse_zlpr_loss",
    "zlpr_decode",
    "zlpr_loss",
    "zlpr_probs",
]


def _class_dim(input: Tensor, dim: int) -> int:
    if input.dim() == 0:
        raise ValueError("input: expected logits of shape (N, C), (N, C, d1, ...) or (C,), got a scalar")
    if input.dim() == 1:  # one unbatched sample
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim: expected an int, got {dim!r}")
        return 0
    return _checks.check_dim(input, dim)


def _rows(t: Tensor, dim: int) -> Tensor:
    """``(..., C, ...)`` with the class axis at ``dim`` as ``(samples, C)``; a view when ``dim`` is
    the last (contiguous) axis, a copy otherwise."""
    if dim != t.dim() - 1:
        t = t.movedim(dim, -1)
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


def _sample_shape(input: Tensor, dim: int) -> tuple[int, ...]:
    return tuple(size for k, size in enumerate(input.shape) if k != dim)


def _factor(reduction: str, samples: int) -> float:
    """The upstream gradient per sample that ``reduction`` sends back (predicted in forward)."""
    return 1.0 / samples if reduction == "mean" and samples else 1.0


def zlpr_loss(
    input: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    dim: int = 1,
    reduction: str = "mean",
) -> Tensor:
    r"""ZLPR multi-label loss with hard or soft labels.

    .. math::

        \ell_n = \log\Big(1 + \sum_{i \in K_n} t_{n,i}\, e^{-s_{n,i}}\Big)
               + \log\Big(1 + \sum_{i \in K_n} (1 - t_{n,i})\, e^{s_{n,i}}\Big),

    where :math:`K_n` are the kept classes of sample :math:`n` (``mask`` True and
    :math:`s_{n,i} \ne -\infty`). With :math:`t \in \{0, 1\}` this is the hard loss
    :math:`\log(1 + \sum_{neg} e^{s_i}) + \log(1 + \sum_{pos} e^{-s_j})`; a label of exactly 0
    or 1 contributes to one term only (no :math:`\epsilon` clipping).

    Args:
        input: logits (raw scores, no sigmoid) ``(N, C)``, ``(N, C, d1, ...)`` or one unbatched
            sample ``(C,)``; the labels are along ``dim``.
        target: labels shaped like ``input``: floating values in [0, 1] (0/1 for hard labels,
            anything between for soft labels) or a bool multi-hot tensor. A floating target that
            requires grad receives its gradient.
        mask: optional bool tensor broadcastable to ``input``; ``True`` keeps a class, ``False``
            removes it from both sums. ``-inf`` logits are removed too. A sample with nothing kept
            has loss 0 and gradient 0.
        dim: the label dimension (default 1, as the class dim of
            :func:`torch.nn.functional.cross_entropy`); ``-1`` suits ``(..., C)`` layouts such as
            flattened span matrices.
        reduction: ``'mean'`` over samples (every position other than ``dim``), ``'sum'``, or
            ``'none'`` (shape of ``input`` without ``dim``).

    Precision: float16 / bfloat16 inputs are computed in float32 and the loss is returned in the
    input dtype. On CPU in eager mode a fused kernel computes the gradient in the forward pass, in
    cache-sized row blocks (fastest when ``dim`` is the last, contiguous dimension); under
    ``torch.compile``, on other devices and when ``target`` requires grad, the plain log-space
    composition runs (a compiler fuses it).

    Example:
        >>> scores = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
        >>> zlpr_loss(scores, torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
        tensor(0.9040)
        >>> zlpr_loss(scores, torch.tensor([[0.9, 0.2, 0.6, 0.0]]))  # soft labels
        tensor(1.7166)

    Reference: J. Su, kexue.fm/archives/7359 (hard) and 9064 (soft labels); arXiv:2208.02955.
    """
    _checks.check_floating(input, "input")
    _checks.check_tensor(target, "target")
    _checks.check_reduction(reduction)
    if not (target.is_floating_point() or target.dtype == torch.bool):
        raise TypeError(
            "target: expected floating labels in [0, 1] or a bool multi-hot tensor shaped like "
            f"input, got dtype {target.dtype} (for label indices use sparse_zlpr_loss)"
        )
    _checks.check_same_shape(input, target, "input", "target")
    dim = _class_dim(input, dim)
    keep = None
    if mask is not None:
        _checks.check_mask(mask, input)
        keep = _rows(mask.expand(input.shape), dim)
    x, t = _rows(input, dim), _rows(target, dim)
    if torch.compiler.is_compiling() or target.requires_grad or input.device.type != "cpu":
        if target.is_floating_point():
            _checks.check_in_unit_interval(target, "target")
        per_sample = plain_zlpr(x, t, keep)
    else:
        # Target values are validated inside the fused kernel, in the same pass.
        per_sample = dense_zlpr(x, t, keep, _factor(reduction, x.shape[0]))
    per_sample = per_sample.reshape(_sample_shape(input, dim))
    return _reduce.reduce_loss(per_sample, reduction).to(input.dtype)


def sparse_zlpr_loss(
    input: Tensor,
    positives: Tensor,
    *,
    pad_index: int = -1,
    dim: int = 1,
    reduction: str = "mean",
) -> Tensor:
    r"""ZLPR from the indices of the positive labels, for very many classes.

    .. math::

        \ell_n = \log\Big(1 + \sum_{j \in \Omega_n} e^{-s_{n,j}}\Big)
               + \log\Big(1 + \sum_{i \notin \Omega_n} e^{s_{n,i}}\Big),

    :math:`\Omega_n` the set of indices listed for sample :math:`n`. Equal to :func:`zlpr_loss` on
    the multi-hot target of the same positives; no dense target is ever built, and the only
    full-size allocation is the gradient. The negative term is computed exactly (the positives are
    removed from a cache-sized copy of each row, not subtracted from the partition function, which
    cancels catastrophically when the positives dominate: bert4keras#436).

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``.
        positives: integer class indices, shaped like ``input`` except along ``dim`` where it has
            length ``P`` (the most positives of any sample), padded with ``pad_index``. A repeated
            index counts once. ``-inf`` logits are excluded, as in :func:`zlpr_loss`.
        pad_index: the padding value (default -1). A ``pad_index`` inside ``[0, C)`` still leaves
            that class among the negatives; to reserve a class (bert4keras' ``mask_zero``), drop its
            logit column instead.
        dim: the class dimension of ``input`` and the index dimension of ``positives``.
        reduction: ``'mean'`` over samples, ``'sum'`` or ``'none'``.

    Example:
        >>> scores = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
        >>> sparse_zlpr_loss(scores, torch.tensor([[2, 0, -1]]))
        tensor(0.9040)

    Reference: ``sparse_multilabel_categorical_crossentropy`` in bojone/bert4keras, with the
    exact negative term of the spec; J. Su, kexue.fm/archives/7359.
    """
    _checks.check_floating(input, "input")
    _checks.check_tensor(positives, "positives")
    _checks.check_reduction(reduction)
    if positives.is_floating_point() or positives.is_complex() or positives.dtype == torch.bool:
        raise TypeError(f"positives: expected integer class indices, got dtype {positives.dtype}")
    if isinstance(pad_index, bool) or not isinstance(pad_index, int):
        raise TypeError(f"pad_index: expected an int, got {pad_index!r}")
    dim = _class_dim(input, dim)
    expected = list(input.shape)
    if positives.dim() == input.dim():
        expected[dim] = positives.shape[dim]
    if list(positives.shape) != expected:
        shown = list(input.shape)
        shown[dim] = "P"
        raise ValueError(
            f"positives: expected shape ({', '.join(map(str, shown))}) for input of shape "
            f"{tuple(input.shape)} (P indices along dim {dim}), got {tuple(positives.shape)}"
        )
    num_classes = input.shape[dim]
    _checks.check_index_target(positives, num_classes, pad_index, name="positives", ignore_name="pad_index")
    x = _rows(input, dim)
    index, active = clean_positives(_rows(positives, dim).long(), pad_index)
    if torch.compiler.is_compiling():
        per_sample = plain_sparse_zlpr(x, index, active)
    else:
        per_sample = sparse_zlpr(x, index, active, _factor(reduction, x.shape[0]))
    per_sample = per_sample.reshape(_sample_shape(input, dim))
    return _reduce.reduce_loss(per_sample, reduction).to(input.dtype)


def zlpr_decode(input: Tensor, *, threshold: float | Tensor = 0.0) -> Tensor:
    r"""Predicted label set of a ZLPR model: :math:`\hat y_i = [s_i > \theta]`, :math:`\theta = 0`.

    The threshold class of ZLPR is fixed at score 0, so the decision needs no per-label tuning.
    (torchmetrics' multilabel metrics apply a sigmoid to logits and threshold at 0.5, which is the
    same rule.)

    Args:
        input: logits of any shape.
        threshold: a float or a tensor broadcastable to ``input`` (e.g. per-label thresholds).

    Returns:
        A bool tensor shaped like ``input``; ``-inf`` (masked) logits are never predicted.

    Example:
        >>> zlpr_decode(torch.tensor([[2.0, -1.0, 0.5, -3.0]]))
        tensor([[ True, False,  True, False]])

    Reference: J. Su, kexue.fm/archives/7359.
    """
    _checks.check_floating(input, "input")
    if isinstance(threshold, Tensor):
        _checks.check_floating(threshold, "threshold")
    elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold: expected a float or a tensor, got {threshold!r}")
    return input > threshold


def zlpr_probs(input: Tensor) -> Tensor:
    r"""Per-label probabilities of a ZLPR model: :math:`\sigma(2 s_i)`, not :math:`\sigma(s_i)`.

    The soft-label loss is minimised at :math:`s_i = \tfrac12 \log\frac{t_i}{1 - t_i}`, i.e.
    :math:`t_i = \sigma(2 s_i)`; the decision rule :math:`s_i > 0` is :math:`\sigma(2 s_i) > 1/2`.

    Example:
        >>> zlpr_probs(torch.tensor([0.0, 1.0, float("-inf")]))
        tensor([0.5000, 0.8808, 0.0000])

    Reference: J. Su, kexue.fm/archives/9064.
    """
    _checks.check_floating(input, "input")
    return torch.sigmoid(2.0 * input)


class ZLPRLoss(Loss):
    """Module form of :func:`zlpr_loss`; ``forward(input, target, mask=None)``."""

    def __init__(self, *, dim: int = 1, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.dim = dim

    def forward(self, input: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return zlpr_loss(input, target, mask=mask, dim=self.dim, reduction=self.reduction)


class SparseZLPRLoss(Loss):
    """Module form of :func:`sparse_zlpr_loss`; ``forward(input, positives)``."""

    def __init__(self, *, pad_index: int = -1, dim: int = 1, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.pad_index = pad_index
        self.dim = dim

    def forward(self, input: Tensor, positives: Tensor) -> Tensor:
        return sparse_zlpr_loss(
            input, positives, pad_index=self.pad_index, dim=self.dim, reduction=self.reduction
        )
