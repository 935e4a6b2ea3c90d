"""logitkit: everything between a model's logits and its decision.

Functions live in :mod:`logitkit.functional` (``import logitkit.functional as LF``) and Modules in
:mod:`logitkit.nn`; the most used names are re-exported here.
"""

from logitkit._checks import set_validate_args
from logitkit.losses.cross_entropy import cross_entropy
from logitkit.losses.multilabel import zlpr_loss
from logitkit.ops.softmax import log_softmax, logsumexp, smooth_max, smooth_min, softmax

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "cross_entropy",
    "log_softmax",
    "logsumexp",
    "set_validate_args",
    "smooth_max",
    "smooth_min",
    "softmax",
    "zlpr_loss",
]
