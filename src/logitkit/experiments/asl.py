"""Asymmetric loss (ASL), the multi-label comparison baseline of the ``multilabel`` experiment.

Written from the paper's formula (Ridnik et al., 2021, eqs. 2-6). With :math:`p = \\sigma(s)` and the
shifted probability :math:`p_m = \\max(p - m, 0)` (probability margin ``clip`` = :math:`m`),

.. math::

    L_+ = (1 - p)^{\\gamma_+} \\log p, \\qquad L_- = p_m^{\\gamma_-} \\log(1 - p_m), \\qquad
    \\ell = -\\big(y L_+ + (1 - y) L_-\\big),

averaged over all (sample, label) entries like ``binary_cross_entropy_with_logits`` (the reference
code returns the negated sum; Adam is insensitive to that scale). Defaults are the paper's
:math:`\\gamma_- = 4`, :math:`\\gamma_+ = 0`, :math:`m = 0.05`. With :math:`\\gamma_\\pm = 0` and
:math:`m = 0` it is BCE. It is a baseline, not a logitkit loss: it lives with the experiments.

Numerics: :math:`\\log p = \\log\\sigma(s)`, :math:`(1-p)^{\\gamma_+} = e^{\\gamma_+ \\log\\sigma(-s)}`,
:math:`\\log(1 - p_m) = \\log\\min(\\sigma(-s) + m, 1)` (at least :math:`\\log m`), and
:math:`p_m^{\\gamma_-}`
is evaluated only where :math:`p_m > 0`, so every value and gradient is finite for any logit.

Reference: T. Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021.

Example:
    >>> import torch
    >>> s = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    >>> y = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    >>> asymmetric_loss(s, y)
    tensor(0.1504)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["asymmetric_loss"]


def asymmetric_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    reduction: str = "mean",
) -> Tensor:
    """ASL on logits ``input`` and 0/1 (or soft) targets of the same shape; see the module docstring."""
    if input.shape != target.shape:
        raise ValueError(
            f"target: expected the shape of input {tuple(input.shape)}, got {tuple(target.shape)}"
        )
    if gamma_neg < 0 or gamma_pos < 0 or not 0 <= clip < 1:
        raise ValueError(
            "gamma_neg, gamma_pos, clip: expected gammas >= 0 and clip in [0, 1), "
            f"got {gamma_neg}, {gamma_pos}, {clip}"
        )
    s = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
    t = target.to(s.dtype)
    log_p = F.logsigmoid(s)
    log_q = F.logsigmoid(-s)  # log(1 - p)
    positive = log_p if gamma_pos == 0 else torch.exp(gamma_pos * log_q) * log_p
    if clip > 0:
        q_shifted = torch.clamp(torch.sigmoid(-s) + clip, max=1.0)  # 1 - p_m
        log_neg = torch.log(q_shifted)
        p_m = 1.0 - q_shifted
    else:
        log_neg = log_q
        p_m = torch.sigmoid(s)
    if gamma_neg == 0:
        negative = log_neg
    else:
        alive = p_m > 0
        safe = torch.where(alive, p_m, torch.ones_like(p_m))
        negative = torch.where(alive, safe.pow(gamma_neg), torch.zeros_like(p_m)) * log_neg
    loss = -(t * positive + (1 - t) * negative)
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    elif reduction != "none":
        raise ValueError(f"reduction: expected one of ('mean', 'sum', 'none'), got {reduction!r}")
    return loss.to(input.dtype)
