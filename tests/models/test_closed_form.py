"""Closed-form softmax regression and ClosedFormClassifier (spec: models_and_posthoc.md §2)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

import logitkit.functional as LF
from logitkit.models import ClosedFormClassifier, _estimator
from tests.helpers import (
    FLOAT_DTYPES,
    LOW_PRECISION,
    TOLERANCE,
    assert_compiles,
    assert_gradcheck,
    assert_raises,
)
from tests.reference import closed_form as ref


def _gaussians(n_per_class, means, cov, seed=0):
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(cov)
    x = np.concatenate([m + rng.standard_normal((n_per_class, len(m))) @ chol.T for m in means])
    y = np.repeat(np.arange(len(means)), n_per_class)
    return x, y


def _random_problem(seed=0, n=40, d=4, c=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(
        d, d, generator=g, dtype=torch.float64
    )
    y = torch.arange(n) % c
    x = x + 2.0 * torch.randn(c, d, generator=g, dtype=torch.float64)[y]
    return x, y


# ---------------------------------------------------------------------------------------------
# The functional against the float64 oracle (post's moment-matching formulas)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("whiten", [True, False])
@pytest.mark.parametrize("covariance", ["pooled", "total"])
@pytest.mark.parametrize("use_priors", [False, True])
def test_matches_oracle(whiten, covariance, use_priors):
    x, y = _random_problem(1)
    priors = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64) if use_priors else None
    w, b = LF.closed_form_softmax_regression(x, y, whiten=whiten, covariance=covariance, priors=priors)
    ew, eb = ref.closed_form(
        x.numpy(), y.numpy(), 3, covariance=covariance, priors=None if priors is None else priors.tolist()
    )
    np.testing.assert_allclose(w.numpy(), ew, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(b.numpy(), eb, rtol=1e-9, atol=1e-10)


def test_moment_matched_covariance_is_the_pooled_within_class_covariance():
    # Spec §2.5 [derived, verified]: Sigma~ + mu~^T mu~ - sum p_i mu_i^T mu_i = pooled (ddof 0).
    x, y = _random_problem(2, n=30, d=3)
    x, y = x.numpy(), y.numpy()
    overall = x.mean(0)
    means = [x[y == c].mean(0) for c in range(3)]
    freq = [np.mean(y == c) for c in range(3)]
    moment = (
        ref.total_covariance(x)
        + np.outer(overall, overall)
        - sum(p * np.outer(m, m) for p, m in zip(freq, means, strict=True))
    )
    np.testing.assert_allclose(moment, ref.pooled_covariance_loop(x, y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("whiten", [True, False])
@pytest.mark.parametrize("covariance", ["pooled", "total"])
def test_ridge_is_in_units_of_the_mean_variance(whiten, covariance):
    x, y = _random_problem(3)
    ridge = 0.3
    w, b = LF.closed_form_softmax_regression(x, y, whiten=whiten, ridge=ridge, covariance=covariance)
    sigma = (
        ref.pooled_covariance_loop(x.numpy(), y.numpy())
        if covariance == "pooled"
        else ref.total_covariance(x)
    )
    extra = ridge * np.trace(sigma) / x.shape[1] * np.eye(x.shape[1])
    ew, eb = ref.closed_form(x.numpy(), y.numpy(), 3, ridge_matrix=extra, covariance=covariance)
    np.testing.assert_allclose(w.numpy(), ew, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(b.numpy(), eb, rtol=1e-9, atol=1e-10)
    # Unit-free: scaling every feature by one factor leaves the probabilities unchanged.
    w2, b2 = LF.closed_form_softmax_regression(x * 1000, y, whiten=whiten, ridge=ridge, covariance=covariance)
    torch.testing.assert_close(torch.softmax(x * 1000 @ w2.T + b2, 1), torch.softmax(x @ w.T + b, 1))


def test_ledoit_wolf_shrinkage_matches_sklearn():
    from sklearn.covariance import ledoit_wolf_shrinkage

    from logitkit.models.closed_form import _ledoit_wolf_shrinkage

    for n, d in [(30, 5), (20, 50), (200, 3)]:
        r = torch.randn(n, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
        r[:, 0] *= 5
        sigma = r.T @ r / n
        spread = ((r * r).sum(1) ** 2).sum() / n
        alpha = _ledoit_wolf_shrinkage(n, d, torch.trace(sigma), (sigma * sigma).sum(), spread)
        assert float(alpha) == pytest.approx(
            ledoit_wolf_shrinkage(r.numpy(), assume_centered=True), rel=1e-10
        )


@pytest.mark.parametrize("whiten", [True, False])
def test_auto_ridge_is_ledoit_wolf_shrinkage_of_the_pooled_covariance(whiten):
    from sklearn.covariance import ledoit_wolf_shrinkage

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((30, 40)), np.arange(30) % 3
    clf = ClosedFormClassifier(ridge="auto", whiten=whiten).fit(x, y)
    residual = x - np.stack([x[y == c].mean(0) for c in range(3)])[y]
    alpha = ledoit_wolf_shrinkage(residual, assume_centered=True)
    assert clf.shrinkage_ == pytest.approx(alpha, rel=1e-10) and 0 < alpha < 1
    sigma = ref.pooled_covariance_loop(x, y)
    shrunk = (1 - alpha) * sigma + alpha * np.trace(sigma) / 40 * np.eye(40)
    ew, eb = ref.closed_form(x, y, 3, ridge_matrix=shrunk - sigma)
    # d > N: the whitened solve works in the span of the data, the raw one adds a class-independent
    # vector from the null space; the probabilities agree everywhere.
    fresh = rng.standard_normal((10, 40)) * 3
    expected = torch.softmax(torch.from_numpy(fresh @ ew.T + eb), 1).numpy()
    np.testing.assert_allclose(clf.predict_proba(fresh), expected, rtol=0, atol=1e-10)
    if not whiten:
        np.testing.assert_allclose(clf.coef_, ew, rtol=1e-8, atol=1e-10)
    with pytest.warns(UserWarning, match="singular"):
        assert ClosedFormClassifier().fit(x, y).shrinkage_ is None


def test_spec_closed_form_example():
    # Two classes with diagonal pooled covariance diag(2/3, 2/9): w_i = mu_i Sigma^-1 by hand.
    x = torch.tensor([[0, 0], [2, 0], [1, 1], [0, 2], [2, 2], [1, 3]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    w, b = LF.closed_form_softmax_regression(x, y)
    torch.testing.assert_close(w, torch.tensor([[1.5, 1.5], [1.5, 10.5]], dtype=torch.float64))
    torch.testing.assert_close(b, torch.tensor([-1.0, -13.0], dtype=torch.float64) + math.log(0.5))


def test_binary_is_the_difference_of_the_two_class_softmax_solution():
    # Spec §2.3: w = (mu1 - mu0) Sigma^-1, b = (mu0 S mu0 - mu1 S mu1) / 2 + ln(p1 / p0).
    x, y = _gaussians(50, [[0.0, 0.0, 1.0], [1.0, 2.0, 0.0]], np.diag([1.0, 2.0, 0.5]), seed=3)
    y[:10] = 1  # unequal priors
    w, b = LF.closed_form_softmax_regression(torch.from_numpy(x), torch.from_numpy(y))
    clf = ClosedFormClassifier().fit(x, y)
    np.testing.assert_allclose(clf.coef_[0], (w[1] - w[0]).numpy(), rtol=1e-10)
    np.testing.assert_allclose(clf.intercept_[0], (b[1] - b[0]).item(), rtol=1e-10)
    mu0, mu1 = x[y == 0].mean(0), x[y == 1].mean(0)
    sigma = ref.pooled_covariance_loop(x, y)
    p1 = np.mean(y == 1)
    expected_w = np.linalg.solve(sigma, mu1 - mu0)
    expected_b = 0.5 * (mu0 @ np.linalg.solve(sigma, mu0) - mu1 @ np.linalg.solve(sigma, mu1)) + math.log(
        p1 / (1 - p1)
    )
    np.testing.assert_allclose(clf.coef_[0], expected_w, rtol=1e-9)
    np.testing.assert_allclose(clf.intercept_[0], expected_b, rtol=1e-9)
    np.testing.assert_allclose(clf.decision_function(x), x @ expected_w + expected_b, rtol=1e-9, atol=1e-9)


def test_row_blocks_do_not_change_the_result(monkeypatch):
    from logitkit.models import closed_form

    x, y = _random_problem(12, n=50, d=3)
    expected = LF.closed_form_softmax_regression(x, y, ridge="auto", whiten=False)
    monkeypatch.setattr(closed_form, "_BLOCK_BYTES", 7 * 8 * 3)  # 7 rows per block
    for actual, wanted in zip(
        LF.closed_form_softmax_regression(x, y, ridge="auto", whiten=False), expected, strict=True
    ):
        torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)


def test_zero_count_class_is_never_predicted():
    x, y = _random_problem(4)
    w, b = LF.closed_form_softmax_regression(x, y, num_classes=5)
    assert torch.isneginf(b[3:]).all() and (w[3:] == 0).all()
    probs = torch.softmax(x @ w.T + b, 1)
    assert (probs[:, 3:] == 0).all() and not torch.isnan(probs).any()
    w3, b3 = LF.closed_form_softmax_regression(x, y)
    torch.testing.assert_close(w[:3], w3)
    torch.testing.assert_close(b[:3], b3)


# ---------------------------------------------------------------------------------------------
# Equal to linear discriminant analysis (scikit-learn)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", [load_iris, load_wine, load_breast_cancer])
@pytest.mark.parametrize("whiten", [True, False])
def test_equals_lda_decision_function(loader, whiten):
    x, y = loader(return_X_y=True)
    ours = ClosedFormClassifier(whiten=whiten).fit(x, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    scale = np.abs(lda.decision_function(x)).max()
    np.testing.assert_allclose(ours.decision_function(x), lda.decision_function(x), rtol=0, atol=1e-9 * scale)
    # breast_cancer's pooled covariance has condition number ~1e11: both solvers lose digits.
    np.testing.assert_allclose(ours.predict_proba(x), lda.predict_proba(x), rtol=0, atol=1e-8)
    assert (ours.predict(x) == lda.predict(x)).all()


def test_priors_only_move_the_biases():
    # The shared covariance stays the count-weighted pooled estimate (its maximum-likelihood
    # estimate); priors shift each class score by log(prior / frequency). scikit-learn's LDA
    # instead weights the class covariances by the priors, so it differs when priors are given.
    x, y = load_wine(return_X_y=True)
    priors = np.array([0.2, 0.5, 0.3])
    ours = ClosedFormClassifier(priors=priors).fit(x, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    shift = np.log(priors) - np.log(np.bincount(y) / len(y))
    np.testing.assert_allclose(
        ours.decision_function(x), lda.decision_function(x) + shift, rtol=1e-9, atol=1e-8
    )
    np.testing.assert_allclose(ours.priors_, priors)
    np.testing.assert_allclose(ClosedFormClassifier(priors=2 * priors).fit(x, y).intercept_, ours.intercept_)


def test_singular_covariance_without_whitening_is_lda_minimum_norm_solution():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 50)), np.arange(20) % 3
    with pytest.warns(UserWarning, match="singular"):
        ours = ClosedFormClassifier(whiten=False).fit(x, y)
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    np.testing.assert_allclose(ours.decision_function(x), lda.decision_function(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("ridge", [0.3, "auto"])
def test_fewer_samples_than_features_path_gives_the_same_probabilities(ridge):
    # whiten=True with n < d works with n x n matrices; whiten=False with d x d ones.
    rng = np.random.default_rng(3)
    x, y = (
        rng.standard_normal((24, 60)) + np.repeat(rng.standard_normal((4, 60)), 6, 0),
        np.repeat(np.arange(4), 6),
    )
    thin = ClosedFormClassifier(ridge=ridge).fit(x, y)
    full = ClosedFormClassifier(ridge=ridge, whiten=False).fit(x, y)
    fresh = rng.standard_normal((50, 60)) * 2
    np.testing.assert_allclose(thin.predict_proba(fresh), full.predict_proba(fresh), rtol=0, atol=1e-9)
    np.testing.assert_allclose(thin.predict_proba(x), full.predict_proba(x), rtol=0, atol=1e-9)


@pytest.mark.parametrize("ridge", [0.0, 0.2, "auto"])
@pytest.mark.parametrize("covariance", ["pooled", "total"])
@pytest.mark.parametrize("shape", [(60, 5), (40, 30)])
def test_estimator_cholesky_path_equals_the_eigendecomposition_path(ridge, covariance, shape):
    from logitkit.models.closed_form import _solve

    x, y = _random_problem(11, n=shape[0], d=shape[1], c=4)
    x[:, 1] = 3.0  # a constant feature
    x[:, 2] *= 1e4  # badly scaled
    probs = []
    for fast in (False, True):
        w, b, dropped, _ = _solve(x, y, 4, True, ridge, covariance, None, fast=fast)
        probs.append(torch.softmax(x @ w.T + b, 1))
        assert int(dropped) == 0
    torch.testing.assert_close(probs[1], probs[0], rtol=0, atol=1e-9)


def test_singular_covariance_warns_and_ridge_fixes_it():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 50)), np.arange(20) % 4
    with pytest.warns(UserWarning, match="pass ridge > 0|Pass ridge > 0"):
        ClosedFormClassifier().fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ridge in (0.1, "auto"):
            assert ClosedFormClassifier(ridge=ridge).fit(x, y).score(x, y) >= 0.9


# ---------------------------------------------------------------------------------------------
# Invariances and the Bayes rate
# ---------------------------------------------------------------------------------------------


def test_predictions_invariant_to_whitening_and_affine_maps():
    x, y = load_wine(return_X_y=True)
    base = ClosedFormClassifier(whiten=True).fit(x, y)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((x.shape[1], x.shape[1])) + 3 * np.eye(x.shape[1])
    moved = x @ a + rng.standard_normal(x.shape[1]) * 10
    for clf, data in [
        (ClosedFormClassifier(whiten=False).fit(x, y), x),
        (ClosedFormClassifier().fit(moved, y), moved),
    ]:
        np.testing.assert_allclose(clf.predict_proba(data), base.predict_proba(x), rtol=0, atol=1e-8)


def test_accuracy_approaches_the_bayes_rate():
    means = [[0.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.0, 1.5, 1.0]]
    cov = np.array([[1.0, 0.4, 0.0], [0.4, 1.5, 0.3], [0.0, 0.3, 0.8]])
    x_test, y_test = _gaussians(20000, means, cov, seed=99)
    # Bayes classifier: the true parameters (equal priors).
    true_w = np.linalg.solve(cov, np.array(means).T).T
    true_b = -0.5 * np.einsum("cd,cd->c", np.array(means), true_w)
    bayes = np.mean((x_test @ true_w.T + true_b).argmax(1) == y_test)
    gaps = []
    for n in [10, 100, 10000]:
        x, y = _gaussians(n, means, cov, seed=n)
        gaps.append(bayes - ClosedFormClassifier().fit(x, y).score(x_test, y_test))
    assert gaps[0] > gaps[2] and abs(gaps[2]) < 0.003
    clf = ClosedFormClassifier().fit(*_gaussians(10000, means, cov, seed=7))
    np.testing.assert_allclose(clf.coef_ - clf.coef_[0], true_w - true_w[0], atol=0.08)


def test_approaches_maximum_likelihood_logistic_regression_on_gaussian_data():
    x, y = _gaussians(20000, [[0.0, 0.0], [1.0, 1.0]], np.array([[1.0, 0.3], [0.3, 1.0]]), seed=5)
    ours = ClosedFormClassifier().fit(x, y)
    mle = LogisticRegression(C=1e6, max_iter=1000).fit(x, y)
    np.testing.assert_allclose(ours.coef_, mle.coef_, atol=0.05)
    np.testing.assert_allclose(ours.intercept_, mle.intercept_, atol=0.05)


@settings(max_examples=15)
@given(st.integers(0, 10_000), st.floats(-100, 100), st.floats(0.01, 100))
def test_property_shift_scale_and_permutation_invariance(seed, shift, scale):
    x, y = _random_problem(seed, n=24, d=3)
    probs = torch.softmax(_scores(x, y, x), 1)
    moved = x * scale + shift
    torch.testing.assert_close(torch.softmax(_scores(moved, y, moved), 1), probs, rtol=0, atol=1e-7)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    w, b = LF.closed_form_softmax_regression(x[perm], y[perm])
    torch.testing.assert_close(torch.softmax(x @ w.T + b, 1), probs, rtol=0, atol=1e-9)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(y), dtype=torch.float64))


def _scores(x, y, at):
    w, b = LF.closed_form_softmax_regression(x, y)
    return at @ w.T + b


# ---------------------------------------------------------------------------------------------
# scikit-learn API, torch inputs, to_linear
# ---------------------------------------------------------------------------------------------


@parametrize_with_checks([ClosedFormClassifier(), ClosedFormClassifier(whiten=False, ridge="auto")])
def test_sklearn_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singular toy data in some checks
        check(estimator)


def test_torch_inputs_give_torch_outputs_equal_to_numpy():
    x, y = load_iris(return_X_y=True)
    a = ClosedFormClassifier().fit(x, y)
    b = ClosedFormClassifier().fit(torch.from_numpy(x).float(), torch.from_numpy(y))
    assert isinstance(b.coef_, torch.Tensor) and b.coef_.dtype == torch.float64
    assert isinstance(b.classes_, torch.Tensor)
    xt = torch.from_numpy(x).float()
    proba = b.predict_proba(xt)
    assert proba.dtype == torch.float32
    np.testing.assert_allclose(proba.numpy(), a.predict_proba(xt.numpy()), atol=1e-6)
    assert torch.equal(b.predict(xt), torch.from_numpy(a.predict(xt.numpy())))
    assert b.score(xt, torch.from_numpy(y)) == pytest.approx(a.score(x, y), abs=0.01)
    c = ClosedFormClassifier().fit(torch.from_numpy(x), y)  # float64 tensor, NumPy labels
    assert isinstance(c.classes_, np.ndarray)
    torch.testing.assert_close(c.coef_, torch.from_numpy(a.coef_), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c.predict_proba(x), a.predict_proba(x), rtol=0, atol=1e-14)
    assert (c.predict(torch.from_numpy(x)) == a.predict(x)).all()


def test_string_labels_and_binary_outputs():
    x, y = load_breast_cancer(return_X_y=True)
    labels = np.array(["benign", "malignant"])[1 - y]
    clf = ClosedFormClassifier().fit(x, labels)
    assert list(clf.classes_) == ["benign", "malignant"]
    assert clf.coef_.shape == (1, x.shape[1]) and clf.decision_function(x).shape == (len(x),)
    proba = clf.predict_proba(x)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-clf.decision_function(x))), rtol=1e-10)
    np.testing.assert_allclose(clf.predict_log_proba(x), np.log(proba), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("single_logit", [True, False])
def test_to_linear_reproduces_the_scores(single_logit):
    x, y = load_breast_cancer(return_X_y=True)
    clf = ClosedFormClassifier().fit(x, y)
    layer = clf.to_linear(single_logit=single_logit, dtype=torch.float64)
    out = layer(torch.from_numpy(x)).detach()
    if single_logit:
        assert layer.out_features == 1
        np.testing.assert_allclose(out[:, 0].numpy(), clf.decision_function(x), rtol=1e-10)
    else:
        np.testing.assert_allclose(
            torch.softmax(out, 1).numpy(), clf.predict_proba(x), rtol=1e-10, atol=1e-12
        )
    x3, y3 = load_iris(return_X_y=True)
    clf3 = ClosedFormClassifier().fit(x3, y3)
    head = clf3.to_linear()
    assert head.weight.dtype == torch.float32 and head.out_features == 3
    np.testing.assert_allclose(
        head(torch.from_numpy(x3).float()).detach().numpy(), clf3.decision_function(x3), rtol=1e-4
    )


def test_to_linear_warm_start_is_a_good_initial_head():
    x, y = load_wine(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    head = ClosedFormClassifier().fit(x, y).to_linear()
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y)
    warm = torch.nn.functional.cross_entropy(head(xt), yt)
    cold = torch.nn.functional.cross_entropy(torch.nn.Linear(13, 3)(xt), yt)
    assert warm < 0.1 < cold


def test_estimator_base_classes():
    class Toy(_estimator._ClassifierMixin, _estimator._BaseEstimator):
        def __init__(self, *, a=1, b="x"):
            self.a, self.b = a, b

        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    est = Toy(a=3)
    assert est.get_params() == {"a": 3, "b": "x"}
    assert est.set_params(b="y").b == "y" and repr(est) == "Toy(a=3, b='y')" and repr(Toy()) == "Toy()"
    assert_raises(ValueError, "Invalid parameter 'c'", est.set_params, c=1)
    assert est.score(np.zeros((4, 2)), [0, 0, 1, 0]) == 0.75
    assert est.score(np.zeros((2, 2)), [0, 1], sample_weight=[3.0, 1.0]) == 0.75
    assert issubclass(_estimator._NotFittedError, (ValueError, AttributeError))
    tags = est.__sklearn_tags__()
    assert tags.estimator_type == "classifier" and tags.target_tags.required
    from sklearn.base import BaseEstimator, clone, is_classifier

    assert isinstance(ClosedFormClassifier(), BaseEstimator)  # scikit-learn's classes when installed
    assert is_classifier(ClosedFormClassifier()) and clone(ClosedFormClassifier(ridge=2.0)).ridge == 2.0


def test_importing_the_functions_does_not_import_sklearn():
    import subprocess
    import sys

    code = "import sys, logitkit.functional, logitkit.nn, logitkit.models; print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_pipeline_and_grid_search():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_wine(return_X_y=True)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), ClosedFormClassifier()),
        {"closedformclassifier__ridge": [0.0, "auto"]},
        cv=3,
    )
    assert search.fit(x, y).best_score_ > 0.95


# ---------------------------------------------------------------------------------------------
# Autograd, compile, dtypes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("whiten", "covariance", "ridge"),
    [
        (True, "pooled", 0.0),
        (False, "pooled", 0.0),
        (True, "total", 0.2),
        (False, "total", 0.2),
        (True, "pooled", "auto"),
        (True, "pooled", 0.5),  # fewer samples than features: the n x n path
    ],
)
def test_gradcheck(whiten, covariance, ridge):
    x, y = _random_problem(5, n=10, d=2) if ridge != 0.5 else _random_problem(5, n=6, d=8)
    x.requires_grad_()

    def fn(x):
        w, b = LF.closed_form_softmax_regression(x, y, whiten=whiten, covariance=covariance, ridge=ridge)
        return torch.cat([w.flatten(), b])

    assert_gradcheck(fn, x, gradgrad=whiten is False and ridge == 0.0)


def test_gradient_of_a_loss_through_the_closed_form_head():
    # Meta-learning style: features -> closed-form head on a support set -> loss on a query set.
    x, y = _random_problem(6, n=30, d=4)
    x.requires_grad_()
    w, b = LF.closed_form_softmax_regression(x[:20], y[:20], ridge=0.1)
    loss = torch.nn.functional.cross_entropy(x[20:] @ w.T + b, y[20:])
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_compiles():
    x, y = _random_problem(7, n=16, d=3)

    def fn(x):
        w, b = LF.closed_form_softmax_regression(x, y, num_classes=3, ridge=0.1)
        return x @ w.T + b

    assert_compiles(fn, x.clone().requires_grad_(), rtol=1e-9, atol=1e-9)
    assert_compiles(fn, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtypes(dtype):
    x, y = load_iris(return_X_y=True)
    xt = torch.from_numpy(x).to(dtype)
    w, b = LF.closed_form_softmax_regression(xt, torch.from_numpy(y))
    assert w.dtype == dtype and b.dtype == dtype
    ew, _eb = ref.closed_form(xt.double().numpy(), y, 3)  # on the quantised input
    tol = {torch.float64: 1e-8, torch.float32: 1e-3}.get(dtype, 5e-2)
    scale = np.abs(ew).max()
    np.testing.assert_allclose(w.double().numpy(), ew, rtol=0, atol=tol * scale)
    if dtype in LOW_PRECISION:
        accuracy = ((xt.float() @ w.float().T + b.float()).argmax(1).numpy() == y).mean()
        assert accuracy > 0.95
    assert TOLERANCE[dtype]  # the dtype is part of the test matrix


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_input_functional():
    x, y = _random_problem(8, n=9, d=2)
    f = LF.closed_form_softmax_regression
    assert_raises(
        ValueError, "input: expected a 2-D tensor of features (N, d), got shape (9,)", f, x[:, 0], y
    )
    assert_raises(TypeError, "input: expected a floating-point tensor", f, y.view(9, 1), y)
    assert_raises(
        TypeError,
        "target: expected an integer tensor of class indices, got dtype torch.float64",
        f,
        x,
        y.double(),
    )
    assert_raises(
        ValueError, "target: expected shape (9,), one class index per row of input, got (8,)", f, x, y[:8]
    )
    assert_raises(ValueError, "target: expected class indices in [0, 2)", f, x, y, num_classes=2)
    assert_raises(ValueError, "num_classes: expected a positive int, got 0", f, x, y, num_classes=0)
    assert_raises(ValueError, "ridge: expected a non-negative finite number, got -1", f, x, y, ridge=-1)
    assert_raises(
        ValueError, "ridge: expected a non-negative number or 'auto', got 'big'", f, x, y, ridge="big"
    )
    assert_raises(
        ValueError, "covariance: expected one of 'pooled', 'total', got 'diag'", f, x, y, covariance="diag"
    )
    assert_raises(TypeError, "whiten: expected a bool, got 1", f, x, y, whiten=1)
    assert_raises(
        ValueError,
        "priors: expected a 1-D tensor of 3 per-class values, got shape (2,)",
        f,
        x,
        y,
        priors=torch.ones(2, dtype=torch.float64),
    )
    assert_raises(
        ValueError,
        "priors: expected non-negative values, got -1",
        f,
        x,
        y,
        priors=torch.tensor([1.0, -1.0, 1.0]),
    )
    bad = x.clone()
    bad[0, 0] = float("nan")
    assert_raises(ValueError, "input: expected finite values, got NaN", f, bad, y)
    assert_raises(
        ValueError, "input: expected at least one sample and one feature, got shape (0, 2)", f, x[:0], y[:0]
    )


def test_bad_input_estimator():
    x, y = load_iris(return_X_y=True)
    clf = ClosedFormClassifier()
    assert_raises(
        _estimator.NotFittedError, "This ClosedFormClassifier instance is not fitted yet", clf.predict, x
    )
    assert_raises(
        ValueError, "ClosedFormClassifier requires y to be passed, but the target y is None", clf.fit, x, None
    )
    assert_raises(ValueError, "Unknown label type: continuous", clf.fit, x, y + 0.5)
    assert_raises(
        ValueError,
        "y: ClosedFormClassifier needs at least 2 classes, got 1 class (0)",
        clf.fit,
        x,
        np.zeros(len(x), dtype=int),
    )
    assert_raises(ValueError, "y: expected 150 labels (one per row of X), got 149", clf.fit, x, y[:-1])
    assert_raises(ValueError, "Reshape your data", clf.fit, x[:, 0], y)
    assert_raises(ValueError, "X: Input X contains infinity", clf.fit, np.where(x > 7, np.inf, x), y)
    assert_raises(ValueError, "Complex data not supported", clf.fit, x + 1j, y)
    assert_raises(
        ValueError,
        "priors: expected a 1-D tensor of 3 per-class values, got shape (2,)",
        ClosedFormClassifier(priors=[0.5, 0.5]).fit,
        x,
        y,
    )
    assert_raises(
        ValueError,
        "covariance: expected one of 'pooled', 'total', got 'x'",
        ClosedFormClassifier(covariance="x").fit,
        x,
        y,
    )
    clf.fit(x, y)
    assert_raises(
        ValueError,
        "X has 3 features, but ClosedFormClassifier is expecting 4 features as input.",
        clf.predict,
        x[:, :3],
    )
    assert_raises(ValueError, "X: Input X contains NaN", clf.predict, np.full((1, 4), np.nan))
