"""Every public logitkit Module: ``import logitkit.nn as LN``.

This module only re-exports; each Module is defined next to its function.
"""

from logitkit.losses.cross_entropy import CrossEntropyLoss
from logitkit.losses.multilabel import SparseZLPRLoss, ZLPRLoss
from logitkit.ops.softmax import LogSoftmax, LogSumExp, SmoothMax, SmoothMin, Softmax

__all__ = [
    "CrossEntropyLoss",
    "LogSoftmax",
    "LogSumExp",
    "SmoothMax",
    "SmoothMin",
    "Softmax",
    "SparseZLPRLoss",
    "ZLPRLoss",
]
