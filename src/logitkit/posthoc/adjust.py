r"""Post-hoc logit adjustment: correct a trained model's logits for the training label prior.

A model trained with plain cross-entropy estimates :math:`p(y|x) \propto p(x|y)\, p(y)`, so its
arg-max favours frequent classes. Subtracting the scaled log-prior,

.. math::

    \tilde f_y(x) = f_y(x) - \tau \log p(y),

targets :math:`\arg\max_y p(x|y)`, the rule that minimises the balanced (per-class averaged) error
when :math:`\tau = 1`. It needs no retraining and is the post-hoc twin of the logit-adjusted loss
(:func:`logitkit.losses.prior.logit_adjusted_cross_entropy`): train on :math:`f + \tau\log p` and
predict with :math:`f`, or train on :math:`f` and predict with :math:`f - \tau\log p`.

References: A. K. Menon et al., "Long-tail learning via logit adjustment" (ICLR 2021,
arXiv:2007.07314), eq. (8)-(9); J. Su, "通过互信息思想来缓解类别不平衡问题" (kexue.fm/archives/7615,
2020), eq. (9).
"""

from __future__ import annotations

import torch
from torch import Tensor

from logitkit import _checks
from logitkit.losses.prior import _check_tau, check_prior

__all__ = ["adjust_logits"]


def adjust_logits(logits: Tensor, prior: Tensor, tau: float = 1.0, *, dim: int | None = None) -> Tensor:
    r"""Post-hoc logit adjustment :math:`f_y - \tau \log p(y)` along the class dimension.

    .. math::

        \tilde f_{n,y} = f_{n,y} - \tau \log p(y).

    :math:`\tau = 0` is the identity; :math:`\tau = 1` after plain cross-entropy training gives
    the balanced-error rule :math:`\arg\max_y \tilde f_y`. A negative :math:`\tau` adds the prior
    back: :math:`\tau = -1` on a model trained with the logit-adjusted loss gives the rule for the
    overall accuracy on data distributed like the training set (post 7615, eq. (9)). Softmax of
    the result gives the class probabilities under a uniform test prior.

    Args:
        logits: ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``.
        prior: ``(C,)`` positive training-set class probabilities summing to 1
            (:func:`~logitkit.functional.class_prior`).
        tau: :math:`\tau`, any finite number (default 1).
        dim: the class dimension (default 1, or 0 for 1-D logits).

    Returns:
        The adjusted logits, same shape and dtype.

    Example:
        >>> logits = torch.tensor([[2.0, 1.5, 0.0]])
        >>> prior = torch.tensor([0.8, 0.15, 0.05])
        >>> adjust_logits(logits, prior)
        tensor([[2.2231, 3.3971, 2.9957]])

    Reference: Menon et al. (2021), eq. (9).
    """
    _checks.check_floating(logits, "logits")
    tau = _check_tau(tau, allow_negative=True)
    if logits.dim() == 0:
        raise ValueError("logits: expected a tensor with a class dimension, got a 0-d tensor")
    dim = (1 if logits.dim() > 1 else 0) if dim is None else _checks.check_dim(logits, dim)
    check_prior(prior, logits.shape[dim])
    if prior.requires_grad:
        raise ValueError("prior: treated as a constant; pass prior.detach()")
    cd = torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype
    shape = [1] * logits.dim()
    shape[dim] = -1
    shift = torch.log(prior.to(cd)).view(shape) * tau
    return (logits.to(cd) - shift).to(logits.dtype)
