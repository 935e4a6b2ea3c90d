"""Experiment metrics: hand-computed values and scikit-learn agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logitkit.experiments import metrics as M


def test_mean_ci_t_interval():
    mean, half = M.mean_ci([0.5, 0.7, 0.6, 0.8, 0.4])
    # t_{0.975, 4} = 2.776445, sample std = 0.158114.
    assert mean == pytest.approx(0.6) and half == pytest.approx(2.776445 * 0.158114 / math.sqrt(5), rel=1e-5)
    assert math.isnan(M.mean_ci([1.0])[1])
    d, h = M.paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert d == pytest.approx(0.5) and h == pytest.approx(0.0)


def test_one_error_and_multilabel_metrics():
    scores = np.array([[0.9, 0.1, -0.2], [0.2, 0.8, 0.1], [-1.0, -2.0, 0.5]])
    y = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 1]])
    assert M.one_error(scores, y) == pytest.approx(1 / 3)
    out = M.multilabel_metrics(scores, y, 0.0)
    # Predictions at 0: [1,1,0], [1,1,1], [0,0,1] -> TP 4, FP 2, FN 0.
    assert out["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 2))
    assert out["hamming"] == pytest.approx(2 / 9)
    tuned = M.multilabel_metrics(scores, y, np.array([0.0, 0.9, 0.0]), prefix="tuned_")
    assert set(tuned) == {"tuned_micro_f1", "tuned_macro_f1"}


def test_tune_thresholds_maximises_validation_f1():
    scores = np.array([[0.1], [0.4], [0.35], [0.8]])
    y = np.array([[0], [1], [0], [1]])
    thr = M.tune_thresholds(scores, y, default=0.5)
    assert 0.35 < thr[0] < 0.4  # predicts exactly the two positives
    assert M.tune_thresholds(scores, np.zeros((4, 1)), default=0.5)[0] == 0.5


def test_ece_values():
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert M.top_label_ece(probs, np.array([0, 1])) == pytest.approx(0.35)
    assert M.binary_ece(np.array([0.2, 0.2, 0.9]), np.array([0, 1, 1])) == pytest.approx((2 * 0.3 + 0.1) / 3)


def test_multiclass_metrics_and_groups():
    probs = np.eye(3)[[0, 0, 1, 2, 2, 2]] * 0.9 + 0.1 / 3
    labels = np.array([0, 1, 1, 2, 2, 0])
    out = M.multiclass_metrics(probs, labels, train_counts=[100, 10, 1])
    assert out["per_class_accuracy"] == pytest.approx([0.5, 0.5, 1.0])
    assert out["balanced_error"] == pytest.approx(1 - 2 / 3)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["many_accuracy"] == 0.5 and out["few_accuracy"] == 1.0
