r"""Metric surrogates: smooth accuracy, smooth F1 and the F1-derived weighted BCE.

Replacing the hard prediction by probabilities turns accuracy and F1 into differentiable
functions of the logits (post 6620). With :math:`p = \mathrm{softmax}(x / \tau)` (multi-class) or
:math:`p = \sigma(x / \tau)` (binary / multi-label) and targets :math:`t`:

.. math::

    \mathrm{acc}_{\mathrm{smooth}} = \frac1N \sum_n \langle t_n, p_n \rangle
    \qquad\qquad
    \mathrm{F1}_{\mathrm{smooth}} = \frac{2 \sum t\,p}{\sum (t + p)} .

As :math:`\tau \to 0^+` the probabilities become the hard predictions and both tend to the exact
metrics. Their gradients are small on badly wrong samples (accuracy's :math:`p(1-p)` factor), which
is why cross-entropy, the "stretched" smooth accuracy, usually trains better; the post recommends CE
first, then fine-tuning on :math:`-\mathrm{F1}`, whose batch estimate is biased.

The F1-derived weighted BCE (post 7708) applies the rule ":math:`\nabla p \to \nabla \log p`" to
the smooth-F1 gradient: BCE with positive weight :math:`1 - F_1/2` and negative weight
:math:`F_1/2`, :math:`F_1` held constant (stop-gradient).

EXACT, the expected accuracy of a Gaussian-perturbed arg-max, is in :mod:`logitkit.losses.exact`.

References: J. Su, "函数光滑化杂谈" (kexue.fm/archives/6620, 2019); "再谈类别不平衡问题"
(kexue.fm/archives/7708, 2020); "如何训练你的准确率？" (kexue.fm/archives/9098, 2022).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from logitkit import _checks, _reduce
from logitkit.losses._base import Loss
from logitkit.losses._softmax_fused import class_sums, class_term_loss
from logitkit.losses.cross_entropy import compute_dtype, cross_entropy
from logitkit.ops.softmax import apply_temperature, log_softmax, logsumexp

__all__ = [
    "F1WeightedBCELoss",
    "SmoothAccuracyLoss",
    "SmoothF1Loss",
    "f1_weighted_bce",
    "smooth_accuracy_loss",
    "smooth_f1_loss",
]

_TASKS = ("multiclass", "binary", "multilabel")
_BINARY_TASKS = ("binary", "multilabel")
_AVERAGES = ("macro", "micro", "none")


# --------------------------------------------------------------------------------------------
# Shared preparation
# --------------------------------------------------------------------------------------------


def _binary_target(input: Tensor, target: Tensor, dtype: torch.dtype) -> Tensor:
    """Binary / multi-label targets: the input's shape, values in [0, 1] (soft labels allowed)."""
    _checks.check_tensor(target, "target")
    if target.is_complex():
        raise TypeError(f"target: expected 0/1 labels or probabilities in [0, 1], got dtype {target.dtype}")
    _checks.check_same_shape(input, target, "input", "target")
    if target.dtype != torch.bool:
        _checks.check_in_unit_interval(target, "target")
    return target.to(dtype)


def _check_task(task: str, input: Tensor) -> None:
    _checks.check_one_of(task, "task", _TASKS)
    _checks.check_floating(input, "input")
    if task == "multiclass" and input.dim() < 2:
        raise ValueError(
            "input: task='multiclass' expects logits of shape (N, C) or (N, C, d1, ...), "
            f"got {tuple(input.shape)}"
        )
    if task == "multilabel" and input.dim() < 2:
        raise ValueError(
            "input: task='multilabel' expects logits of shape (N, L) or (N, L, d1, ...), "
            f"got {tuple(input.shape)}"
        )


def _neg_log_mean(log_values: Tensor, log_count: Tensor) -> Tensor:
    r""":math:`-\log\big(\sum_i e^{v_i} / n\big)` from :math:`v` and :math:`\log n`; 0 when :math:`n = 0`."""
    empty = torch.isneginf(log_count)
    total = logsumexp(log_values.reshape(-1), 0)  # all -inf: -inf with zero gradient
    return torch.where(empty, 0.0, log_count - torch.where(empty, 0.0, total))


def _check_log_reduction(log: bool, reduction: str) -> None:
    if not isinstance(log, bool):
        raise TypeError(f"log: expected a bool, got {log!r}")
    if log and reduction != "mean":
        raise ValueError(
            "reduction: the log variant -log(mean accuracy) is a batch quantity; "
            f"expected 'mean', got {reduction!r}"
        )


# --------------------------------------------------------------------------------------------
# Smooth accuracy
# --------------------------------------------------------------------------------------------


def smooth_accuracy_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: str = "multiclass",
    temperature: float | Tensor = 1.0,
    log: bool = False,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""One minus smooth accuracy, or its ``-log`` variant.

    .. math::

        \ell_n = 1 - a_n, \qquad
        a_n = \begin{cases}
            \sum_c q_{n,c}\, \mathrm{softmax}(x_n/\tau)_c & \text{multiclass } (= p_{n,y_n}) \\
            t\,\sigma(x/\tau) + (1 - t)\,\sigma(-x/\tau) & \text{binary, multilabel (per element)}
        \end{cases}
        \qquad
        \ell^{\log} = -\log \frac{\sum_n w_{y_n} a_n}{\sum_n w_{y_n}} .

    ``reduction="mean"`` gives one minus the smooth (weighted) accuracy, which tends to the exact
    accuracy as :math:`\tau \to 0^+` (multi-label: the fraction of correct labels, i.e.
    torchmetrics' multilabel accuracy). ``log=True`` is :math:`-\log` of the mean smooth
    accuracy (log outside the batch mean, as in the EXACT paper), computed in log space.

    Args:
        input: logits; ``(N, C)`` or ``(N, C, d1, ...)`` for ``"multiclass"``; any shape for
            ``"binary"``; ``(N, L, ...)`` for ``"multilabel"``.
        target: multiclass: class indices ``(N, d1, ...)`` or probabilities shaped like ``input``;
            binary / multilabel: 0/1 labels or probabilities in [0, 1] shaped like ``input``.
        task: ``"multiclass"`` (softmax over dim 1), ``"binary"`` or ``"multilabel"``
            (element-wise sigmoid; the two are the same computation).
        temperature: :math:`\tau > 0` (float or tensor); :math:`\tau \to 0^+` gives the hard metric.
        log: the :math:`-\log` variant (``reduction="mean"`` only).
        weight, ignore_index: multiclass only, cross-entropy semantics: the weighted mean divides
            by :math:`\sum_n w_{y_n}`, so ``weight = 1 / class_frequency`` gives a smooth balanced
            accuracy.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-sample / per-element :math:`1 - a`).

    Example:
        >>> x = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> smooth_accuracy_loss(x, torch.tensor([0, 0]))
        tensor(0.4251)
        >>> smooth_accuracy_loss(x, torch.tensor([0, 0]), temperature=1e-3)  # exact: 1 of 2 wrong
        tensor(0.5000)

    Reference: kexue.fm/archives/6620, 7708 and 9098.
    """
    _check_task(task, input)
    _checks.check_reduction(reduction)
    _check_log_reduction(log, reduction)
    _checks.check_positive(temperature, "temperature")
    cd = compute_dtype(input.dtype)
    if task in _BINARY_TASKS:
        if weight is not None:
            raise ValueError("weight: class weights apply to task='multiclass' only, got a tensor")
        t = _binary_target(input, target, cd)
        z = apply_temperature(input.to(cd), temperature)
        if log:
            # log(t sigma(z) + (1 - t) sigma(-z)), a zero label weight contributing nothing
            pos = torch.where(t == 0, float("-inf"), torch.log(torch.where(t == 0, 1.0, t)) + F.logsigmoid(z))
            neg = torch.where(
                t == 1, float("-inf"), torch.log1p(-torch.where(t == 1, 0.0, t)) + F.logsigmoid(-z)
            )
            count = torch.tensor(float(t.numel()), dtype=cd, device=t.device)
            return _neg_log_mean(torch.logaddexp(pos, neg), count.log()).to(input.dtype)
        errors = t * torch.sigmoid(-z) + (1.0 - t) * torch.sigmoid(z)
        return _reduce.reduce_loss(errors, reduction).to(input.dtype)

    tgt = _reduce.class_target(input, target, ignore_index=ignore_index)
    if weight is not None:
        _checks.check_class_weight(weight, tgt.num_classes)
    w = None if weight is None else weight.to(cd)
    denominator = _reduce.mean_denominator(tgt, w, cd)
    if tgt.index is not None:
        # a_n = p_y = exp(-CE_n): the fused cross-entropy kernel does the heavy lifting.
        nll = cross_entropy(
            input, target, ignore_index=ignore_index, reduction="none", temperature=temperature
        )
        nll = nll.to(cd)
        if log:
            log_w = 0.0 if w is None else torch.log(w)[tgt.index]
            log_acc = torch.where(tgt.valid, log_w - nll, float("-inf"))
            return _neg_log_mean(log_acc, denominator.log()).to(input.dtype)
        per_sample = -torch.expm1(-nll)
        if w is not None:
            per_sample = per_sample * w[tgt.index]
        per_sample = torch.where(tgt.valid, per_sample, 0.0)
    else:
        if log:
            logp = log_softmax(input, 1, temperature=temperature, dtype=cd)
            coeff = _reduce.smoothed_probs(tgt, 0.0, cd)
            if w is not None:
                coeff = coeff * _reduce._class_view(w, coeff.dim())
            zero = coeff == 0
            log_terms = torch.where(zero, float("-inf"), torch.log(torch.where(zero, 1.0, coeff)) + logp)
            return _neg_log_mean(log_terms, denominator.log()).to(input.dtype)
        per_sample = class_term_loss(input, tgt, kind="error", weight=w, temperature=temperature)
    return _reduce.reduce_loss(per_sample, reduction, denominator).to(input.dtype)


# --------------------------------------------------------------------------------------------
# Smooth F1
# --------------------------------------------------------------------------------------------


def _f1_loss_from_sums(
    tp: Tensor, support: Tensor, predicted: Tensor, average: str, zero_division: float
) -> Tensor:
    r"""``1 - F1`` from per-class sums :math:`\sum t p`, :math:`\sum t`, :math:`\sum p`.

    :math:`F_1 = 2\,TP / D` with :math:`D = \sum t + \sum p`; a class with :math:`D = 0` (no target,
    no prediction) scores ``zero_division`` and is left out of the macro average (as
    torchmetrics' multiclass and scikit-learn's default labels do).
    """
    if average == "micro":
        tp, support, predicted = tp.sum(), support.sum(), predicted.sum()
    denom = support + predicted
    present = denom > 0
    f1 = torch.where(present, 2.0 * tp / torch.where(present, denom, 1.0), zero_division)
    if average == "macro":
        count = present.sum()
        mean = torch.where(present, f1, 0.0).sum() / count.clamp_min(1)
        f1 = torch.where(count > 0, mean, zero_division)
    return 1.0 - f1


def smooth_f1_loss(
    input: Tensor,
    target: Tensor,
    *,
    task: str = "multiclass",
    average: str = "macro",
    temperature: float | Tensor = 1.0,
    zero_division: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    r"""One minus the smooth F1 score of a batch (the soft Dice loss).

    .. math::

        1 - F_1, \qquad F_1 = \frac{2 \sum_n t_{n} p_{n}}{\sum_n (t_{n} + p_{n})}
        \quad\text{per class (macro, then averaged) or pooled (micro)},

    with :math:`p = \sigma(x/\tau)` (binary, multi-label) or :math:`\mathrm{softmax}(x/\tau)` over
    dim 1 and one-hot :math:`t` (multiclass). As :math:`\tau \to 0^+` it tends to the exact F1
    (torchmetrics / scikit-learn). A class with no target and no predicted mass scores
    ``zero_division`` and is left out of the macro average. The estimate is over the batch, hence
    biased: train with cross-entropy first, then fine-tune (post 6620).

    Args:
        input: logits as in :func:`smooth_accuracy_loss`.
        target: as in :func:`smooth_accuracy_loss`.
        task: ``"multiclass"``, ``"binary"`` (one F1 over all elements) or ``"multilabel"``
            (labels on dim 1).
        average: multiclass / multilabel: ``"macro"`` (mean of per-class F1, torchmetrics'
            default), ``"micro"`` (pooled; for single-label multiclass it equals smooth accuracy)
            or ``"none"`` (per-class losses, shape ``(C,)``). No effect for ``"binary"``.
        temperature: :math:`\tau > 0`.
        zero_division: the F1 of a class with :math:`\sum t + \sum p = 0`.
        ignore_index: multiclass index targets equal to it are skipped.

    Returns:
        A scalar (a ``(C,)`` vector for ``average="none"``).

    Example:
        >>> x = torch.tensor([3.0, -2.0, 1.0, -4.0])
        >>> smooth_f1_loss(x, torch.tensor([1, 0, 0, 0]), task="binary")
        tensor(0.3246)

    Reference: kexue.fm/archives/6620 and 7708.
    """
    _check_task(task, input)
    _checks.check_one_of(average, "average", _AVERAGES)
    _checks.check_positive(temperature, "temperature")
    _checks.check_number(zero_division, "zero_division", low=0.0, high=1.0)
    cd = compute_dtype(input.dtype)
    if task in _BINARY_TASKS:
        t = _binary_target(input, target, cd)
        p = torch.sigmoid(apply_temperature(input.to(cd), temperature))
        if task == "binary":
            average = "micro"
        dims = [d for d in range(p.dim()) if d != 1] if task == "multilabel" else list(range(p.dim()))
        tp, support, predicted = (t * p).sum(dims), t.sum(dims), p.sum(dims)
    else:
        tgt = _reduce.class_target(input, target, ignore_index=ignore_index)
        tp, predicted = class_sums(input, tgt, temperature=temperature)
        if tgt.index is not None:
            assert tgt.valid is not None
            support = torch.zeros_like(tp).index_add_(0, tgt.index.reshape(-1), tgt.valid.reshape(-1).to(cd))
        else:
            support = tgt.probs.to(cd).sum([d for d in range(input.dim()) if d != 1])
    return _f1_loss_from_sums(tp, support, predicted, average, float(zero_division)).to(input.dtype)


# --------------------------------------------------------------------------------------------
# F1-derived weighted BCE
# --------------------------------------------------------------------------------------------


def f1_weighted_bce(
    input: Tensor,
    target: Tensor,
    *,
    task: str = "binary",
    f1: float | Tensor | None = None,
    min_weight: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross-entropy re-weighted by the (stop-gradient) smooth F1 of the batch.

    .. math::

        \ell = -\Big(1 - \frac{F_1}{2}\Big)\, t \log \sigma(x)
               - \frac{F_1}{2}\, (1 - t) \log \sigma(-x),
        \qquad F_1 = \mathrm{sg}\Big[\frac{2 \sum t\, \sigma(x)}{\sum (t + \sigma(x))}\Big].

    Its gradient is the smooth-F1 gradient after the rule ":math:`\nabla p \to \nabla \log p`"
    (post 7708, eq. 9): :math:`-(1 - F_1/2)(1 - p)` on positives and :math:`(F_1/2)\,p` on
    negatives. In :class:`torch.nn.BCEWithLogitsLoss` terms it is ``weight = F1/2`` and
    ``pos_weight = (2 - F1)/F1``. On a batch without positives the batch :math:`F_1` is 0, so the
    negatives get weight 0 and the batch teaches nothing; pass a running-window ``f1`` or a
    ``min_weight`` floor.

    Args:
        input: logits of any shape (``"multilabel"``: labels on dim 1).
        target: 0/1 labels or probabilities in [0, 1] shaped like ``input``.
        task: ``"binary"`` (one :math:`F_1` over all elements) or ``"multilabel"`` (one per label).
        f1: a fixed :math:`F_1` (float, or a tensor broadcastable to ``input``, e.g. a running
            average; for ``"multilabel"`` a 1-D tensor holds one value per label); default: the
            batch smooth F1, detached. :class:`~logitkit.nn.F1WeightedBCELoss` can keep a running
            average.
        min_weight: floor :math:`b \ge 0` on both weights: :math:`\max(b, \cdot)`.
        reduction: ``"mean"`` (over all elements, as ``BCEWithLogitsLoss``), ``"sum"``, ``"none"``.

    Example:
        >>> x = torch.tensor([2.0, -1.0, 0.5])
        >>> f1_weighted_bce(x, torch.tensor([1.0, 0.0, 0.0]), f1=0.5)
        tensor(0.1390)

    Reference: kexue.fm/archives/7708 (eqs. 5-9).
    """
    _checks.check_one_of(task, "task", _BINARY_TASKS)
    _check_task(task, input)
    _checks.check_reduction(reduction)
    _checks.check_number(min_weight, "min_weight", low=0.0)
    cd = compute_dtype(input.dtype)
    t = _binary_target(input, target, cd)
    x = input.to(cd)
    if f1 is None:
        with torch.no_grad():
            loss = smooth_f1_loss(x, t, task=task, average="none" if task == "multilabel" else "micro")
            score = 1.0 - loss
        if task == "multilabel":
            score = score.view(1, -1, *([1] * (x.dim() - 2)))
    elif isinstance(f1, Tensor):
        _checks.check_floating(f1, "f1")
        _checks.check_in_unit_interval(f1, "f1")
        score = f1.detach().to(cd)
        if task == "multilabel" and score.dim() == 1 and x.dim() > 2:
            score = score.view(1, -1, *([1] * (x.dim() - 2)))  # per-label values, labels on dim 1
    else:
        _checks.check_number(f1, "f1", low=0.0, high=1.0)
        score = torch.tensor(float(f1), dtype=cd, device=x.device)
    w_pos = (1.0 - score / 2).clamp_min(min_weight)
    w_neg = (score / 2).clamp_min(min_weight)
    per_element = w_pos * t * F.softplus(-x) + w_neg * (1.0 - t) * F.softplus(x)
    return _reduce.reduce_loss(per_element, reduction).to(input.dtype)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class SmoothAccuracyLoss(Loss):
    """Module form of :func:`smooth_accuracy_loss` (``weight`` is a buffer)."""

    def __init__(
        self,
        *,
        task: str = "multiclass",
        temperature: float = 1.0,
        log: bool = False,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_one_of(task, "task", _TASKS)
        _checks.check_positive(temperature, "temperature")
        _check_log_reduction(log, reduction)
        self.task, self.temperature, self.log, self.ignore_index = task, temperature, log, ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_accuracy_loss(
            input,
            target,
            task=self.task,
            temperature=self.temperature,
            log=self.log,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class SmoothF1Loss(nn.Module):
    """Module form of :func:`smooth_f1_loss` (a batch-level loss: no ``reduction``)."""

    def __init__(
        self,
        *,
        task: str = "multiclass",
        average: str = "macro",
        temperature: float = 1.0,
        zero_division: float = 0.0,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        _checks.check_one_of(task, "task", _TASKS)
        _checks.check_one_of(average, "average", _AVERAGES)
        _checks.check_positive(temperature, "temperature")
        _checks.check_number(zero_division, "zero_division", low=0.0, high=1.0)
        self.task, self.average, self.temperature = task, average, temperature
        self.zero_division, self.ignore_index = zero_division, ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_f1_loss(
            input,
            target,
            task=self.task,
            average=self.average,
            temperature=self.temperature,
            zero_division=self.zero_division,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return f"task={self.task!r}, average={self.average!r}, temperature={self.temperature!r}"


class F1WeightedBCELoss(Loss):
    r"""Module form of :func:`f1_weighted_bce`, optionally with a running :math:`F_1`.

    With ``momentum`` set, the module keeps an exponential moving average of the batch smooth F1
    in the buffer ``running_f1`` (updated in training mode, under ``no_grad``:
    ``running = (1 - momentum) * running + momentum * batch``; the first batch initialises it) and
    weights the loss with it: the guard of post 7708's all-negative-batch problem. In eval mode the
    running value is used as is.
    """

    running_f1: Tensor | None

    def __init__(
        self,
        *,
        task: str = "binary",
        f1: float | None = None,
        momentum: float | None = None,
        min_weight: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction=reduction)
        _checks.check_one_of(task, "task", _BINARY_TASKS)
        if f1 is not None:
            _checks.check_number(f1, "f1", low=0.0, high=1.0)
        if momentum is not None:
            _checks.check_number(momentum, "momentum", low=0.0, high=1.0, low_open=True)
            if f1 is not None:
                raise ValueError("momentum: a running F1 and a fixed f1 exclude each other, got both")
        _checks.check_number(min_weight, "min_weight", low=0.0)
        self.task, self.f1, self.momentum, self.min_weight = task, f1, momentum, min_weight
        self.register_buffer("running_f1", None)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        f1: float | Tensor | None = self.f1
        if self.momentum is not None:
            if self.training:
                with torch.no_grad():
                    average = "none" if self.task == "multilabel" else "micro"
                    batch = 1.0 - smooth_f1_loss(
                        input.detach().float(), target, task=self.task, average=average
                    )
                    if self.running_f1 is None:
                        self.running_f1 = batch
                    else:
                        self.running_f1 = torch.lerp(self.running_f1, batch, self.momentum)
            f1 = self.running_f1
        return f1_weighted_bce(
            input, target, task=self.task, f1=f1, min_weight=self.min_weight, reduction=self.reduction
        )
