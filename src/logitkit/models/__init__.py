"""Small models the theory produces (closed-form classifier, attention, VAE, MLM/MAE masking).

Functions are re-exported by :mod:`logitkit.functional` and Modules by :mod:`logitkit.nn`; the
scikit-learn estimator :class:`ClosedFormClassifier` lives here.
"""

from logitkit.models.closed_form import ClosedFormClassifier

__all__ = ["ClosedFormClassifier"]
