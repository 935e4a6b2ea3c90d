"""Evaluation metrics for the experiments (numpy in, floats out) and confidence intervals.

Multi-label (scores ``(n, L)``, 0/1 targets): micro / macro F1 and Hamming loss at a decision
threshold, macro mean average precision (labels with a positive in the evaluated set), the
example-based "average precision" of the multi-label literature (LRAP), ranking loss,
coverage and one-error, calibration of the loss's probability reading, and F1 after per-label
threshold tuning on a validation set. The scikit-learn implementations are used where they exist
(``f1_score``, ``hamming_loss``, ``average_precision_score``, ``label_ranking_loss``,
``coverage_error``, ``balanced_accuracy_score``).

Multi-class: accuracy, balanced error (mean per-class error), accuracy on the many / medium / few
classes (training-frequency ranks: first 30%, middle 40%, last 30%; classes 0-2 / 3-6 / 7-9 for 10
classes), top-label ECE.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "binary_ece",
    "class_groups",
    "mean_ci",
    "multiclass_metrics",
    "multilabel_metrics",
    "one_error",
    "paired_difference",
    "top_label_ece",
    "tune_thresholds",
]

ECE_BINS = 15


def mean_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (NaN for fewer than 2 values).

    >>> m, h = mean_ci([1.0, 2.0, 3.0])
    >>> round(m, 6), round(h, 4)
    (2.0, 2.4841)
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, half


def paired_difference(a, b, level: float = 0.95) -> tuple[float, float]:
    """Mean and CI half-width of ``a - b`` paired by position (by seed in the runner)."""
    return mean_ci(np.asarray(a, np.float64) - np.asarray(b, np.float64), level)


# ----------------------------------------------------------------------------- calibration


def binary_ece(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of independent binary probabilities: :math:`\\sum_b \\frac{|B_b|}{N}|\\bar p_b - \\bar y_b|`.

    Equal-width bins on [0, 1]; every (sample, label) entry is one prediction.
    """
    p = np.asarray(probs, np.float64).ravel()
    t = np.asarray(targets, np.float64).ravel()
    if p.size == 0:
        return math.nan
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, p, bins) - np.bincount(which, t, bins))
    return float(gap.sum() / p.size) if count.sum() else math.nan


def top_label_ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE (Guo et al., 2017): confidence of the arg-max against its accuracy, equal-width bins."""
    probs = np.asarray(probs, np.float64)
    conf = probs.max(1)
    correct = (probs.argmax(1) == np.asarray(labels)).astype(np.float64)
    # Bins (lo, hi] as in the usual definition; confidence 0 cannot occur for a top label.
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    gap = np.abs(np.bincount(which, conf, bins) - np.bincount(which, correct, bins))
    return float(gap.sum() / len(conf)) if len(conf) else math.nan


# ----------------------------------------------------------------------------- multi-label


def one_error(scores: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of samples whose top-scored label is not relevant (samples with no label are skipped)."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    has = targets.sum(1) > 0
    if not has.any():
        return math.nan
    top = scores[has].argmax(1)
    return float(1.0 - targets[has][np.arange(has.sum()), top].mean())


def tune_thresholds(scores: np.ndarray, targets: np.ndarray, default: float) -> np.ndarray:
    """Per-label threshold on ``scores`` maximising that label's F1 on (validation) data.

    Candidates are midpoints between consecutive distinct scores (and ``default``); a label with no
    positive keeps ``default``. Ties go to the candidate closest to ``default``.
    """
    scores, targets = np.asarray(scores, np.float64), np.asarray(targets) > 0.5
    out = np.full(scores.shape[1], float(default))
    for j in range(scores.shape[1]):
        s, t = scores[:, j], targets[:, j]
        if not t.any():
            continue
        order = np.argsort(-s, kind="stable")
        s_sorted, t_sorted = s[order], t[order]
        tp = np.cumsum(t_sorted)
        predicted = np.arange(1, len(s) + 1)
        f1 = 2 * tp / (predicted + t.sum())
        # Predicting the top k is a threshold strictly between s_sorted[k-1] and s_sorted[k].
        distinct = np.append(s_sorted[1:] < s_sorted[:-1], True)
        f1 = np.where(distinct, f1, -1.0)
        best = f1.max()
        ks = np.flatnonzero(f1 >= best - 1e-12)
        cands = np.array(
            [(s_sorted[k] + s_sorted[k + 1]) / 2 if k + 1 < len(s) else s_sorted[k] - 1e-6 for k in ks]
        )
        default_f1 = 2 * (t & (s > default)).sum() / ((s > default).sum() + t.sum())
        if default_f1 >= best - 1e-12:
            continue
        out[j] = cands[np.argmin(np.abs(cands - default))]
    return out


def multilabel_metrics(
    scores: np.ndarray,
    targets: np.ndarray,
    threshold,
    probs: np.ndarray | None = None,
    *,
    prefix: str = "",
) -> dict[str, float]:
    """Threshold metrics at ``threshold`` (scalar or per label) and threshold-free ranking metrics."""
    from sklearn.metrics import (
        average_precision_score,
        coverage_error,
        f1_score,
        hamming_loss,
        label_ranking_average_precision_score,
        label_ranking_loss,
    )

    scores = np.asarray(scores, np.float64)
    targets = (np.asarray(targets) > 0.5).astype(np.int64)
    pred = (scores > np.asarray(threshold)).astype(np.int64)
    out = {
        "micro_f1": float(f1_score(targets, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(targets, pred, average="macro", zero_division=0)),
        "hamming": float(hamming_loss(targets, pred)),
    }
    if prefix:
        return {f"{prefix}{k}": v for k, v in out.items() if k != "hamming"}
    present = targets.sum(0) > 0
    out["map"] = float(average_precision_score(targets[:, present], scores[:, present], average="macro"))
    has = targets.sum(1) > 0
    out["lrap"] = float(label_ranking_average_precision_score(targets[has], scores[has]))
    out["ranking_loss"] = float(label_ranking_loss(targets[has], scores[has]))
    out["coverage"] = float(coverage_error(targets[has], scores[has]))
    out["one_error"] = one_error(scores, targets)
    if probs is not None:
        out["ece"] = binary_ece(probs, targets)
    return out


def per_label_f1(scores: np.ndarray, targets: np.ndarray, threshold) -> list[float]:
    from sklearn.metrics import f1_score

    pred = (np.asarray(scores) > np.asarray(threshold)).astype(np.int64)
    t = (np.asarray(targets) > 0.5).astype(np.int64)
    return [float(v) for v in f1_score(t, pred, average=None, zero_division=0)]


# ----------------------------------------------------------------------------- multi-class


def class_groups(train_counts) -> dict[str, np.ndarray]:
    """Classes by training frequency rank: ``many`` (top 30%), ``medium``, ``few`` (bottom 30%).

    >>> {k: v.tolist() for k, v in class_groups([600, 300, 200, 100, 90, 80, 70, 20, 10, 5]).items()}
    {'many': [0, 1, 2], 'medium': [3, 4, 5, 6], 'few': [7, 8, 9]}
    """
    counts = np.asarray(train_counts)
    order = np.argsort(-counts, kind="stable")
    k = max(1, round(0.3 * len(counts)))
    return {"many": np.sort(order[:k]), "medium": np.sort(order[k:-k]), "few": np.sort(order[-k:])}


def multiclass_metrics(probs: np.ndarray, labels: np.ndarray, train_counts) -> dict:
    """Accuracy, balanced error, many / medium / few accuracy, top-label ECE, per-class accuracy."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    num_classes = probs.shape[1]
    pred = probs.argmax(1)
    correct = pred == labels
    per_class = np.array(
        [correct[labels == c].mean() if (labels == c).any() else np.nan for c in range(num_classes)]
    )
    out = {
        "accuracy": float(correct.mean()),
        "balanced_error": float(1.0 - np.nanmean(per_class)),
    }
    for group, classes in class_groups(train_counts).items():
        out[f"{group}_accuracy"] = float(np.nanmean(per_class[classes])) if len(classes) else math.nan
    out["ece"] = top_label_ece(probs, labels)
    out["per_class_accuracy"] = [float(v) for v in per_class]
    return out
