r"""TaiLr: cross-entropy with the gradient of low-probability targets damped.

With :math:`p = p_\theta(y \mid x)` and :math:`\gamma \in [0, 1)`,

.. math::

    \mathcal L_\gamma = -\frac{\log\big(\gamma + (1 - \gamma)\, p\big)}{1 - \gamma},
    \qquad
    \nabla \mathcal L_\gamma = -\underbrace{\frac{p}{\gamma + (1 - \gamma)\, p}}_{w\ \in\ [0, 1]}
    \nabla \log p .

:math:`\gamma = 0` is cross-entropy; :math:`\gamma \to 1` tends to :math:`1 - p` (the smooth
accuracy loss; the post writes :math:`-p`, which has the same gradient). The weight :math:`w`
interpolates between CE's :math:`1/p` and accuracy's constant factor, so a wrong (possibly mislabelled)
low-probability sample pushes less than under CE while confident samples train as under CE.

Two forms, both provided:

* ``form="closed"``: the loss above.
* ``form="weighted"`` (the paper's gradient-space form and the official code):
  :math:`-\mathrm{sg}\big[\max(b, w)\big] \log p` with a floor :math:`b` = ``min_weight``
  (:math:`\mathrm{sg}` = stop-gradient). At :math:`b = 0` its gradient equals the closed form's;
  its value differs (it is a surrogate whose gradient is what matters).

Numerics. Everything is a function of :math:`u = -\log p \ge 0` from the (fused) log-softmax:
:math:`\log(\gamma + (1-\gamma)p)` is :math:`\mathrm{log1p}\big((1-\gamma)\,\mathrm{expm1}(-u)\big)` for
:math:`p > 1/2` (accurate near :math:`p = 1` and :math:`\gamma \to 1`) and
:math:`\mathrm{logaddexp}(\log\gamma, \log(1-\gamma) - u)` otherwise (accurate for tiny :math:`p` and
:math:`\gamma`, e.g. the paper's :math:`10^{-7}`). At :math:`\gamma = 0` both forms reduce to the
cross-entropy computation itself, so loss and gradient equal :func:`~logitkit.functional.cross_entropy`
exactly.

Reference: J. Su, "缓解交叉熵过度自信的一个简明方案" (kexue.fm/archives/9526, 2023); H. Ji et al.,
"Tailoring Language Generation Models under Total Variation Distance" (ICLR 2023), code
thu-coai/TaiLr.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from logitkit import _checks, _reduce
from logitkit.losses._base import Loss
from logitkit.losses._softmax_fused import class_term_loss
from logitkit.losses.cross_entropy import compute_dtype, cross_entropy

__all__ = ["TaiLrLoss", "tailr_loss"]

_FORMS = ("closed", "weighted")
_LOG2 = math.log(2.0)


def _log_mixture(u: Tensor, gamma: float) -> Tensor:
    r""":math:`\log(\gamma + (1 - \gamma) e^{-u})` for :math:`u \ge 0` (``+inf`` too), :math:`\gamma > 0`."""
    near_one = u < _LOG2
    u_near = torch.where(near_one, u, 0.0)  # double `where`: no inf reaches the unused branch
    high = torch.log1p((1.0 - gamma) * torch.expm1(-u_near))
    log_gamma = torch.tensor(math.log(gamma), dtype=u.dtype, device=u.device)
    low = torch.logaddexp(math.log1p(-gamma) - u, log_gamma)
    return torch.where(near_one, high, low)


def _tailr_terms(u: Tensor, gamma: float, form: str, min_weight: float) -> Tensor:
    """Per-class (or per-sample) TaiLr terms from negative log-probabilities ``u``."""
    if form == "closed":
        return _log_mixture(u, gamma) / (gamma - 1.0)
    weight = torch.exp(-u.detach() - _log_mixture(u.detach(), gamma))
    if min_weight > 0:
        weight = weight.clamp_min(min_weight)
    # w -> 0 as p -> 0 faster than -log p grows: a zero weight on an infinite term is 0.
    return torch.where(weight == 0, 0.0, weight * u)


def tailr_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float,
    min_weight: float = 0.0,
    form: str = "closed",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""TaiLr loss with cross-entropy semantics (targets, weights, smoothing, reductions, N-D).

    .. math::

        \ell_n = \sum_c q_{n,c}\, w_c\, \phi(p_{n,c}), \qquad
        \phi(p) = -\frac{\log(\gamma + (1-\gamma) p)}{1-\gamma} \ \ (\texttt{closed}), \quad
        \phi(p) = -\mathrm{sg}\Big[\max\Big(b, \frac{p}{\gamma + (1-\gamma)p}\Big)\Big] \log p
        \ \ (\texttt{weighted}),

    with :math:`p = \mathrm{softmax}(x)` over dim 1 and :math:`q` the (label-smoothed) target
    distribution, exactly as in :func:`~logitkit.functional.cross_entropy` (see
    :mod:`logitkit._reduce`). With label smoothing every class term is a TaiLr term; the official
    code instead adds an *unweighted* smoothing term, which is
    ``(1 - eps) * tailr_loss(..., form="weighted") + eps * cross_entropy(x, y, label_smoothing=1.0)``
    (docs/tailr.md).

    Args:
        input: logits ``(N, C)``, ``(N, C, d1, ...)`` (e.g. token logits ``(N, V, T)``) or ``(C,)``.
        target: class indices ``(N, d1, ...)`` or class probabilities shaped like ``input``.
        gamma: :math:`\gamma \in [0, 1)`; 0 is cross-entropy. Paper: :math:`10^{-7}` (language
            modelling), 0.1 (translation), 0.8 (summarisation).
        min_weight: the floor :math:`b \in [0, 1]` of ``form="weighted"`` (paper: 0.2 or 0.3).
        form: ``"closed"`` (the loss :math:`\mathcal L_\gamma`) or ``"weighted"`` (stop-gradient
            weight times :math:`-\log p`); equal gradients at ``min_weight=0``.
        weight, ignore_index, reduction, label_smoothing: as in
            :func:`torch.nn.functional.cross_entropy`.

    Returns:
        The reduced loss, or per-sample losses ``(N, d1, ...)`` for ``reduction="none"``.

    Example:
        >>> x = torch.log(torch.tensor([[0.3, 0.7]]))
        >>> tailr_loss(x, torch.tensor([0]), gamma=0.1)
        tensor(1.1047)
        >>> tailr_loss(x, torch.tensor([0]), gamma=0.8)
        tensor(0.7541)

    Reference: kexue.fm/archives/9526; Ji et al., ICLR 2023 (arXiv 2302.13344).
    """
    _checks.check_number(gamma, "gamma", low=0.0, high=1.0, high_open=True)
    _checks.check_number(min_weight, "min_weight", low=0.0, high=1.0)
    _checks.check_one_of(form, "form", _FORMS)
    if form == "closed" and min_weight > 0:
        raise ValueError(
            f"min_weight: a floor needs form='weighted' (the closed form has none), "
            f"got min_weight={min_weight!r} with form='closed'"
        )
    if float(gamma) == 0.0:
        # Both forms are cross-entropy itself (w = 1): the same kernel, bit for bit.
        return cross_entropy(
            input,
            target,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
        )
    _checks.check_floating(input, "input")
    _checks.check_tensor(target, "target")
    _checks.check_label_smoothing(label_smoothing)
    _checks.check_reduction(reduction)
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    tgt = _reduce.class_target(input, target, ignore_index=ignore_index)
    if weight is not None:
        _checks.check_class_weight(weight, tgt.num_classes)
    gamma, min_weight = float(gamma), float(min_weight)
    cd = compute_dtype(input.dtype)
    w = None if weight is None else weight.to(cd)

    if tgt.index is not None and label_smoothing == 0:
        # Only the target class counts: a scalar function of the fused per-sample cross-entropy.
        nll = cross_entropy(input, target, ignore_index=ignore_index, reduction="none").to(cd)
        per_sample = _tailr_terms(nll, gamma, form, min_weight)
        if w is not None:
            per_sample = per_sample * w[tgt.index]
    else:
        # Every class term counts: one fused pass over the logits (losses/_softmax_fused.py).
        kind, params = ("tailr", (gamma,)) if form == "closed" else ("tailr_weighted", (gamma, min_weight))
        per_sample = class_term_loss(
            input, tgt, kind=kind, params=params, weight=w, label_smoothing=label_smoothing
        )
    denominator = _reduce.mean_denominator(tgt, w, cd) if reduction == "mean" else None
    out = _reduce.reduce_loss(per_sample, reduction, denominator)
    if unbatched and reduction == "none":
        out = out.squeeze(0)
    return out.to(input.dtype)


class TaiLrLoss(Loss):
    """Module form of :func:`tailr_loss` (``weight`` is a buffer)."""

    def __init__(
        self,
        *,
        gamma: float,
        min_weight: float = 0.0,
        form: str = "closed",
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight=weight, reduction=reduction)
        _checks.check_number(gamma, "gamma", low=0.0, high=1.0, high_open=True)
        _checks.check_number(min_weight, "min_weight", low=0.0, high=1.0)
        _checks.check_one_of(form, "form", _FORMS)
        _checks.check_label_smoothing(label_smoothing)
        self.gamma = gamma
        self.min_weight = min_weight
        self.form = form
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tailr_loss(
            input,
            target,
            gamma=self.gamma,
            min_weight=self.min_weight,
            form=self.form,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )
