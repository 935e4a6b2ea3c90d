"""Every public logitkit Module: ``import logitkit.nn as LN``.

This module only re-exports; each Module is defined next to its function.
"""

from logitkit.losses.cross_entropy import CrossEntropyLoss
from logitkit.ops.entropy import EntropyNormalize
from logitkit.ops.smooth import (
    SmoothAbs,
    SmoothClip,
    SmoothFloor,
    SmoothReLU,
    SmoothRound,
    SmoothSign,
    SmoothStep,
)
from logitkit.ops.softmax import LogSoftmax, LogSumExp, SmoothMax, SmoothMin, Softmax
from logitkit.ops.topk import SoftTopK

__all__ = [
    "CrossEntropyLoss",
    "EntropyNormalize",
    "LogSoftmax",
    "LogSumExp",
    "SmoothAbs",
    "SmoothClip",
    "SmoothFloor",
    "SmoothMax",
    "SmoothMin",
    "SmoothReLU",
    "SmoothRound",
    "SmoothSign",
    "SmoothStep",
    "SoftTopK",
    "Softmax",
]
