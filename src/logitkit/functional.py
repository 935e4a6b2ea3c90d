"""Every public logitkit function: ``import logitkit.functional as LF``.

This module only re-exports; each function is defined (and documented) in its own module.
"""

from logitkit.losses.cross_entropy import cross_entropy
from logitkit.losses.focal import focal_loss, sigmoid_focal_loss
from logitkit.losses.prior import (
    class_balanced_weights,
    class_prior,
    f1_class_weights,
    init_bias_with_prior,
    inverse_frequency_weights,
    logit_adjusted_cross_entropy,
)
from logitkit.losses.truncated import (
    softened_binary_cross_entropy,
    softened_cross_entropy,
    truncated_binary_cross_entropy,
    truncated_cross_entropy,
)
from logitkit.ops.softmax import (
    log_softmax,
    logsumexp,
    smooth_max,
    smooth_min,
    soft_argmax,
    softmax,
)
from logitkit.posthoc.adjust import adjust_logits
from logitkit.posthoc.can import can, topk_uncertainty

__all__ = [
    "adjust_logits",
    "can",
    "class_balanced_weights",
    "class_prior",
    "cross_entropy",
    "f1_class_weights",
    "focal_loss",
    "init_bias_with_prior",
    "inverse_frequency_weights",
    "log_softmax",
    "logit_adjusted_cross_entropy",
    "logsumexp",
    "sigmoid_focal_loss",
    "smooth_max",
    "smooth_min",
    "soft_argmax",
    "softened_binary_cross_entropy",
    "softened_cross_entropy",
    "softmax",
    "topk_uncertainty",
    "truncated_binary_cross_entropy",
    "truncated_cross_entropy",
]
