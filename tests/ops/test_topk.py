"""Soft top-k family and the smooth top-k sum (spec: operators.md §3, reproduction_targets.md §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
import logitkit.nn as LN
from logitkit.ops import _threshold
from tests.helpers import (
    FLOAT_DTYPES,
    assert_compiles,
    assert_finite,
    assert_gradcheck,
    assert_raises,
)
from tests.reference import topk as ref

METHODS = ["smooth", "exp", "sigmoid", "esp"]
THRESHOLD = ["smooth", "exp", "sigmoid"]
INF = math.inf
X = [3.0, 2.0, 1.0, 4.0]


@pytest.fixture(params=["auto", "sort"])
def solver(request, monkeypatch):
    """Run a test under both eager threshold solvers: the default sort-free active-set iteration
    (falling back to the sort when it does not settle) and the partial-sort closed form that
    ``torch.compile`` graphs use."""
    if request.param == "sort":
        monkeypatch.setattr(_threshold, "_POLISH", False)
    return request.param


# ---------------------------------------------------------------------------------------------
# Spec oracles (operators.md §3.2-3.8)
# ---------------------------------------------------------------------------------------------

TABLE = {  # §3.7, x = [3, 2, 1, 4], tau = 1
    ("esp", 1): [0.236883, 0.087144, 0.032059, 0.643914],
    ("esp", 2): [0.694413, 0.305587, 0.119203, 0.880797],
    ("esp", 3): [0.912856, 0.763117, 0.356086, 0.967941],
    ("exp", 1): [0.236883, 0.087144, 0.032059, 0.643914],
    ("exp", 2): [0.665241, 0.244728, 0.090031, 1.0],
    ("exp", 3): [1.0, 0.731059, 0.268941, 1.0],
    ("sigmoid", 1): [0.290285, 0.130789, 0.052451, 0.526475],
    ("sigmoid", 2): [0.622459, 0.377541, 0.182426, 0.817574],
    ("sigmoid", 3): [0.869211, 0.709715, 0.473525, 0.947549],
    ("smooth", 1): [0.24735, 0.090995, 0.033475, 0.62818],
    ("smooth", 2): [0.696735, 0.303265, 0.111565, 0.888435],
    ("smooth", 3): [0.909005, 0.75265, 0.37182, 0.966525],
}


@pytest.mark.parametrize(("method", "k"), list(TABLE))
def test_spec_reference_table(method, k, solver):
    x = torch.tensor(X, dtype=torch.float64)
    y = LF.soft_topk(x, k, method=method)
    torch.testing.assert_close(y, torch.tensor(TABLE[method, k], dtype=torch.float64), rtol=0, atol=6e-6)
    assert y.sum().item() == pytest.approx(k, abs=1e-12)


@pytest.mark.parametrize(
    ("method", "k", "lam"),
    [
        ("exp", 1, 4.44019),
        ("exp", 2, 3.407606),
        ("exp", 3, 2.313262),
        ("smooth", 1, 3.703803),
        ("smooth", 2, 2.5),
        ("smooth", 3, 1.296197),
    ],
)
def test_spec_thresholds(method, k, lam):
    # Read lambda back from the smallest output (x = 1, below the threshold): y = e^{x - lam} (exp)
    # or y = e^{x - lam} / 2 (smooth).
    y = LF.soft_topk(torch.tensor(X, dtype=torch.float64), k, method=method)
    recovered = 1.0 - math.log(y[2].item() * (2.0 if method == "smooth" else 1.0))
    assert recovered == pytest.approx(lam, abs=2e-6)


def test_spec_log_esp_values():
    x = torch.tensor(X, dtype=torch.float64)
    for k, expected in [(1, 4.4401897), (2, 7.5345340), (3, 9.4401897)]:
        assert LF.soft_topk_sum(x, k, method="esp").item() == pytest.approx(expected, abs=1e-7)


def test_spec_esp_hard_limit_and_brute_force():
    x = torch.tensor(X, dtype=torch.float64)
    hard = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(LF.soft_topk(x / 0.05, 2, method="esp"), hard, atol=1e-8, rtol=0)
    z = torch.randn(8, dtype=torch.float64) * 2
    for k in range(0, 9):
        mask, log_z = ref.esp_brute(z.numpy(), k)
        torch.testing.assert_close(
            LF.soft_topk(z, k, method="esp"), torch.from_numpy(mask), atol=1e-13, rtol=0
        )
        assert LF.soft_topk_sum(z, k, method="esp").item() == pytest.approx(log_z, abs=1e-12)


def test_spec_derivative_in_k():
    x = torch.tensor(X, dtype=torch.float64)
    k = torch.tensor(1.7, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda kk: LF.soft_topk(x, kk, method="sigmoid"), k)
    expected = torch.tensor([0.329780, 0.272711, 0.150552, 0.246957], dtype=torch.float64)
    torch.testing.assert_close(jac, expected, atol=1e-6, rtol=0)
    # dy/dk = w / W sums to 1 for every threshold method.
    for method in THRESHOLD:
        jac = torch.autograd.functional.jacobian(lambda kk, m=method: LF.soft_topk(x, kk, method=m), k)
        assert jac.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_spec_iterative_constructions_and_their_defects():
    x = torch.tensor(X, dtype=torch.float64)
    cases = [
        ("softkmax", 3, 1.0, [0.971665, 0.629101, 0.28177, 1.117464]),  # an entry above 1
        ("softkmax", 2, 1.0, [0.655042, 0.313585, 0.122947, 0.908426]),
        ("softkmax", 2, 0.1, [1.0, 0.0, 0.0, 1.0]),
        ("weighted", 2, 0.1, [0.5, 0.0, 0.0, 1.5]),  # wrong hard limit
        ("weighted", 3, 1.0, [1.2899, 0.714445, 0.300276, 0.695378]),  # not monotone
    ]
    for variant, k, tau, expected in cases:
        y = LF.soft_topk_iterative(x, k, temperature=tau, variant=variant)
        torch.testing.assert_close(y, torch.tensor(expected, dtype=torch.float64), atol=1e-4, rtol=0)
        oracle = ref.softkmax if variant == "softkmax" else ref.weighted_iteration
        np.testing.assert_allclose(y.numpy(), oracle(x.numpy() / tau, k), rtol=1e-12, atol=1e-15)


def test_smooth_is_not_softmax_at_k1_unless_max_prob_below_half():
    x = torch.tensor(X, dtype=torch.float64)
    assert (LF.soft_topk(x, 1) - torch.softmax(x, 0)).abs().max() > 0.01
    flat = torch.tensor([0.0, 0.1, -0.2, 0.5, 0.3], dtype=torch.float64)  # max softmax < 1/2
    assert torch.softmax(flat, 0).max() < 0.5
    torch.testing.assert_close(LF.soft_topk(flat, 1), torch.softmax(flat, 0), rtol=0, atol=1e-15)


@pytest.mark.parametrize("method", ["exp", "esp"])
def test_exactly_softmax_at_k1(method):
    x = torch.randn(5, 9, dtype=torch.float64) * 4
    torch.testing.assert_close(LF.soft_topk(x, 1, method=method), torch.softmax(x, -1), rtol=0, atol=1e-15)
    torch.testing.assert_close(
        LF.soft_topk_sum(x, 1, method=method, temperature=0.5), LF.logsumexp(x, -1, temperature=0.5)
    )


def test_published_search_bugs_are_fixed(solver):
    # Missing m = n candidate (n = 10, k = 9) and ties producing several candidates.
    z = torch.randn(10, dtype=torch.float64)
    for method in THRESHOLD:
        y = LF.soft_topk(z, 9, method=method)
        np.testing.assert_allclose(y.numpy(), ref.threshold_mask(z.numpy(), 9, method), atol=1e-12)
        ties = torch.tensor([2.0, 1.0, 1.0, 0.0], dtype=torch.float64)
        y = LF.soft_topk(ties, 2, method=method)
        np.testing.assert_allclose(y.numpy(), ref.threshold_mask(ties.numpy(), 2, method), atol=1e-12)
        assert y[1] == y[2]


# ---------------------------------------------------------------------------------------------
# Against the float64 oracles (differential), all solver paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", THRESHOLD)
@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])
def test_threshold_methods_match_bisection(method, scale, solver):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 40, generator=g, dtype=torch.float64) * scale
    z[1, :5] = z[1, 5]  # ties
    z[2, :30] = -INF  # fewer kept entries than some budgets
    for k in (1, 2.5, 17, 20, 39):
        y = LF.soft_topk(z, k, method=method)
        for row in range(z.shape[0]):
            expected = ref.threshold_mask(z[row].numpy(), k, method)
            np.testing.assert_allclose(y[row].numpy(), expected, rtol=1e-9, atol=1e-12)
        s = LF.soft_topk_sum(z, k, method=method)
        expected = [ref.threshold_sum(z[r].numpy(), k, method) for r in range(z.shape[0])]
        np.testing.assert_allclose(s.numpy(), expected, rtol=1e-11, atol=1e-9)


def test_esp_stable_where_the_post_recursion_fails():
    # Protocol A: the post's recursion returns NaN for spread inputs; the DP stays exact.
    g = torch.Generator().manual_seed(0)
    for n, scale, k in [(100, 30.0, 10), (100, 100.0, 50), (30, 100.0, 10)]:
        z = torch.randn(n, generator=g, dtype=torch.float64) * scale
        assert math.isnan(ref.post_recursion_log_z(z.numpy(), k))
        y = LF.soft_topk(z, k, method="esp")
        assert_finite(y)
        assert y.sum().item() == pytest.approx(k, abs=1e-9)
        assert ((y >= 0) & (y <= 1)).all()
        torch.testing.assert_close(LF.soft_topk(-z, n - k, method="esp"), 1 - y, atol=1e-10, rtol=0)
    z = torch.randn(100, generator=g, dtype=torch.float64)  # small variance: the recursion agrees
    k = 10
    assert LF.soft_topk_sum(z, k, method="esp").item() == pytest.approx(
        ref.post_recursion_log_z(z.numpy(), k)
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_stability_sweep(dtype):
    # Protocol A (reproduction_targets.md §2): no NaN, sums = k, entries in [0, 1].
    g = torch.Generator().manual_seed(2)
    for n in (30, 100, 1000):
        tol = 1e-9 if dtype == torch.float64 else 1e-6 * n
        for scale in (1.0, 10.0, 100.0) if n < 1000 else (1.0, 100.0):
            z = (torch.randn(3, n, generator=g, dtype=torch.float64) * scale).to(dtype)
            for k in (1, 10, n // 2, n - 1):
                for method in METHODS if n <= 100 else THRESHOLD:
                    y = LF.soft_topk(z, k, method=method)
                    assert_finite(y)
                    assert ((y >= 0) & (y <= 1)).all()
                    sums = y.double().sum(-1)
                    torch.testing.assert_close(sums, torch.full_like(sums, float(k)), atol=tol, rtol=0)


def test_capped_simplex_projection_differential():
    entmax = pytest.importorskip("entmax")
    # budget_bisect is the Euclidean projection onto the capped simplex: a different map. The two
    # coincide in their shared properties: sums, range, ranking, and the hard limit.
    g = torch.Generator().manual_seed(3)
    x = torch.stack([torch.randperm(50, generator=g) for _ in range(8)]).double() / 10
    for k in (1, 5, 25):
        ours = LF.soft_topk(x, k)
        peer = entmax.budget_bisect(x, budget=k, n_iter=100)
        torch.testing.assert_close(ours.sum(-1), peer.sum(-1), atol=1e-6, rtol=0)
        assert ((peer >= 0) & (peer <= 1)).all() and ((ours > 0) & (ours < 1)).all()
        # Same order (where the projection is not clipped to 0 or 1).
        inside = (peer > 1e-9) & (peer < 1 - 1e-9)
        for row in range(x.shape[0]):
            keep = inside[row]
            assert torch.equal(torch.argsort(ours[row][keep]), torch.argsort(peer[row][keep]))
        hard = torch.zeros_like(x).scatter(-1, x.topk(k, -1).indices, 1.0)
        torch.testing.assert_close(LF.soft_topk(x, k, temperature=1e-3), hard, atol=1e-12, rtol=0)
        torch.testing.assert_close(
            entmax.budget_bisect(x / 1e-3, budget=k, n_iter=100), hard, atol=1e-6, rtol=0
        )


# ---------------------------------------------------------------------------------------------
# Properties (Hypothesis)
# ---------------------------------------------------------------------------------------------

_rows = st.lists(st.floats(-30, 30, allow_nan=False, width=64), min_size=2, max_size=10)


@given(_rows, st.data(), st.sampled_from(METHODS), st.floats(0.05, 5.0))
def test_capped_simplex_monotone_shift_and_permutation(row, data, method, tau):
    x = torch.tensor(row, dtype=torch.float64)
    n = len(row)
    k = data.draw(st.integers(0, n)) if method == "esp" else data.draw(st.floats(0, n))
    y = LF.soft_topk(x, k, temperature=tau, method=method)
    assert y.sum().item() == pytest.approx(k, abs=1e-9)
    assert ((y >= -1e-15) & (y <= 1 + 1e-15)).all()
    order = torch.argsort(x)
    assert (y[order].diff() >= -1e-12).all()  # monotone
    torch.testing.assert_close(
        LF.soft_topk(x + 17.0, k, temperature=tau, method=method), y, atol=1e-9, rtol=0
    )
    perm = torch.tensor(data.draw(st.permutations(list(range(n)))))
    torch.testing.assert_close(
        LF.soft_topk(x[perm], k, temperature=tau, method=method), y[perm], atol=1e-12, rtol=0
    )


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=9, unique=True), st.data())
def test_hard_limit_and_extreme_budgets(row, data):
    x = torch.tensor(row, dtype=torch.float64)
    n = len(row)
    k = data.draw(st.integers(1, n - 1))
    gaps = x.sort().values.diff()
    if gaps.min() < 1e-3:
        return
    tau = gaps.min().item() / 80
    hard = torch.from_numpy(ref.hard_topk(row, k))
    for method in METHODS:
        torch.testing.assert_close(
            LF.soft_topk(x, k, temperature=tau, method=method), hard, atol=1e-6, rtol=0
        )
        torch.testing.assert_close(LF.soft_topk(x, n, method=method), torch.ones_like(x))
        torch.testing.assert_close(LF.soft_topk(x, 0, method=method), torch.zeros_like(x))
        smooth_sum = LF.soft_topk_sum(x, k, temperature=tau, method=method)
        top_sum = x.topk(k).values.sum()
        assert top_sum.item() - 1e-12 <= smooth_sum.item() <= top_sum.item() + 1e-3


@given(_rows, st.data(), st.sampled_from(METHODS))
def test_topk_sum_gradient_is_the_mask(row, data, method):
    x = torch.tensor(row, dtype=torch.float64, requires_grad=True)
    n = len(row)
    k = data.draw(st.integers(0, n)) if method == "esp" else data.draw(st.floats(0, n))
    tau = data.draw(st.floats(0.1, 3.0))
    (grad,) = torch.autograd.grad(LF.soft_topk_sum(x, k, temperature=tau, method=method), x)
    torch.testing.assert_close(
        grad, LF.soft_topk(x.detach(), k, temperature=tau, method=method), atol=1e-10, rtol=0
    )
    value = LF.soft_topk_sum(x.detach(), k, temperature=tau, method=method).item()
    assert value >= x.detach().topk(int(k)).values.sum().item() - 1e-9 or k != int(k)


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck(method):
    # The backward passes use only the output (threshold methods) or the DP: one solver suffices.
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    k = 3 if method == "esp" else 2.5
    gradgrad = method != "exp"
    assert_gradcheck(lambda v, t: LF.soft_topk(v, k, temperature=t, method=method), x, tau, gradgrad=gradgrad)
    assert_gradcheck(
        lambda v, t: LF.soft_topk_sum(v, k, temperature=t, method=method), x, tau, gradgrad=gradgrad
    )
    if method != "esp":
        kk = torch.tensor([1.5, 2.0, 5.3], dtype=torch.float64, requires_grad=True)
        assert_gradcheck(lambda v, q: LF.soft_topk(v, q, method=method), x, kk)
        assert_gradcheck(lambda v, q: LF.soft_topk_sum(v, q, method=method), x, kk)


@pytest.mark.parametrize("variant", ["softkmax", "weighted"])
def test_gradcheck_iterative(variant):
    # Plain autograd through the k rounds (comparison only, but differentiable).
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(
        lambda v, t: LF.soft_topk_iterative(v, 2, temperature=t, variant=variant), x, tau, gradgrad=True
    )


@pytest.mark.parametrize("method", THRESHOLD)
def test_implicit_jacobian_formula(method):
    # J = diag(w) - w w^T / W, symmetric with zero row sums (spec §3.5).
    x = torch.randn(9, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: LF.soft_topk(v, 3.5, method=method), x)
    y = LF.soft_topk(x, 3.5, method=method)
    w = {"sigmoid": y * (1 - y), "exp": torch.where(y < 1, y, 0.0), "smooth": torch.minimum(y, 1 - y)}[method]
    torch.testing.assert_close(jac, torch.diag(w) - torch.outer(w, w) / w.sum())
    torch.testing.assert_close(jac.sum(1), torch.zeros(9, dtype=torch.float64))


def test_esp_jacobian_is_symmetric_psd():
    x = torch.randn(7, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: LF.soft_topk(v, 3, method="esp"), x)
    torch.testing.assert_close(jac, jac.T)
    assert torch.linalg.eigvalsh(jac).min() > -1e-12
    torch.testing.assert_close(jac.sum(1), torch.zeros(7, dtype=torch.float64), atol=1e-14, rtol=0)


# ---------------------------------------------------------------------------------------------
# Masks, budgets per row, dims, straight-through, extreme inputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_masks_and_dead_rows(method, solver):
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(4, 8, dtype=torch.bool)
    mask[0, [1, 4]] = False
    mask[1, 2:] = False  # 2 kept entries < k = 3: both get 1
    mask[2] = False  # dead row
    y = LF.soft_topk(x, 3, method=method, mask=mask)
    assert (y[~mask] == 0).all()
    torch.testing.assert_close(y.sum(-1), torch.tensor([3.0, 2.0, 0.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(y[1, :2], torch.ones(2, dtype=torch.float64))
    (y * torch.randn(4, 8, dtype=torch.float64)).sum().backward()
    assert_finite(x.grad)
    assert (x.grad[~mask] == 0).all() and (x.grad[1:3] == 0).all()
    # Masked entries behave as if removed; -inf is the same as a mask.
    torch.testing.assert_close(y[0][mask[0]], LF.soft_topk(x.detach()[0][mask[0]], 3, method=method))
    torch.testing.assert_close(
        LF.soft_topk(x.detach().masked_fill(~mask, -INF), 3, method=method), y.detach()
    )
    s = LF.soft_topk_sum(x.detach(), 3, method=method, mask=mask)
    assert_finite(s)
    assert s[2] == 0
    torch.testing.assert_close(s[1], x.detach()[1, :2].sum())


@pytest.mark.parametrize("method", METHODS)
def test_per_row_budget_and_dims(method):
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    k = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 1, 2, 3], [0, 1, 2, 3, 4]])
    if method != "esp":
        k = k.double() + 0.25 * (k < 6)
    y = LF.soft_topk(x, k, dim=1, method=method)
    torch.testing.assert_close(y.sum(1), k.double())
    for i in range(3):
        for j in range(5):
            kk = k[i, j].item()
            torch.testing.assert_close(
                y[i, :, j], LF.soft_topk(x[i, :, j], kk if method != "esp" else int(kk), method=method)
            )
    # keepdim-shaped budgets are accepted too.
    torch.testing.assert_close(LF.soft_topk(x, k.unsqueeze(1), dim=1, method=method), y)


def test_straight_through():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 6, dtype=torch.float64)
    y = LF.soft_topk(x, 2, straight_through=True)
    hard = torch.from_numpy(np.stack([ref.hard_topk(r, 2) for r in x.detach().numpy()]))
    torch.testing.assert_close(y.detach(), hard)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    (soft_grad,) = torch.autograd.grad((LF.soft_topk(x, 2) * w).sum(), x)
    torch.testing.assert_close(grad, soft_grad)
    per_row = LF.soft_topk(x.detach(), torch.tensor([1, 2, 3]), straight_through=True, method="esp")
    torch.testing.assert_close(per_row.sum(-1), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("method", METHODS)
def test_extreme_inputs(method):
    g = torch.Generator().manual_seed(5)
    cases = [
        torch.randn(3, 12, generator=g, dtype=torch.float64) * 100,  # large spread
        torch.full((3, 12), 7.0, dtype=torch.float64),  # constant rows
        torch.tensor([[1e4, -1e4] * 6, [0.0] * 12, [1.0] * 6 + [2.0] * 6], dtype=torch.float64),
    ]
    for x in cases:
        for k in (0, 1, 5, 12):
            y = LF.soft_topk(x, k, method=method)
            assert_finite(y)
            torch.testing.assert_close(y.sum(-1), torch.full((3,), float(k), dtype=torch.float64))
            assert_finite(LF.soft_topk_sum(x, k, method=method))
    y = LF.soft_topk(cases[1], 5, method=method)
    torch.testing.assert_close(y, torch.full_like(y, 5 / 12))  # constant rows: k / n everywhere
    assert LF.soft_topk(torch.empty(0, 5), 2, method=method).shape == (0, 5)
    assert LF.soft_topk(torch.empty(3, 0), 0, method=method).shape == (3, 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_dtype_matrix(dtype, method):
    x = (torch.randn(4, 16, dtype=torch.float64) * 3).to(dtype)
    k = 5
    y = LF.soft_topk(x, k, method=method, temperature=0.7)
    assert y.dtype == dtype
    expected = LF.soft_topk(x.double(), k, method=method, temperature=0.7)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]
    torch.testing.assert_close(y.double(), expected, atol=tol, rtol=0)
    s = LF.soft_topk_sum(x, k, method=method, temperature=0.7)
    assert s.dtype == dtype
    torch.testing.assert_close(
        s.double(), LF.soft_topk_sum(x.double(), k, method=method, temperature=0.7), atol=tol * 50, rtol=tol
    )


def test_torch_compile_fullgraph():
    x = torch.randn(4, 7, requires_grad=True)
    mask = torch.rand(4, 7) > 0.2
    mask[2] = False
    t = torch.tensor(0.7, requires_grad=True)
    k = torch.tensor([1.0, 2.5, 3.0, 0.5], requires_grad=True)
    # One graph per code path: the static threshold solver (smooth, exp), the Newton polish
    # (sigmoid), the DP (esp), the implicit threshold of the sum, the hard mask, the iterations.
    assert_compiles(lambda v, tau: LF.soft_topk(v, 2, temperature=tau, mask=mask), x, t)
    assert_compiles(lambda v, q: LF.soft_topk(v, q, method="sigmoid"), x, k)
    assert_compiles(lambda v, tau: LF.soft_topk(v, 2, temperature=tau, method="esp", mask=mask), x, t)
    assert_compiles(lambda v, q: LF.soft_topk_sum(v, q, method="exp"), x, k)
    assert_compiles(lambda v: LF.soft_topk_sum(v, torch.tensor([1, 2, 3, 2]), method="esp"), x)
    assert_compiles(lambda v: LF.soft_topk(v, 3, straight_through=True) + LF.soft_topk_iterative(v, 2), x)


# ---------------------------------------------------------------------------------------------
# Bad input, Modules
# ---------------------------------------------------------------------------------------------


def test_bad_inputs():
    x = torch.randn(2, 4)
    assert_raises(ValueError, "k: expected a number in [0, 4] (the size of dim 1), got 5", LF.soft_topk, x, 5)
    assert_raises(
        ValueError, "k: expected a number in [0, 4] (the size of dim 1), got -1", LF.soft_topk, x, -1
    )
    assert_raises(
        ValueError,
        "k: expected an integer in [0, 4] (the size of dim 1), got 1.5",
        LF.soft_topk,
        x,
        1.5,
        method="esp",
    )
    assert_raises(ValueError, "k: expected an integer in [0, 4]", LF.soft_topk, x, 1.5, straight_through=True)
    assert_raises(
        ValueError,
        "k: expected a number in [0, 4] (the size of dim 1), got 7",
        LF.soft_topk,
        x,
        torch.tensor([1.0, 7.0]),
    )
    assert_raises(
        ValueError,
        "k: expected a number or a tensor broadcastable to the input's shape without dim (2,), got shape",
        LF.soft_topk,
        x,
        torch.ones(3),
    )
    assert_raises(TypeError, "k: expected a number or a tensor, got str", LF.soft_topk, x, "2")
    assert_raises(
        ValueError,
        "temperature: expected a positive finite number, got 0.0",
        LF.soft_topk,
        x,
        2,
        temperature=0.0,
    )
    assert_raises(
        ValueError,
        "method: expected one of 'smooth', 'exp', 'sigmoid', 'esp', got 'sparse'",
        LF.soft_topk,
        x,
        2,
        method="sparse",
    )
    assert_raises(TypeError, "mask: expected a bool tensor", LF.soft_topk, x, 2, mask=torch.ones(2, 4))
    assert_raises(IndexError, "dim: expected a dimension in [-2, 1]", LF.soft_topk, x, 2, dim=2)
    assert_raises(TypeError, "input: expected a floating-point tensor", LF.soft_topk, torch.tensor([1, 2]), 1)
    assert_raises(
        ValueError,
        "variant: expected one of 'softkmax', 'weighted', got 'x'",
        LF.soft_topk_iterative,
        x,
        2,
        variant="x",
    )
    assert_raises(TypeError, "k: expected an int, got float", LF.soft_topk_iterative, x, 2.0)
    assert_raises(ValueError, "k: expected an integer in [0, 4]", LF.soft_topk_sum, x, 2.5, method="esp")


def test_module_matches_functional():
    x = torch.randn(3, 6)
    mask = torch.rand(3, 6) > 0.3
    module = LN.SoftTopK(2, temperature=0.5, method="exp")
    torch.testing.assert_close(module(x, mask), LF.soft_topk(x, 2, temperature=0.5, method="exp", mask=mask))
    assert "k=2" in repr(module) and "method='exp'" in repr(module)
    learn = LN.SoftTopK(2, temperature=torch.nn.Parameter(torch.tensor(1.0)))
    learn(x)[:, 0].sum().backward()
    assert learn.temperature.grad is not None
    assert_raises(ValueError, "method: expected one of", LN.SoftTopK, 2, method="nope")
