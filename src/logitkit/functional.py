"""Every public logitkit function: ``import logitkit.functional as LF``.

This module only re-exports; each function is defined (and documented) in its own module.
"""

from logitkit.losses.cross_entropy import cross_entropy
from logitkit.losses.exact import exact_loss
from logitkit.losses.flooding import flooding
from logitkit.losses.margin import am_softmax_loss, simpler_a_softmax_loss
from logitkit.losses.multilabel import sparse_zlpr_loss, zlpr_decode, zlpr_loss, zlpr_probs
from logitkit.losses.smooth_metrics import f1_weighted_bce, smooth_accuracy_loss, smooth_f1_loss
from logitkit.losses.tailr import tailr_loss
from logitkit.models.attention import entropy_invariant_attention, entropy_invariant_scale
from logitkit.models.closed_form import closed_form_softmax_regression
from logitkit.models.masking import drop_tokens, mae_key_mask, mlm_consistent_embeddings
from logitkit.models.vae import importance_log_likelihood, iwae_loss
from logitkit.ops.softmax import log_softmax, logsumexp, smooth_max, smooth_min, soft_argmax, softmax

__all__ = [
    "am_softmax_loss",
    "closed_form_softmax_regression",
    "cross_entropy",
    "drop_tokens",
    "entropy_invariant_attention",
    "entropy_invariant_scale",
    "exact_loss",
    "f1_weighted_bce",
    "flooding",
    "importance_log_likelihood",
    "iwae_loss",
    "log_softmax",
    "logsumexp",
    "mae_key_mask",
    "mlm_consistent_embeddings",
    "simpler_a_softmax_loss",
    "smooth_accuracy_loss",
    "smooth_f1_loss",
    "smooth_max",
    "smooth_min",
    "soft_argmax",
    "softmax",
    "sparse_zlpr_loss",
    "tailr_loss",
    "zlpr_decode",
    "zlpr_loss",
    "zlpr_probs",
]
