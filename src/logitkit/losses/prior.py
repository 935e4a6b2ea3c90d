r"""Class priors, the logit-adjusted loss, and class weights for imbalanced data.

Three ways to correct for a skewed label distribution :math:`p(y)`:

* **Re-weighting** (outside the log): weights per class, e.g. :func:`class_balanced_weights`
  (effective number of samples), :func:`inverse_frequency_weights`, or the smooth-F1 weights of
  :func:`f1_class_weights`, passed as ``weight=`` to a loss.
* **Logit adjustment** (inside the log): train on :math:`f_y + \tau \log p(y)`
  (:func:`logit_adjusted_cross_entropy`), so the model learns the pointwise mutual information
  :math:`\log p(y|x) / p(y)` and :math:`\arg\max_y f_y` targets the balanced error.
* **Post-hoc** (after training): :func:`logitkit.posthoc.adjust.adjust_logits` subtracts
  :math:`\tau \log p(y)` from a plain-CE model's logits.

The prior is the class frequency of the **whole training set**, fixed in advance
(:func:`class_prior`); when the data only streams past, :class:`ClassPrior` counts the labels
seen so far (a cumulative mean, not an EMA) and, under ``torch.distributed``, all-reduces the
counts so that every rank uses the global prior. Do not combine logit adjustment with
re-sampling or re-weighting, and do not apply the prior twice (bias initialisation *and* loss).

References: J. Su, "通过互信息思想来缓解类别不平衡问题" (kexue.fm/archives/7615, 2020) and
"再谈类别不平衡问题：调节权重与魔改Loss的对比联系" (kexue.fm/archives/7708, 2020); A. K. Menon et
al., "Long-tail learning via logit adjustment" (ICLR 2021, arXiv:2007.07314); Y. Cui et al.,
"Class-Balanced Loss Based on Effective Number of Samples" (CVPR 2019, arXiv:1901.05555).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from logitkit import _checks
from logitkit.losses._base import Loss
from logitkit.losses.cross_entropy import compute_dtype, cross_entropy

__all__ = [
    "ClassPrior",
    "F1Weights",
    "LogitAdjustedCrossEntropyLoss",
    "check_prior",
    "class_balanced_weights",
    "class_prior",
    "f1_class_weights",
    "init_bias_with_prior",
    "inverse_frequency_weights",
    "logit_adjusted_cross_entropy",
]


# --------------------------------------------------------------------------------------------
# Priors
# --------------------------------------------------------------------------------------------


def check_prior(prior: object, num_classes: int | None, name: str = "prior") -> Tensor:
    """A 1-D floating tensor of positive class probabilities summing to 1 (of length ``num_classes``)."""
    tensor = _checks.check_floating(prior, name)
    if tensor.dim() != 1 or (num_classes is not None and tensor.shape[0] != num_classes):
        expected = "C" if num_classes is None else str(num_classes)
        raise ValueError(
            f"{name}: expected a 1-D tensor of {expected} class probabilities, "
            f"got shape {tuple(tensor.shape)}"
        )
    if not _checks.validate_args_enabled() or tensor.numel() == 0:
        return tensor
    values = tensor.detach()
    bad = ~(values > 0) | ~torch.isfinite(values)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{name}: expected positive finite probabilities, got {values[index].item():g} at class "
            f"{index} (give unseen classes a pseudo-count: class_prior(..., smoothing=1.0))"
        )
    total = values.double().sum().item()
    tolerance = max(1e-6, math.sqrt(torch.finfo(values.dtype).eps))
    if abs(total - 1.0) > tolerance:
        raise ValueError(
            f"{name}: expected probabilities summing to 1, got sum {total:.6g} "
            f"(normalise with {name} / {name}.sum(), or build it with class_prior(counts))"
        )
    return tensor


def _counts(targets_or_counts: Tensor, num_classes: int, ignore_index: int, dtype) -> Tensor:
    values = _checks.check_tensor(targets_or_counts, "targets_or_counts")
    if values.is_floating_point():
        if values.dim() != 1 or values.shape[0] != num_classes:
            raise ValueError(
                f"targets_or_counts: expected floating counts of shape ({num_classes},) or integer "
                f"class indices, got a floating tensor of shape {tuple(values.shape)}"
            )
        _checks.check_nonnegative_values(values, "targets_or_counts")
        return values.to(dtype)
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(
            f"targets_or_counts: expected integer class indices or floating counts, got dtype {values.dtype}"
        )
    flat = values.reshape(-1)
    _checks.check_index_target(flat, num_classes, ignore_index, name="targets_or_counts")
    valid = flat != ignore_index
    # scatter_add rather than bincount: a static output shape (torch.compile).
    counts = torch.zeros(num_classes, dtype=dtype, device=flat.device)
    return counts.scatter_add_(0, torch.where(valid, flat, 0).long(), valid.to(dtype))


def class_prior(
    targets_or_counts: Tensor,
    num_classes: int,
    *,
    smoothing: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    r"""Class frequencies :math:`p(y)` from training labels or per-class counts, with additive smoothing.

    .. math::

        p(y) = \frac{n_y + s}{\sum_c n_c + C s}.

    Args:
        targets_or_counts: integer class indices of any shape (entries equal to ``ignore_index``
            are skipped), or **floating** per-class counts of shape ``(C,)`` (convert a
            ``torch.bincount`` result with ``.float()``: integer tensors are read as labels).
        num_classes: :math:`C`.
        smoothing: pseudo-count :math:`s \ge 0` added to every class; give a positive value when
            some class may be absent (a zero prior has :math:`\log 0 = -\infty`).
        ignore_index: label value to skip.

    Returns:
        A ``(C,)`` tensor (the counts' dtype, or the default floating dtype for labels); uniform
        when there is nothing to count.

    Example:
        >>> class_prior(torch.tensor([0, 0, 0, 1, 2, 2]), 4, smoothing=1.0)
        tensor([0.4000, 0.2000, 0.3000, 0.1000])

    Reference: Menon et al. (2021) §4; J. Su, kexue.fm/archives/7615 (comments: zero counts).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    _checks.check_positive(smoothing, "smoothing", allow_zero=True)
    dtype = targets_or_counts.dtype if targets_or_counts.is_floating_point() else torch.get_default_dtype()
    counts = _counts(targets_or_counts, num_classes, ignore_index, dtype) + smoothing
    total = counts.sum()
    uniform = torch.full_like(counts, 1.0 / num_classes)
    return torch.where(total > 0, counts / torch.where(total > 0, total, 1.0), uniform)


def _log_prior(prior: Tensor, dtype: torch.dtype, ndim: int) -> Tensor:
    """:math:`\\log p` in ``dtype``, shaped to broadcast along the class dim 1 of an ``ndim`` input."""
    return torch.log(prior.to(dtype)).view(1, -1, *([1] * (ndim - 2)))


class ClassPrior(nn.Module):
    r"""Running class prior from the labels seen so far; global under ``torch.distributed``.

    .. math::

        p(y) = \frac{n_y + s}{\sum_c n_c + C s}, \qquad n_y = \#\{\text{labels } y \text{ seen}\},

    a cumulative mean of the one-hot labels (post 8069's counting update, not an EMA). The
    counts are a float64 buffer (saved in ``state_dict``). In training mode, calling the module on a
    batch of labels adds them; :meth:`update` adds them in any mode. Under an initialised
    ``torch.distributed`` process group each update all-reduces the batch counts (a ``(C,)``
    tensor), so every rank holds the global counts and the same prior; every rank must therefore
    call it on every step, like any collective.

    Args:
        num_classes: :math:`C`.
        smoothing: pseudo-count :math:`s \ge 0` per class.
        ignore_index: label value to skip.
        sync: all-reduce when a process group is initialised (default True).
        process_group: the group to reduce over (default: the world).

    Example:
        >>> tracker = ClassPrior(3, smoothing=1.0)
        >>> tracker(torch.tensor([0, 0, 2]))
        tensor([0.5000, 0.1667, 0.3333], dtype=torch.float64)
        >>> tracker.counts
        tensor([2., 0., 1.], dtype=torch.float64)

    Reference: J. Su, kexue.fm/archives/7615 (comments) and /8069 (cumulative mean).
    """

    counts: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        smoothing: float = 0.0,
        ignore_index: int = -100,
        sync: bool = True,
        process_group=None,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
        _checks.check_positive(smoothing, "smoothing", allow_zero=True)
        self.num_classes = num_classes
        self.smoothing = smoothing
        self.ignore_index = ignore_index
        self.sync = sync
        self.process_group = process_group
        self.register_buffer("counts", torch.zeros(num_classes, dtype=torch.float64))

    def _distributed(self) -> bool:
        return self.sync and torch.distributed.is_available() and torch.distributed.is_initialized()

    @torch.no_grad()
    def update(self, target: Tensor) -> None:
        """Add the labels of ``target`` (integer class indices, any shape) to the counts."""
        batch = _counts(target.to(self.counts.device), self.num_classes, self.ignore_index, torch.float64)
        if self._distributed():
            torch.distributed.all_reduce(batch, group=self.process_group)
        self.counts += batch

    def reset(self) -> None:
        self.counts.zero_()

    @property
    def prior(self) -> Tensor:
        """The current prior, a ``(C,)`` float64 tensor (uniform before any label was seen)."""
        return class_prior(self.counts, self.num_classes, smoothing=self.smoothing)

    @property
    def log_prior(self) -> Tensor:
        return torch.log(self.prior)

    def forward(self, target: Tensor | None = None) -> Tensor:
        if target is not None and self.training:
            self.update(target)
        return self.prior

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, smoothing={self.smoothing}, sync={self.sync}"


# --------------------------------------------------------------------------------------------
# Logit-adjusted cross-entropy
# --------------------------------------------------------------------------------------------


def _check_tau(tau: float, name: str = "tau", *, allow_negative: bool = False) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"{name}: expected a float, got {tau!r}")
    if not math.isfinite(tau) or (tau < 0 and not allow_negative):
        kind = "finite number" if allow_negative else "non-negative finite number"
        raise ValueError(f"{name}: expected a {kind}, got {tau!r}")
    return float(tau)


def logit_adjusted_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    prior: Tensor,
    tau: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy on logits shifted by the scaled log-prior (logit adjustment, loss form).

    .. math::

        \ell_n = -\log \frac{e^{f_y + \tau \log p(y)}}{\sum_i e^{f_i + \tau \log p(i)}}
              = \log\Big[1 + \sum_{i \ne y} \Big(\frac{p(i)}{p(y)}\Big)^{\tau} e^{f_i - f_y}\Big],

    i.e. :func:`~logitkit.functional.cross_entropy` of :math:`f + \tau \log p`, with all its
    semantics (index or probability targets, ``weight``, ``ignore_index``, ``label_smoothing``,
    N-D input with class dim 1, torch's weighted mean). The rare class :math:`y` gets the pairwise
    margin :math:`\tau \log\frac{p(i)}{p(y)}` against each frequent class :math:`i`. Predict with
    :math:`\arg\max_y f_y` for the balanced error, or :math:`\arg\max_y f_y + \tau \log p(y)` for
    the overall accuracy on data distributed like the training set. A uniform prior or
    :math:`\tau = 0` gives cross-entropy.

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``.
        target: class indices or class probabilities.
        prior: ``(C,)`` positive class probabilities summing to 1, the training-set frequencies
            (:func:`class_prior`, or :attr:`ClassPrior.prior`).
        tau: :math:`\tau \ge 0`; 1 is "generally already close to optimal".
        weight, ignore_index, reduction, label_smoothing: as in
            :func:`~logitkit.functional.cross_entropy`.

    Example:
        >>> prior = torch.tensor([0.7, 0.2, 0.1])
        >>> logits = torch.tensor([[1.0, 1.0, 1.0]])
        >>> logit_adjusted_cross_entropy(logits, torch.tensor([2]), prior=prior)
        tensor(2.3026)

    Reference: Menon et al. (2021), eq. (10); J. Su, kexue.fm/archives/7615, eq. (6).
    """
    _checks.check_floating(input, "input")
    tau = _check_tau(tau)
    num_classes = input.shape[0] if input.dim() == 1 else (input.shape[1] if input.dim() > 1 else 0)
    check_prior(prior, num_classes if input.dim() >= 1 else None)
    cd = compute_dtype(input.dtype)
    if prior.requires_grad:
        raise ValueError("prior: treated as a constant; pass prior.detach()")
    if input.dim() >= 2:
        shifted = input.to(cd) + tau * _log_prior(prior, cd, input.dim())
    else:
        shifted = input.to(cd) + tau * torch.log(prior.to(cd))
    out = cross_entropy(
        shifted,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    return out.to(input.dtype)


class LogitAdjustedCrossEntropyLoss(Loss):
    """Module form of :func:`logit_adjusted_cross_entropy` (``prior`` and ``weight`` are buffers)."""

    prior: Tensor

    def __init__(
        self,
        *,
        prior: Tensor,
        tau: float = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        check_prior(prior, None)
        _checks.check_label_smoothing(label_smoothing)
        self.tau = _check_tau(tau)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.register_buffer("prior", prior.detach().clone())

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return logit_adjusted_cross_entropy(
            input,
            target,
            prior=self.prior,
            tau=self.tau,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


@torch.no_grad()
def init_bias_with_prior(bias: Tensor, prior: Tensor, *, tau: float = 1.0, link: str = "softmax") -> Tensor:
    r"""Initialise a classifier's bias from the class prior, in place.

    .. math::

        b_y = \tau \log p(y) \;(\text{softmax}), \qquad
        b_y = \log\frac{p(y)}{1 - p(y)} \;(\text{sigmoid}).

    ``'softmax'`` is logit adjustment by initialisation (post 7615's first implementation): at
    step 0 the model equals the logit-adjusted loss with a zero-bias head. Since the bias then
    keeps training, subtract :math:`\tau \log p(y)` before the arg-max for the balanced rule, and
    do not also use :func:`logit_adjusted_cross_entropy` (the prior would count twice).
    ``'sigmoid'`` is the focal-loss paper's prior initialisation (:math:`p = \pi = 0.01` for its
    detector), which keeps early training from diverging under heavy imbalance; ``prior`` there is
    the positive rate per output (any values in (0, 1), not summing to 1).

    Args:
        bias: the bias parameter ``(C,)`` (e.g. ``linear.bias``), modified in place and returned.
        prior: ``(C,)`` class prior (``'softmax'``) or positive rates (``'sigmoid'``).
        tau: :math:`\tau` (``'softmax'`` only).
        link: ``'softmax'`` or ``'sigmoid'``.

    Example:
        >>> head = torch.nn.Linear(4, 2)
        >>> init_bias_with_prior(head.bias, torch.tensor([0.01, 0.5]), link="sigmoid")
        Parameter containing:
        tensor([-4.5951,  0.0000], requires_grad=True)

    Reference: Lin et al. (2017) §3.3; J. Su, kexue.fm/archives/7615.
    """
    _checks.check_one_of(link, "link", ("softmax", "sigmoid"))
    _checks.check_floating(bias, "bias")
    if link == "softmax":
        check_prior(prior, bias.shape[0] if bias.dim() == 1 else None)
        value = _check_tau(tau) * torch.log(prior.to(bias.dtype))
    else:
        _checks.check_floating(prior, "prior")
        if prior.shape != bias.shape:
            raise ValueError(
                f"prior: expected the shape of bias {tuple(bias.shape)}, got {tuple(prior.shape)}"
            )
        if _checks.validate_args_enabled() and bool(((prior <= 0) | (prior >= 1)).any()):
            raise ValueError("prior: expected positive rates in (0, 1) for link='sigmoid'")
        p = prior.to(bias.dtype)
        value = torch.log(p) - torch.log1p(-p)
    return bias.copy_(value)


# --------------------------------------------------------------------------------------------
# Class weights
# --------------------------------------------------------------------------------------------


def _check_counts(counts: object, name: str = "counts") -> Tensor:
    tensor = _checks.check_tensor(counts, name)
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(
            f"{name}: expected a 1-D tensor of per-class counts, got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name}: expected integer or floating counts, got dtype {tensor.dtype}")
    _checks.check_nonnegative_values(tensor, name)
    return tensor if tensor.is_floating_point() else tensor.to(torch.get_default_dtype())


def _normalise_to_mean_one(raw: Tensor, present: Tensor) -> Tensor:
    raw = torch.where(present, raw, 0.0)
    total = raw.sum()
    return raw * (raw.numel() / torch.where(total > 0, total, 1.0))


def class_balanced_weights(counts: Tensor, *, beta: float = 0.999) -> Tensor:
    r"""Class-balanced weights from the effective number of samples (Cui et al., 2019).

    .. math::

        w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad \sum_c w_c = C,

    the inverse of the effective number :math:`E_{n} = (1 - \beta^{n}) / (1 - \beta)`:
    :math:`\beta = 0` gives uniform weights and :math:`\beta \to 1` inverse frequencies. Classes with
    no sample get weight 0. Pass the result as ``weight=`` to a loss (torch's weighted mean then
    divides by the sum of the targets' weights).

    Args:
        counts: ``(C,)`` non-negative per-class counts (integer or floating).
        beta: :math:`\beta \in [0, 1)`; the paper uses 0.9 to 0.9999.

    Example:
        >>> class_balanced_weights(torch.tensor([1000, 100, 10]), beta=0.99)
        tensor([0.2301, 0.3630, 2.4068])

    Reference: Y. Cui, M. Jia, T.-Y. Lin, Y. Song, S. Belongie, "Class-Balanced Loss Based on
    Effective Number of Samples" (CVPR 2019), eq. (2)-(3) and §4.
    """
    values = _check_counts(counts)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
        raise ValueError(f"beta: expected a value in [0, 1), got {beta!r}")
    n = values.double()
    # 1 - beta^n as -expm1(n log beta): exact for beta close to 1.
    if beta == 0:
        raw = torch.ones_like(n)
    else:
        raw = (1.0 - beta) / (-torch.expm1(n * math.log(beta))).clamp_min(torch.finfo(n.dtype).tiny)
    return _normalise_to_mean_one(raw, n > 0).to(values.dtype)


def inverse_frequency_weights(counts: Tensor, *, power: float = 1.0) -> Tensor:
    r"""Inverse-frequency class weights :math:`w_c \propto n_c^{-\rho}`, normalised to :math:`\sum_c w_c = C`.

    :math:`\rho = 1` is inverse frequency, :math:`\rho = 1/2` its square root, :math:`\rho = 0`
    uniform; classes with no sample get weight 0.

    Args:
        counts: ``(C,)`` non-negative per-class counts.
        power: :math:`\rho \ge 0`.

    Example:
        >>> inverse_frequency_weights(torch.tensor([1000, 100, 10]))
        tensor([0.0270, 0.2703, 2.7027])

    Reference: the standard re-weighting baseline, e.g. Cui et al. (2019) §1 and Menon et al. (2021) §2.
    """
    values = _check_counts(counts)
    _checks.check_positive(power, "power", allow_zero=True)
    n = values.double()
    present = n > 0
    raw = torch.exp(-power * torch.log(torch.where(present, n, 1.0)))
    return _normalise_to_mean_one(raw, present).to(values.dtype)


class F1Weights(NamedTuple):
    """Weights of the F1-derived weighted cross-entropy: ``positive`` :math:`= 1 - F_1/2`,
    ``negative`` :math:`= F_1/2`, and the soft ``f1`` they came from."""

    positive: Tensor
    negative: Tensor
    f1: Tensor

    def elementwise(self, target: Tensor) -> Tensor:
        """Per-element weights :math:`t (1 - F_1/2) + (1 - t) F_1/2` for
        :func:`torch.nn.functional.binary_cross_entropy_with_logits` ``weight=``."""
        return target * self.positive + (1 - target) * self.negative


def f1_class_weights(
    input: Tensor,
    target: Tensor,
    *,
    f1: float | Tensor | None = None,
    per_class: bool = False,
    floor: float = 0.0,
) -> F1Weights:
    r"""The smooth-F1-derived weights of binary cross-entropy (post 7708), detached.

    .. math::

        F_1 = \frac{2 \sum t\, \sigma(x)}{\sum (t + \sigma(x))}, \qquad
        w_+ = 1 - \frac{F_1}{2}, \qquad w_- = \frac{F_1}{2}.

    Maximising the smooth F1 and replacing :math:`\nabla p` by :math:`\nabla \log p` (the post's
    "axiom") gives the gradient of
    :math:`-\mathbb{E}[t\, w_+ \log \sigma(x) + (1 - t)\, w_- \log \sigma(-x)]` with :math:`F_1` held
    constant: weighted BCE, with weight ``negative`` and ``pos_weight = positive / negative`` in
    ``BCEWithLogitsLoss`` terms, or per element :meth:`F1Weights.elementwise`. A batch without
    positives has :math:`F_1 = 0`: negatives get weight 0 and the batch teaches nothing; pass a
    running ``f1`` (e.g. over an epoch) or a ``floor``.

    Args:
        input: logits, ``(N,)`` binary or ``(N, C, ...)`` multi-label (class dim 1).
        target: same shape, in [0, 1].
        f1: use this F1 (a float, or a tensor broadcastable to the weights) instead of the
            batch's soft F1.
        per_class: one F1 per class (reduced over every dim but 1) instead of a single micro F1.
        floor: lower bound for both weights, in [0, 1/2].

    Example:
        >>> x = torch.tensor([2.0, -1.0, 0.5, -3.0])
        >>> t = torch.tensor([1.0, 0.0, 1.0, 0.0])
        >>> w = f1_class_weights(x, t)
        >>> w.f1, w.positive, w.negative
        (tensor(0.7871), tensor(0.6064), tensor(0.3936))

    Reference: J. Su, "再谈类别不平衡问题" (kexue.fm/archives/7708, 2020), eq. (5)-(9), with the
    April 2021 correction of eq. (6).
    """
    _checks.check_floating(input, "input")
    _checks.check_floating(target, "target")
    _checks.check_same_shape(input, target, "input", "target")
    _checks.check_in_unit_interval(target, "target")
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 0.5:
        raise ValueError(f"floor: expected a value in [0, 0.5], got {floor!r}")
    if per_class and input.dim() < 2:
        raise ValueError(f"per_class: needs a class dim 1, got input of shape {tuple(input.shape)}")
    if f1 is None:
        with torch.no_grad():
            p = torch.sigmoid(input.detach().to(compute_dtype(input.dtype)))
            t = target.detach().to(p.dtype)
            dims = [d for d in range(input.dim()) if d != 1] if per_class else list(range(input.dim()))
            numerator = 2 * (t * p).sum(dims)
            denominator = (t + p).sum(dims)
            score = torch.where(
                denominator > 0, numerator / torch.where(denominator > 0, denominator, 1.0), 0.0
            )
    else:
        score = torch.as_tensor(f1, dtype=compute_dtype(input.dtype), device=input.device).detach()
        if _checks.validate_args_enabled() and bool(((score < 0) | (score > 1) | torch.isnan(score)).any()):
            raise ValueError(f"f1: expected values in [0, 1], got {f1!r}")
    if per_class:
        score = score.view(1, -1, *([1] * (input.dim() - 2)))
    positive = (1 - score / 2).clamp_min(floor)
    negative = (score / 2).clamp_min(floor)
    return F1Weights(positive.to(input.dtype), negative.to(input.dtype), score.to(input.dtype))
