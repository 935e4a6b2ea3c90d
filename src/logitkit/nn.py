"""Every public logitkit Module: ``import logitkit.nn as LN``.

This module only re-exports; each Module is defined next to its function.
"""

from logitkit.losses.cross_entropy import CrossEntropyLoss
from logitkit.losses.exact import ExactLoss
from logitkit.losses.flooding import Flooding
from logitkit.losses.focal import FocalLoss, SigmoidFocalLoss
from logitkit.losses.margin import AMSoftmaxLoss, CosineClassifier, SimplerASoftmaxLoss
from logitkit.losses.multilabel import SparseZLPRLoss, ZLPRLoss
from logitkit.losses.prior import ClassPrior, LogitAdjustedCrossEntropyLoss
from logitkit.losses.smooth_metrics import F1WeightedBCELoss, SmoothAccuracyLoss, SmoothF1Loss
from logitkit.losses.tailr import TaiLrLoss
from logitkit.losses.truncated import (
    SoftenedBinaryCrossEntropyLoss,
    SoftenedCrossEntropyLoss,
    TruncatedBinaryCrossEntropyLoss,
    TruncatedCrossEntropyLoss,
)
from logitkit.models.attention import EntropyInvariantMultiheadAttention
from logitkit.models.vae import VAE
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
    "VAE",
    "AMSoftmaxLoss",
    "ClassPrior",
    "CosineClassifier",
    "CrossEntropyLoss",
    "EntropyInvariantMultiheadAttention",
    "EntropyNormalize",
    "ExactLoss",
    "F1WeightedBCELoss",
    "Flooding",
    "FocalLoss",
    "LogSoftmax",
    "LogSumExp",
    "LogitAdjustedCrossEntropyLoss",
    "SigmoidFocalLoss",
    "SimplerASoftmaxLoss",
    "SmoothAbs",
    "SmoothAccuracyLoss",
    "SmoothClip",
    "SmoothF1Loss",
    "SmoothFloor",
    "SmoothMax",
    "SmoothMin",
    "SmoothReLU",
    "SmoothRound",
    "SmoothSign",
    "SmoothStep",
    "SoftTopK",
    "SoftenedBinaryCrossEntropyLoss",
    "SoftenedCrossEntropyLoss",
    "Softmax",
    "SparseZLPRLoss",
    "TaiLrLoss",
    "TruncatedBinaryCrossEntropyLoss",
    "TruncatedCrossEntropyLoss",
    "ZLPRLoss",
]
