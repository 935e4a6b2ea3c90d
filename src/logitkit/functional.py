"""Every public logitkit function: ``import logitkit.functional as LF``.

This module only re-exports; each function is defined (and documented) in its own module.
"""

from logitkit.losses.cross_entropy import cross_entropy
from logitkit.losses.multilabel import sparse_zlpr_loss, zlpr_decode, zlpr_loss, zlpr_probs
from logitkit.ops.softmax import (
    log_softmax,
    logsumexp,
    smooth_max,
    smooth_min,
    soft_argmax,
    softmax,
)

__all__ = [
    "cross_entropy",
    "log_softmax",
    "logsumexp",
    "smooth_max",
    "smooth_min",
    "soft_argmax",
    "softmax",
    "sparse_zlpr_loss",
    "zlpr_decode",
    "zlpr_loss",
    "zlpr_probs",
]
