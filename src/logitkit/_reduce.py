"""Loss semantics shared by every single-label classification loss.

One place defines what ``target``, ``weight``, ``ignore_index``, ``label_smoothing`` and
``reduction`` mean, following :func:`torch.nn.functional.cross_entropy` exactly:

* **Targets.** An integer tensor of shape ``(N, d1, ...)`` holds class indices (entries equal to
  ``ignore_index`` are skipped); a floating tensor shaped like the input ``(N, C, d1, ...)`` holds
  class probabilities. The class dimension of the input is 1.
* **Label smoothing** ε replaces the target distribution ``q`` by ``(1 - ε) q + ε / C``.
* **Class weights** ``w`` multiply the per-class terms: a loss with per-class terms
  :math:`\\phi_{n,c}` has per-sample value :math:`\\ell_n = \\sum_c q_{n,c} w_c \\phi_{n,c}`.
* **Reduction** ``'mean'`` divides the sum by :math:`\\sum_n w_{y_n}` over non-ignored samples for
  index targets (torch's weighted mean) and by the number of samples for probability targets.
  Where torch returns NaN (an empty batch, every target ignored) logitkit returns 0 with zero
  gradients: a batch with nothing to learn from contributes nothing.
* :math:`0 \\cdot \\infty := 0`: a zero target on a ``-inf`` (masked) logit contributes nothing,
  where torch returns NaN.

Losses that fuse the softmax (:mod:`logitkit.losses.cross_entropy`) use :func:`flat_target`
and :func:`mean_denominator` directly; losses with other per-class terms (focal, TaiLr, ...) build
the term tensor and call :func:`expected_class_loss`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from logitkit import _checks

__all__ = [
    "ClassTarget",
    "FlatTarget",
    "class_target",
    "expected_class_loss",
    "flat_target",
    "mean_denominator",
    "reduce_loss",
    "smoothed_probs",
]


class ClassTarget(NamedTuple):
    """A validated single-label target.

    Exactly one of ``index`` / ``probs`` is set. For index targets, ``index`` has the ignored
    entries replaced by 0 (so it can be used in ``gather``) and ``valid`` marks the others.
    """

    index: Tensor | None
    valid: Tensor | None
    probs: Tensor | None
    num_classes: int

    @property
    def is_index(self) -> bool:
        return self.index is not None


def class_target(
    input: Tensor,
    target: Tensor,
    *,
    ignore_index: int = -100,
    name: str = "target",
) -> ClassTarget:
    """Validate ``target`` against logits ``input`` of shape ``(N, C, d1, ...)``.

    Integer targets are class indices of shape ``(N, d1, ...)``; floating targets are class
    probabilities of the input's shape with values in [0, 1].
    """
    _checks.check_floating(input, "input")
    _checks.check_tensor(target, name)
    if input.dim() < 2:
        raise ValueError(
            f"input: expected logits of shape (N, C) or (N, C, d1, ...), got {tuple(input.shape)}"
        )
    num_classes = input.shape[1]
    if target.is_floating_point():
        _checks.check_same_shape(input, target, "input", name)
        _checks.check_in_unit_interval(target, name)
        return ClassTarget(None, None, target, num_classes)
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(
            f"{name}: expected integer class indices or floating class probabilities, "
            f"got dtype {target.dtype}"
        )
    expected = (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{name}: expected class indices of shape {expected} for input of shape "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index: expected an int, got {ignore_index!r}")
    _checks.check_index_target(target, num_classes, ignore_index)
    valid = target != ignore_index
    index = target.masked_fill(~valid, 0).long()
    return ClassTarget(index, valid, None, num_classes)


def _class_view(weight: Tensor, ndim: int) -> Tensor:
    """Reshape per-class values ``(C,)`` to broadcast against ``(N, C, d1, ...)``."""
    return weight.view(1, -1, *([1] * (ndim - 2)))


def smoothed_probs(target: ClassTarget, label_smoothing: float, dtype: torch.dtype) -> Tensor:
    """The dense target distribution ``(1 - ε) q + ε / C`` of shape ``(N, C, d1, ...)``."""
    if target.probs is not None:
        probs = target.probs.to(dtype)
    else:
        assert target.index is not None and target.valid is not None
        probs = torch.zeros(
            (target.index.shape[0], target.num_classes, *target.index.shape[1:]),
            dtype=dtype,
            device=target.index.device,
        )
        probs.scatter_(1, target.index.unsqueeze(1), target.valid.unsqueeze(1).to(dtype))
    if label_smoothing > 0:
        probs = probs * (1.0 - label_smoothing) + label_smoothing / target.num_classes
        if target.valid is not None:
            probs = probs * target.valid.unsqueeze(1)
    return probs


def expected_class_loss(
    terms: Tensor,
    target: ClassTarget,
    *,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Per-sample loss :math:`\\ell_n = \\sum_c q_{n,c}\\, w_c\\, \\phi_{n,c}`.

    ``terms`` holds the per-class terms :math:`\\phi` (e.g. :math:`-\\log p_c`), shape
    ``(N, C, d1, ...)``; the result has shape ``(N, d1, ...)`` and is 0 at ignored entries. For
    index targets only the target class (and, with smoothing, the class sum) is read, never a
    dense one-hot.
    """
    num_classes = target.num_classes
    eps = float(label_smoothing)
    if target.index is not None:
        assert target.valid is not None
        picked = terms.gather(1, target.index.unsqueeze(1)).squeeze(1)
        if weight is not None:
            picked = picked * weight.to(terms.dtype)[target.index]
        loss = picked if eps == 0 else (1.0 - eps) * picked
        if eps > 0:
            weighted = terms if weight is None else terms * _class_view(weight, terms.dim())
            loss = loss + (eps / num_classes) * weighted.sum(1)
        # `where`, not a product: an ignored entry may carry an infinite term.
        return torch.where(target.valid, loss, 0.0)
    coeff = smoothed_probs(target, eps, terms.dtype)
    if weight is not None:
        coeff = coeff * _class_view(weight.to(terms.dtype), terms.dim())
    # 0 * inf := 0, with the double-`where` so that no NaN reaches the gradient either.
    zero = coeff == 0
    safe_terms = torch.where(zero, 0.0, terms)
    return (coeff * safe_terms).sum(1)


class FlatTarget(NamedTuple):
    """A :class:`ClassTarget` laid out for kernels over logits viewed as ``(N, C, S)``.

    Index targets set ``index`` ``(N, S)`` (ignored entries 0), ``coef`` ``(N, S)`` =
    :math:`(1 - \varepsilon) w_y` on valid entries and 0 on ignored ones, and ``smooth`` ``(N, S)`` =
    :math:`\varepsilon / C` on valid entries (``None`` without smoothing); probability targets set
    ``probs`` ``(N, C, S)`` only (smoothing and weights are then applied by the kernel).
    """

    index: Tensor | None
    coef: Tensor | None
    smooth: Tensor | None
    probs: Tensor | None


def flat_target(
    target: ClassTarget, samples: int, spatial: int, weight: Tensor | None, label_smoothing: float,
    dtype: torch.dtype,
) -> FlatTarget:  # fmt: skip
    """:class:`FlatTarget` of ``target`` for ``samples`` x ``spatial`` positions, in ``dtype``."""
    if target.index is None:
        assert target.probs is not None
        return FlatTarget(None, None, None, target.probs.reshape(samples, target.num_classes, spatial))
    assert target.valid is not None
    eps = float(label_smoothing)
    index = target.index.reshape(samples, spatial)
    valid = target.valid.reshape(samples, spatial).to(dtype)
    coef = valid * (1.0 - eps) if weight is None else weight.to(dtype)[index] * valid * (1.0 - eps)
    smooth = valid * (eps / target.num_classes) if eps > 0 else None
    return FlatTarget(index, coef, smooth, None)


def mean_denominator(target: ClassTarget, weight: Tensor | None, dtype: torch.dtype) -> Tensor:
    """The divisor of ``reduction='mean'`` (torch's rule, see the module docstring)."""
    if target.index is None:
        assert target.probs is not None
        count = target.probs.numel() // max(target.num_classes, 1)
        return torch.tensor(float(count), dtype=dtype, device=target.probs.device)
    assert target.valid is not None
    if weight is None:
        return target.valid.sum().to(dtype)
    picked = weight.to(dtype)[target.index]
    return torch.where(target.valid, picked, 0.0).sum()


def reduce_loss(loss: Tensor, reduction: str, denominator: Tensor | None = None) -> Tensor:
    """Reduce per-sample (or per-element) losses.

    ``'mean'`` divides the sum by ``denominator`` when given (0 when the denominator is 0), else
    averages over all entries (0 for an empty tensor).
    """
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if denominator is None:
        return total / loss.numel() if loss.numel() else total
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return total / safe
