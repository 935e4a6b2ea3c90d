"""Small models the theory produces (closed-form classifier, attention, VAE, MLM/MAE masking).

Functions are re-exported by :mod:`logitkit.functional` and Modules by :mod:`logitkit.nn`. The
scikit-learn estimator :class:`~logitkit.models.closed_form_classifier.ClosedFormClassifier` is
available here; it is loaded on first access, since it imports scikit-learn when installed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClosedFormClassifier"]


def __getattr__(name: str) -> Any:
    if name == "ClosedFormClassifier":
        from logitkit.models.closed_form_classifier import ClosedFormClassifier

        return ClosedFormClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
