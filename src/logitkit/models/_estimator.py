"""scikit-learn estimator plumbing that works with or without scikit-learn installed.

logitkit's core depends on torch and NumPy only. An estimator following the scikit-learn API
should *be* a scikit-learn estimator when scikit-learn is present (tags, ``clone``, pipelines,
``check_estimator``), so this module re-exports scikit-learn's ``BaseEstimator`` and
``ClassifierMixin`` when they can be imported, and stand-ins with the same behaviour otherwise
(``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature, ``score``, and
``__sklearn_tags__``). Only the estimator modules import it, so ``logitkit.functional`` never
pays for importing scikit-learn.

Input validation is our own (one code path for NumPy and torch inputs); its messages contain the
phrases scikit-learn's estimator checks look for (``Input X contains NaN``, ``Unknown label
type``, ``X has 3 features, but ... is expecting``).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from logitkit import _checks


class _NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit`` (without scikit-learn installed)."""


class _DataConversionWarning(UserWarning):
    """A column-vector ``y`` was flattened (without scikit-learn installed)."""


class _BaseEstimator:
    """``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature (scikit-learn's
    conventions: every ``__init__`` argument is stored unchanged under its own name)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        params = inspect.signature(init).parameters.values()
        return sorted(p.name for p in params if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> _BaseEstimator:
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}; "
                    f"valid parameters: {valid}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = {k: v for k, v in self.get_params().items() if not _same(v, defaults.get(k))}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        from sklearn.utils import Tags, TargetTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=None,
            regressor_tags=None,
            classifier_tags=None,
        )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError, RuntimeError):  # arrays and tensors
        return False


class _ClassifierMixin:
    """``score`` = mean accuracy and the classifier tags, as scikit-learn's ``ClassifierMixin``."""

    _estimator_type = "classifier"

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        predicted = _to_numpy(self.predict(X))  # type: ignore[attr-defined]
        correct = (predicted == _to_numpy(y).reshape(predicted.shape)).astype(np.float64)
        if sample_weight is None:
            return float(correct.mean())
        weight = _to_numpy(sample_weight).astype(np.float64)
        return float((correct * weight).sum() / weight.sum())

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.required = True
        return tags


try:  # scikit-learn is optional (the experiments and dev extras install it)
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import DataConversionWarning, NotFittedError
except ImportError:  # pragma: no cover - the stand-ins are tested directly
    BaseEstimator = _BaseEstimator  # type: ignore[assignment,misc]
    ClassifierMixin = _ClassifierMixin  # type: ignore[assignment,misc]
    NotFittedError = _NotFittedError  # type: ignore[assignment,misc]
    DataConversionWarning = _DataConversionWarning  # type: ignore[assignment,misc]


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _is_sparse(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("scipy.sparse") or (hasattr(value, "toarray") and hasattr(value, "nnz"))


def check_features(X: Any, estimator: str, n_features: int | None = None) -> np.ndarray | Tensor:
    """A 2-D finite feature matrix: a float64 NumPy array, or a floating torch tensor.

    Torch tensors keep their device; integer and low-precision tensors become float64 / float32.
    """
    if X is None:
        raise ValueError("X: expected a 2-D array of features (n_samples, n_features), got None")
    if _is_sparse(X):
        raise TypeError(f"X: sparse input is not supported by {estimator}; pass a dense array (X.toarray())")
    if isinstance(X, Tensor):
        if X.is_complex():
            raise ValueError("X: Complex data not supported")
        arr: np.ndarray | Tensor = X if X.is_floating_point() else X.to(torch.float64)
        if arr.dtype in (torch.float16, torch.bfloat16):
            arr = arr.float()
    else:
        arr = np.asarray(X)
        if np.iscomplexobj(arr):
            raise ValueError("X: Complex data not supported")
    shape = tuple(arr.shape)
    if len(shape) != 2:
        hint = (
            "; Reshape your data with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for "
            "a single sample"
            if len(shape) == 1
            else ""
        )
        raise ValueError(f"X: expected a 2-D array (n_samples, n_features), got shape {shape}{hint}")
    if shape[0] == 0:
        raise ValueError(f"X: Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required.")
    if shape[1] == 0:
        raise ValueError(
            f"X: Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required."
        )
    if isinstance(arr, np.ndarray):
        # An object array holding something other than numbers raises the TypeError / ValueError
        # of float() here ("float() argument must be a string or a real number, not 'dict'").
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        if not arr.flags.writeable:  # torch.from_numpy needs a writable buffer (read-only memmaps)
            arr = arr.copy()
        if not np.isfinite(arr).all():
            kind = "NaN" if np.isnan(arr).any() else "infinity"
            raise ValueError(f"X: Input X contains {kind}")
    else:
        if _checks.validate_args_enabled() and not bool(torch.isfinite(arr).all()):
            kind = "NaN" if bool(torch.isnan(arr).any()) else "infinity"
            raise ValueError(f"X: Input X contains {kind}")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"X has {shape[1]} features, but {estimator} is expecting {n_features} features as input."
        )
    return arr


def check_labels(y: Any, n_samples: int, estimator: str) -> tuple[np.ndarray | Tensor, Tensor]:
    """Class labels ``y`` -> (sorted distinct classes, int64 index of each sample's class).

    ``classes`` is a tensor when ``y`` is one, else a NumPy array (any sortable labels: integers,
    strings, integral floats). Continuous targets raise ``Unknown label type: continuous``.
    """
    if y is None:
        raise ValueError(f"{estimator} requires y to be passed, but the target y is None")
    if isinstance(y, Tensor):
        if y.is_complex():
            raise ValueError("y: Complex data not supported")
        labels: np.ndarray | Tensor = y.detach()
    else:
        labels = np.asarray(y)
        if np.iscomplexobj(labels):
            raise ValueError("y: Complex data not supported")
    if labels.ndim == 2 and labels.shape[1] == 1:
        warnings.warn(
            DataConversionWarning(
                "A column-vector y was passed when a 1d array was expected. Please change the shape "
                "of y to (n_samples,), for example using ravel()."
            ),
            stacklevel=3,
        )
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {tuple(labels.shape)} instead")
    if labels.shape[0] != n_samples:
        raise ValueError(f"y: expected {n_samples} labels (one per row of X), got {labels.shape[0]}")
    if isinstance(labels, Tensor):
        if labels.is_floating_point():
            if not bool(torch.isfinite(labels).all()):
                raise ValueError("y: Input y contains NaN or infinity")
            if not bool((labels == labels.round()).all()):
                raise ValueError("y: Unknown label type: continuous (a classifier needs class labels)")
        classes, index = torch.unique(labels, sorted=True, return_inverse=True)
        index = index.to(torch.int64)
    else:
        if labels.dtype.kind == "f":
            if not np.isfinite(labels).all():
                raise ValueError("y: Input y contains NaN or infinity")
            if not (labels == np.round(labels)).all():
                raise ValueError("y: Unknown label type: continuous (a classifier needs class labels)")
        classes, inverse = np.unique(labels, return_inverse=True)
        index = torch.from_numpy(inverse.reshape(-1).astype(np.int64))
    if len(classes) < 2:
        raise ValueError(
            f"y: {estimator} needs at least 2 classes, got 1 class ({_to_numpy(classes)[0].item()!r})"
        )
    return classes, index


def check_is_fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with appropriate "
            "arguments before using this estimator."
        )
