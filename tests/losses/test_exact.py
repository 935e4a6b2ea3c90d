"""EXACT (losses.md §8; operators.md §6): expected accuracy of the Gaussian-perturbed arg-max."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special

import logitkit.functional as LF
import logitkit.nn as LN
from logitkit import _blocks
from tests.helpers import LOW_PRECISION, assert_compiles, assert_finite, assert_gradcheck, assert_raises
from tests.losses.test_cross_entropy import _case
from tests.reference import objectives as ref


def _probs(x, y, **kwargs):
    return 1 - LF.exact_loss(x, y, reduction="none", **kwargs)


def test_spec_oracle_values():
    """operators.md §6.4: mu = [1, 0.3, -0.5, 2] -> [0.210869, 0.072416, 0.016057, 0.700659]."""
    mu = torch.tensor([[1.0, 0.3, -0.5, 2.0]] * 4, dtype=torch.float64)
    p = _probs(mu, torch.arange(4))
    expected = torch.tensor([0.210869, 0.072416, 0.016057, 0.700659], dtype=torch.float64)
    torch.testing.assert_close(p, expected, rtol=0, atol=1e-6)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-10)
    # the post's quadrature rule family: the midpoint rule at K = 2000 is within 1e-5
    midpoint = _probs(mu, torch.arange(4), quadrature="midpoint", nodes=2000)
    torch.testing.assert_close(midpoint, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("n", "c", "scale"), [(6, 3, 0.5), (6, 5, 2.0), (4, 12, 1.0), (3, 40, 3.0)])
def test_matches_adaptive_quadrature(n, c, scale):
    g = torch.Generator().manual_seed(c)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, c, (n,), generator=g)
    ours = _probs(x, y, sigma=0.8)
    expected = [
        ref.gaussian_argmax_prob(row, int(t), 0.8) for row, t in zip(x.numpy(), y.numpy(), strict=True)
    ]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-7)


def test_two_classes_closed_form():
    x = torch.tensor([[0.3, -1.2], [5.0, 4.0], [-30.0, 30.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    d = np.array([1.5, -1.0, 60.0]) / 0.7
    np.testing.assert_allclose(_probs(x, y, sigma=0.7).numpy(), special.ndtr(d / math.sqrt(2)), rtol=1e-14)


def test_hermite_converges_fast_and_midpoint_slowly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 10, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 10, (16,), generator=g)
    exact = torch.tensor(
        [ref.gaussian_argmax_prob(r, int(t)) for r, t in zip(x.numpy(), y.numpy(), strict=True)]
    )
    hermite = [(_probs(x, y, nodes=k) - exact).abs().max().item() for k in (8, 16, 32)]
    midpoint = [(_probs(x, y, nodes=k, quadrature="midpoint") - exact).abs().max().item() for k in (64, 256)]
    assert hermite[2] < 1e-7 and hermite[1] < 1e-3
    assert hermite[0] > hermite[1] > hermite[2]
    assert 2 < midpoint[0] / midpoint[1] < 8  # O(1/K)
    assert midpoint[1] > 100 * hermite[2]


def test_matches_monte_carlo():
    mu = np.array([0.5, 1.5, -0.3, 1.0, 0.0])
    ours = _probs(torch.from_numpy(np.tile(mu, (5, 1))), torch.arange(5)).numpy()
    for y in range(5):
        mc = ref.exact_monte_carlo(mu, y, samples=400_000, seed=y)
        assert abs(mc - ours[y]) < 4 * math.sqrt(ours[y] * (1 - ours[y]) / 400_000)


def test_grid_matches_oracle():
    for shape in [(6, 5), (4, 5, 3)]:
        x, y = _case(shape, "index", -100)
        w = torch.rand(shape[1], dtype=torch.float64) + 0.1
        for weight in (None, w):
            npw = None if weight is None else weight.numpy()
            for reduction in ("mean", "sum", "none"):
                ours = LF.exact_loss(x, y, sigma=1.3, weight=weight, reduction=reduction)
                expected = ref.exact_loss(
                    x.detach().numpy(), y.numpy(), sigma=1.3, weight=npw, reduction=reduction
                )
                np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-7, atol=1e-8)
            log = LF.exact_loss(x, y, sigma=1.3, weight=weight, log=True)
            expected = ref.exact_loss(x.detach().numpy(), y.numpy(), sigma=1.3, weight=npw, log=True)
            assert log.item() == pytest.approx(expected, rel=1e-7)


@settings(max_examples=15)
@given(st.integers(3, 7), st.floats(-1e3, 1e3), st.integers(0, 2**16))
def test_properties(c, shift, seed):
    """Shift invariance, permutation equivariance, sums to 1 over the classes, monotone in mu_y."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(c, c, generator=g, dtype=torch.float64) * 2
    x = x[:1].expand(c, c).contiguous()  # one score vector, every class as the target
    y = torch.arange(c)
    p = _probs(x, y)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(_probs(x + shift, y), p, rtol=1e-6, atol=1e-9)
    perm = torch.randperm(c, generator=g)
    torch.testing.assert_close(_probs(x[:, perm], torch.argsort(perm)), p, rtol=1e-9, atol=1e-12)
    bumped = x.clone()
    bumped[0, 0] += 0.5
    assert _probs(bumped[:1], y[:1]).item() > p[0].item()


def test_sigma_limits():
    x = torch.tensor([[1.0, 0.3, -0.5, 2.0], [0.0, 2.0, 1.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([3, 0])
    torch.testing.assert_close(_probs(x, y, sigma=1e-3), torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        _probs(x, y, sigma=1e6), torch.full((2,), 0.25, dtype=torch.float64), atol=1e-5, rtol=0
    )


def test_toy_example_of_the_post():
    """losses.md §8.3 / reproduction_targets.md §14: data (-0.25, -), (0, -), (0.25, +), f = k(x - b).

    Summed-CE minimisers 0.70, 0.36, 0.173, 0.131, 0.125 for k = 1, 2, 5, 10, 20; hinge minimum 1.75 on
    [0.75, 1]; 100 % accuracy needs b in (0, 0.25). EXACT has the same dependence on its temperature
    sigma: small sigma puts its minimiser inside (0, 0.25), sigma = 0.5 does not (the post's point).
    """
    xs = torch.tensor([-0.25, 0.0, 0.25], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])

    def logits(b, k=1.0):
        return torch.stack([torch.zeros(3, dtype=torch.float64), k * (xs - b)], 1)

    def argmin(fn):
        return optimize.minimize_scalar(fn, bounds=(-1, 2), method="bounded", options={"xatol": 1e-9}).x

    for k, b_star in ((1, 0.70), (2, 0.36), (5, 0.173), (10, 0.131), (20, 0.125)):
        b = argmin(lambda b, k=k: LF.cross_entropy(logits(b, k), y, reduction="sum").item())
        assert b == pytest.approx(b_star, abs=2e-3)
    hinge = [
        torch.relu(1 - torch.tensor([-1.0, -1.0, 1.0]) * (xs - b)).sum().item()
        for b in np.linspace(0.5, 1.2, 71)
    ]
    assert min(hinge) == pytest.approx(1.75)
    assert [b for b, h in zip(np.linspace(0.5, 1.2, 71), hinge, strict=True) if h < 1.75 + 1e-12][::70] == [
        0.75
    ]
    for sigma in (0.05, 0.1):
        b = argmin(lambda b, s=sigma: LF.exact_loss(logits(b), y, sigma=s, reduction="sum").item())
        assert 0 < b < 0.25
        assert (logits(b).argmax(1) == y).all()
    b = argmin(lambda b: LF.exact_loss(logits(b), y, sigma=0.5, reduction="sum").item())
    assert b > 0.25


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 5])
def test_gradcheck(c):
    g = torch.Generator().manual_seed(c)
    x = (torch.randn(4, c, 2, generator=g, dtype=torch.float64) * 2).requires_grad_()
    y = torch.randint(0, c, (4, 2), generator=g)
    y[0, 0] = -100
    sigma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    w = torch.rand(c, dtype=torch.float64) + 0.1
    assert_gradcheck(lambda v, s: LF.exact_loss(v, y, sigma=s, weight=w), x, sigma)
    assert_gradcheck(lambda v: LF.exact_loss(v, y, log=True, nodes=24), x)
    assert_gradcheck(lambda v: LF.exact_loss(v, y, quadrature="midpoint", nodes=16, reduction="none"), x)


def test_gradient_step_lowers_the_loss():
    """The official fork's test: a small step against the gradient lowers the loss."""
    x, y = _case((32, 10), "index", -100)
    loss = LF.exact_loss(x, y)
    (grad,) = torch.autograd.grad(loss, x)
    assert LF.exact_loss(x.detach() - 0.1 * grad, y).item() < loss.item()


@pytest.mark.parametrize("shape", [(37, 11), (5, 11, 13)])
def test_blocked_path(monkeypatch, shape):
    x, y = _case(shape, "index", -100)
    expected = LF.exact_loss(x, y, reduction="none")
    (g_expected,) = torch.autograd.grad(expected.sum(), x)
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
    ours = LF.exact_loss(x, y, reduction="none")
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), x)[0], g_expected)


def test_masks_dead_rows_extremes_and_empty():
    inf = math.inf
    x = torch.tensor(
        [[1e4, -1e4, 0.0], [0.0, 1e4, 1e4], [-inf, -inf, -inf], [0.0, -inf, 1.0], [-inf, 0.0, 1.0]],
        requires_grad=True,
    )
    y = torch.tensor([0, 1, 2, 0, 0])
    loss = LF.exact_loss(x, y, reduction="none")
    p3 = special.ndtr(-1 / math.sqrt(2))  # the -inf class cannot win
    torch.testing.assert_close(
        loss, torch.tensor([0.0, 0.5, 0.0, 1 - p3, 1.0], dtype=torch.float32), rtol=0, atol=1e-6
    )
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert_finite(grad)
    assert (grad[2] == 0).all() and (grad[4] == 0).all() and grad[3, 1] == 0
    log = LF.exact_loss(x[:4], y[:4], log=True)
    assert torch.isfinite(log)
    assert LF.exact_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).item() == 0.0
    assert LF.exact_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), log=True).item() == 0.0
    assert LF.exact_loss(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)).item() == 0.0  # one class


@pytest.mark.parametrize("dtype", [torch.float32, *LOW_PRECISION])
def test_dtypes(dtype):
    x, y = _case((8, 6, 2), "index", -100, dtype=dtype)
    loss = LF.exact_loss(x, y)
    assert loss.dtype == dtype
    expected = LF.exact_loss(x.detach().double(), y).item()
    assert loss.item() == pytest.approx(expected, rel=1e-5 if dtype == torch.float32 else 2e-2)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.dtype == dtype
    assert_finite(grad)


def test_torch_compile_fullgraph():
    x = torch.randn(6, 5, 3, requires_grad=True)
    y = torch.randint(0, 5, (6, 3))
    assert_compiles(lambda v: LF.exact_loss(v, y, nodes=8), x)
    assert_compiles(lambda v: LF.exact_loss(v[:, :2], y % 2, log=True), x)


def test_module():
    x, y = _case((6, 5), "index", -100)
    w = torch.rand(5, dtype=torch.float64)
    module = LN.ExactLoss(sigma=0.5, nodes=16, weight=w)
    torch.testing.assert_close(module(x, y), LF.exact_loss(x, y, sigma=0.5, nodes=16, weight=w))
    assert list(module.state_dict()) == ["weight"] and "sigma=0.5" in repr(module)


def test_bad_inputs():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    assert_raises(ValueError, "sigma: expected a positive finite number, got 0", LF.exact_loss, x, y, sigma=0)
    assert_raises(
        ValueError,
        "sigma: expected positive finite values, got -1",
        LF.exact_loss,
        x,
        y,
        sigma=torch.tensor(-1.0),
    )
    assert_raises(
        ValueError,
        "sigma: expected a float or a one-element tensor, got shape (2,)",
        LF.exact_loss,
        x,
        y,
        sigma=torch.ones(2),
    )
    assert_raises(
        ValueError,
        "nodes (quadrature='hermite'): expected an integer in [1, 256], got 0",
        LF.exact_loss,
        x,
        y,
        nodes=0,
    )
    assert_raises(
        ValueError,
        "nodes (quadrature='hermite'): expected an integer in [1, 256], got 400",
        LF.exact_loss,
        x,
        y,
        nodes=400,
    )
    assert_raises(
        TypeError,
        "nodes (quadrature='hermite'): expected an integer, got 8.0",
        LF.exact_loss,
        x,
        y,
        nodes=8.0,
    )
    assert_raises(
        ValueError,
        "quadrature: expected one of 'hermite', 'midpoint', got 'genz'",
        LF.exact_loss,
        x,
        y,
        quadrature="genz",
    )
    assert_raises(
        TypeError,
        "target: exact_loss expects integer class indices, got dtype torch.float32",
        LF.exact_loss,
        x,
        torch.softmax(x, 1),
    )
    assert_raises(ValueError, "reduction: the log variant", LF.exact_loss, x, y, log=True, reduction="sum")
    assert_raises(
        ValueError, "target: expected class indices in [0, 3)", LF.exact_loss, x, torch.tensor([0, 1, 3, 1])
    )


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_equals_the_perturb_and_argmax_operator_with_normal_noise(sigma):
    # Two independent quadratures: EXACT's target-only centred Gauss-Hermite rule and the operator's
    # all-class grid in s (logitkit.ops.perturb) give the same probability of the target.
    gen = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(64, 7, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 7, (64,), generator=gen)
    accuracy = 1.0 - LF.exact_loss(x, y, sigma=sigma, reduction="none")
    probs = LF.perturb_argmax_probs(x, dim=1, noise="normal", temperature=sigma)
    torch.testing.assert_close(accuracy, probs.gather(1, y[:, None])[:, 0], rtol=0, atol=1e-8)
