"""Every public logitkit Module: ``import logitkit.nn as LN``.

This module only re-exports; each Module is defined next to its function.
"""

from logitkit.losses.cross_entropy import CrossEntropyLoss
from logitkit.models.attention import EntropyInvariantMultiheadAttention
from logitkit.models.vae import VAE
from logitkit.ops.softmax import LogSoftmax, LogSumExp, SmoothMax, SmoothMin, Softmax

__all__ = [
    "VAE",
    "CrossEntropyLoss",
    "EntropyInvariantMultiheadAttention",
    "LogSoftmax",
    "LogSumExp",
    "SmoothMax",
    "SmoothMin",
    "Softmax",
]
