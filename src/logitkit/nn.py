"""Every public logitkit Module: ``import logitkit.nn as LN``.

This module only re-exports; each Module is defined next to its function.
"""

from logitkit.losses.cross_entropy import CrossEntropyLoss
from logitkit.losses.focal import FocalLoss, SigmoidFocalLoss
from logitkit.losses.prior import ClassPrior, LogitAdjustedCrossEntropyLoss
from logitkit.losses.truncated import (
    SoftenedBinaryCrossEntropyLoss,
    SoftenedCrossEntropyLoss,
    TruncatedBinaryCrossEntropyLoss,
    TruncatedCrossEntropyLoss,
)
from logitkit.ops.softmax import LogSoftmax, LogSumExp, SmoothMax, SmoothMin, Softmax

__all__ = [
    "ClassPrior",
    "CrossEntropyLoss",
    "FocalLoss",
    "LogSoftmax",
    "LogSumExp",
    "LogitAdjustedCrossEntropyLoss",
    "SigmoidFocalLoss",
    "SmoothMax",
    "SmoothMin",
    "SoftenedBinaryCrossEntropyLoss",
    "SoftenedCrossEntropyLoss",
    "Softmax",
    "TruncatedBinaryCrossEntropyLoss",
    "TruncatedCrossEntropyLoss",
]
