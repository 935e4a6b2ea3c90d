"""``ClosedFormClassifier``: closed-form softmax regression (= LDA) as a scikit-learn estimator.

The math, numerics and references are in :mod:`logitkit.models.closed_form`; this module adapts
:func:`~logitkit.models.closed_form.closed_form_softmax_regression` to the scikit-learn API for
NumPy and torch inputs. It derives from scikit-learn's ``BaseEstimator`` and ``ClassifierMixin``
when scikit-learn is installed (stand-ins otherwise), so importing it imports scikit-learn;
:mod:`logitkit.models` loads it on first use.

Reference: J. Su, "概率视角下的线性模型：逻辑回归有解析解吗？" (kexue.fm/archives/8578, 2021).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from logitkit import _checks
from logitkit.models._estimator import (
    BaseEstimator,
    ClassifierMixin,
    check_features,
    check_is_fitted,
    check_labels,
)
from logitkit.models.closed_form import _check_options, _solve

__all__ = ["ClosedFormClassifier"]


class ClosedFormClassifier(ClassifierMixin, BaseEstimator):
    r"""Closed-form softmax / logistic regression with the scikit-learn estimator API.

    ``fit`` computes :func:`closed_form_softmax_regression` in float64, without iterations: one
    pass over the data and a Cholesky factorisation of the scaled :math:`d \times d` covariance
    (eigendecompositions when it is singular; :math:`n \times n` matrices when there are fewer
    samples than features). It has the same decision function as
    ``LinearDiscriminantAnalysis(solver="lsqr")``. A fast linear probe for frozen features,
    especially few-shot (post 8578: a smaller train/validation gap than gradient descent).

    Inputs may be NumPy arrays (or array-likes) or torch tensors. Fitted on tensors, the arrays
    ``coef_``, ``intercept_``, ``means_`` and ``priors_`` are float64 tensors on the features'
    device; ``classes_`` is a tensor when ``y`` is one, else a NumPy array. ``decision_function``
    and ``predict_proba`` return the namespace of their input (torch tensors keep a floating
    input's dtype), ``predict`` the namespace of ``classes_``.

    Args:
        whiten: solve in whitened coordinates (default, as the post recommends); predictions do not
            depend on it unless the covariance is singular.
        ridge: :math:`\lambda \ge 0` in units of the mean variance, or ``"auto"`` (Ledoit-Wolf
            shrinkage); see :func:`closed_form_softmax_regression`. A singular covariance with
            ``ridge=0`` uses the pseudo-inverse (with a warning). For few-shot probes, where
            :math:`N` is not much larger than :math:`d`, use ``"auto"`` or a ridge around 1.
        covariance: ``"pooled"`` (LDA, default) or ``"total"`` (the post's binary variant).
        priors: class probabilities in the order of ``classes_`` (default: class frequencies).
            They only move the biases (by :math:`\ln(p_i / \text{freq}_i)`): the shared covariance
            stays the count-weighted pooled estimate, whereas scikit-learn's LDA weights the
            class covariances by the priors.

    Attributes:
        classes_, n_features_in_: as in scikit-learn.
        coef_, intercept_: shapes ``(1, d)`` and ``(1,)`` for two classes (the log-odds of
            ``classes_[1]``), ``(C, d)`` and ``(C,)`` otherwise.
        means_, priors_: class means ``(C, d)`` and the priors used ``(C,)``.
        shrinkage_: the Ledoit-Wolf intensity :math:`\alpha` for ``ridge="auto"``, else ``None``.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = ClosedFormClassifier().fit(X, y)
        >>> round(clf.score(X, y), 2)
        0.98
        >>> head = clf.to_linear()   # warm-start a torch classification head
        >>> head
        Linear(in_features=4, out_features=3, bias=True)

    Reference: J. Su, kexue.fm/archives/8578 (2021).
    """

    def __init__(
        self,
        *,
        whiten: bool = True,
        ridge: float | str = 0.0,
        covariance: str = "pooled",
        priors: Any = None,
    ) -> None:
        self.whiten = whiten
        self.ridge = ridge
        self.covariance = covariance
        self.priors = priors

    def fit(self, X: Any, y: Any) -> ClosedFormClassifier:
        """Fit to features ``X`` ``(n_samples, n_features)`` and labels ``y`` ``(n_samples,)``."""
        name = type(self).__name__
        features = check_features(X, name)
        classes, index = check_labels(y, features.shape[0], name)
        is_torch = isinstance(features, Tensor)
        x = features.to(torch.float64) if is_torch else torch.from_numpy(features)
        index = index.to(x.device)
        priors = None
        if self.priors is not None:
            priors = torch.as_tensor(_numpy(self.priors), dtype=torch.float64, device=x.device)
            _checks.check_class_weight(priors, len(classes), "priors")
        _check_options(self.whiten, self.ridge, self.covariance)
        with torch.no_grad():
            weight, bias, dropped, shrinkage = _solve(
                x, index, len(classes), self.whiten, self.ridge, self.covariance, priors, fast=True
            )
        if dropped is not None and int(dropped) > 0:
            warnings.warn(
                f"{name}: the {self.covariance} covariance is singular ({int(dropped)} direction(s) "
                f"with no within-class variance, e.g. n_features >= n_samples: {x.shape[1]} features, "
                f"{x.shape[0]} samples); using the pseudo-inverse (minimum-norm solution, as LDA's "
                "lsqr solver). Pass ridge > 0 for a regularised solution.",
                UserWarning,
                stacklevel=2,
            )
        counts = torch.bincount(index, minlength=len(classes)).to(torch.float64)
        means = torch.zeros(len(classes), x.shape[1], dtype=x.dtype, device=x.device)
        means = means.index_add_(0, index, x) / counts.unsqueeze(1)
        used_priors = counts / counts.sum() if priors is None else priors / priors.sum()
        self._class_coef = weight
        self._class_intercept = bias
        if len(classes) == 2:
            coef, intercept = (weight[1] - weight[0]).unsqueeze(0), (bias[1] - bias[0]).unsqueeze(0)
        else:
            coef, intercept = weight, bias
        convert = (lambda t: t) if is_torch else (lambda t: t.numpy())
        self.classes_ = classes
        self.n_features_in_ = int(x.shape[1])
        self.coef_ = convert(coef)
        self.intercept_ = convert(intercept)
        self.means_ = convert(means)
        self.priors_ = convert(used_priors)
        self.shrinkage_ = None if shrinkage is None else float(shrinkage)
        return self

    def _logits(self, X: Any) -> tuple[Tensor, Any]:
        """float64 class scores ``(n, C)`` and the validated input."""
        check_is_fitted(self, "coef_")
        features = check_features(X, type(self).__name__, self.n_features_in_)
        if isinstance(features, Tensor):
            x = features.to(torch.float64)
            weight, bias = self._class_coef.to(x.device), self._class_intercept.to(x.device)
        else:
            x = torch.from_numpy(features)
            weight, bias = self._class_coef.cpu(), self._class_intercept.cpu()
        return x @ weight.T + bias, features

    @staticmethod
    def _output(value: Tensor, features: Any) -> Any:
        if isinstance(features, Tensor):
            return value.to(features.dtype)
        return value.cpu().numpy()

    def decision_function(self, X: Any) -> Any:
        """Scores: the log-odds of ``classes_[1]`` ``(n,)`` for two classes, else ``(n, C)``."""
        logits, features = self._logits(X)
        if logits.shape[1] == 2:
            logits = logits[:, 1] - logits[:, 0]
        return self._output(logits, features)

    def predict_log_proba(self, X: Any) -> Any:
        """Log posterior class probabilities ``(n, C)``."""
        logits, features = self._logits(X)
        return self._output(torch.log_softmax(logits, 1), features)

    def predict_proba(self, X: Any) -> Any:
        """Posterior class probabilities ``(n, C)`` (softmax of the class scores)."""
        logits, features = self._logits(X)
        return self._output(torch.softmax(logits, 1), features)

    def predict(self, X: Any) -> Any:
        """The class of highest posterior probability, as labels from ``classes_``."""
        logits, _ = self._logits(X)
        index = logits.argmax(1)
        if isinstance(self.classes_, Tensor):
            return self.classes_[index.to(self.classes_.device)]
        return self.classes_[index.cpu().numpy()]

    def to_linear(
        self,
        *,
        single_logit: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> nn.Linear:
        """A ``torch.nn.Linear`` initialised with the fitted scores, to warm-start a trained head.

        Multi-class: ``C`` outputs, the class scores (for softmax / cross-entropy). Two classes:
        one output, the log-odds of ``classes_[1]`` (for ``binary_cross_entropy_with_logits``),
        or with ``single_logit=False`` the two softmax scores.
        """
        check_is_fitted(self, "coef_")
        if len(self.classes_) == 2 and single_logit:
            weight, bias = _tensor(self.coef_), _tensor(self.intercept_)
        else:
            weight, bias = self._class_coef, self._class_intercept
        layer = nn.Linear(weight.shape[1], weight.shape[0], device=device, dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        return layer

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]  # only called by scikit-learn
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else torch.from_numpy(np.asarray(value))
