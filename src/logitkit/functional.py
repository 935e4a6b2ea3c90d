"""Every public logitkit function: ``import logitkit.functional as LF``.

This module only re-exports; each function is defined (and documented) in its own module.
"""

from logitkit.losses.cross_entropy import cross_entropy
from logitkit.ops.entropy import entropy, entropy_normalize
from logitkit.ops.perturb import perturb_argmax_probs, perturb_argmax_sample
from logitkit.ops.smooth import (
    smooth_abs,
    smooth_clip,
    smooth_floor,
    smooth_relu,
    smooth_round,
    smooth_sign,
    smooth_step,
)
from logitkit.ops.softmax import (
    log_softmax,
    logsumexp,
    smooth_max,
    smooth_min,
    soft_argmax,
    softmax,
)
from logitkit.ops.topk import soft_topk, soft_topk_iterative, soft_topk_sum

__all__ = [
    "cross_entropy",
    "entropy",
    "entropy_normalize",
    "log_softmax",
    "logsumexp",
    "perturb_argmax_probs",
    "perturb_argmax_sample",
    "smooth_abs",
    "smooth_clip",
    "smooth_floor",
    "smooth_max",
    "smooth_min",
    "smooth_relu",
    "smooth_round",
    "smooth_sign",
    "smooth_step",
    "soft_argmax",
    "soft_topk",
    "soft_topk_iterative",
    "soft_topk_sum",
    "softmax",
]
