"""Every public logitkit function: ``import logitkit.functional as LF``.

This module only re-exports; each function is defined (and documented) in its own module.
"""

from logitkit.losses.cross_entropy import cross_entropy
from logitkit.losses.exact import exact_loss
from logitkit.losses.flooding import flooding
from logitkit.losses.focal import focal_loss, sigmoid_focal_loss
from logitkit.losses.margin import am_softmax_loss, simpler_a_softmax_loss
from logitkit.losses.multilabel import sparse_zlpr_loss, zlpr_decode, zlpr_loss, zlpr_probs
from logitkit.losses.prior import (
    class_balanced_weights,
    class_prior,
    f1_class_weights,
    init_bias_with_prior,
    inverse_frequency_weights,
    logit_adjusted_cross_entropy,
)
from logitkit.losses.smooth_metrics import f1_weighted_bce, smooth_accuracy_loss, smooth_f1_loss
from logitkit.losses.tailr import tailr_loss
from logitkit.losses.truncated import (
    softened_binary_cross_entropy,
    softened_cross_entropy,
    truncated_binary_cross_entropy,
    truncated_cross_entropy,
)
from logitkit.models.attention import entropy_invariant_attention, entropy_invariant_scale
from logitkit.models.closed_form import closed_form_softmax_regression
from logitkit.models.masking import drop_tokens, mae_key_mask, mlm_consistent_embeddings
from logitkit.models.vae import importance_log_likelihood, iwae_loss
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
from logitkit.posthoc.adjust import adjust_logits
from logitkit.posthoc.can import can, topk_uncertainty

__all__ = [
    "adjust_logits",
    "am_softmax_loss",
    "can",
    "class_balanced_weights",
    "class_prior",
    "closed_form_softmax_regression",
    "cross_entropy",
    "drop_tokens",
    "entropy",
    "entropy_invariant_attention",
    "entropy_invariant_scale",
    "entropy_normalize",
    "exact_loss",
    "f1_class_weights",
    "f1_weighted_bce",
    "flooding",
    "focal_loss",
    "importance_log_likelihood",
    "init_bias_with_prior",
    "inverse_frequency_weights",
    "iwae_loss",
    "log_softmax",
    "logit_adjusted_cross_entropy",
    "logsumexp",
    "mae_key_mask",
    "mlm_consistent_embeddings",
    "perturb_argmax_probs",
    "perturb_argmax_sample",
    "sigmoid_focal_loss",
    "simpler_a_softmax_loss",
    "smooth_abs",
    "smooth_accuracy_loss",
    "smooth_clip",
    "smooth_f1_loss",
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
    "softened_binary_cross_entropy",
    "softened_cross_entropy",
    "softmax",
    "sparse_zlpr_loss",
    "tailr_loss",
    "topk_uncertainty",
    "truncated_binary_cross_entropy",
    "truncated_cross_entropy",
    "zlpr_decode",
    "zlpr_loss",
    "zlpr_probs",
]
