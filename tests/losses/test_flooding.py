"""Flooding (losses.md §5): the rule, and its gradient-penalty reading checked numerically."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
import logitkit.nn as LN
from tests.helpers import assert_compiles, assert_gradcheck, assert_raises

# ---------------------------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------------------------


@given(st.floats(0.0, 10.0), st.floats(0.0, 5.0))
def test_value_and_gradient(value, level):
    loss = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    flooded = LF.flooding(loss, level)
    assert flooded.item() == pytest.approx(abs(value - level) + level, abs=1e-12)
    assert flooded.item() >= level - 1e-12
    (grad,) = torch.autograd.grad(flooded, loss)
    # level 0 is the identity; otherwise sign(L - b), 0 exactly at b
    sign = 0.0 if value == level else math.copysign(1.0, value - level)
    expected = 1.0 if level == 0 else sign
    assert grad.item() == expected


def test_level_zero_is_the_identity():
    loss = torch.tensor([0.0, 0.3, 2.0], requires_grad=True)
    assert LF.flooding(loss, 0.0) is loss
    assert LF.flooding(loss, 0) is loss


def test_gradient_flips_below_the_level():
    """Same value and gradient above b, negated gradient below b, continuous at b."""
    w = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def base():
        return (w * x).sum() ** 2 / 10

    (g,) = torch.autograd.grad(base(), w)
    value = base().item()
    (above,) = torch.autograd.grad(LF.flooding(base(), value / 2), w)
    (below,) = torch.autograd.grad(LF.flooding(base(), value * 2), w)
    torch.testing.assert_close(above, g)
    torch.testing.assert_close(below, -g)
    assert LF.flooding(base(), value * 2).item() == pytest.approx(3 * value)


def test_elementwise_and_gradcheck():
    loss = torch.tensor([0.05, 0.2, 0.7], dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(
        LF.flooding(loss, 0.1), torch.tensor([0.15, 0.2, 0.7], dtype=torch.float64), rtol=0, atol=1e-15
    )
    assert_gradcheck(lambda v: LF.flooding(v, 0.1), loss)


def test_dtypes_and_compile():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        out = LF.flooding(torch.tensor(0.02, dtype=dtype), 0.1)
        assert out.dtype == dtype
        assert out.item() == pytest.approx(0.18, rel=1e-2)
    assert_compiles(lambda v: LF.flooding(v.square().mean(), 0.5), torch.randn(5, requires_grad=True))


def test_module_wraps_any_loss():
    criterion = LN.Flooding(LN.CrossEntropyLoss(label_smoothing=0.1), level=0.5)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(criterion(x, y), LF.flooding(LF.cross_entropy(x, y, label_smoothing=0.1), 0.5))
    assert "level=0.5" in repr(criterion) and not list(criterion.parameters())
    assert isinstance(criterion.base_loss, LN.CrossEntropyLoss)


def test_bad_inputs():
    assert_raises(
        ValueError, "level: expected a number in [0, inf], got -0.1", LF.flooding, torch.tensor(1.0), -0.1
    )
    assert_raises(
        ValueError, "level: expected a number in [0, inf], got nan", LF.flooding, torch.tensor(1.0), math.nan
    )
    assert_raises(
        TypeError, "level: expected a number, got Tensor", LF.flooding, torch.tensor(1.0), torch.tensor(0.1)
    )
    assert_raises(TypeError, "loss: expected a floating-point tensor", LF.flooding, torch.tensor(1), 0.1)
    assert_raises(ValueError, "level: expected a number in [0, inf]", LN.Flooding, LN.CrossEntropyLoss(), -1)
    assert_raises(TypeError, "base_loss: expected a loss Module or callable", LN.Flooding, 3, 0.1)


# ---------------------------------------------------------------------------------------------
# Gradient-penalty reading (post 7643, eqs. 2-5)
# ---------------------------------------------------------------------------------------------


def _grad(loss_fn, theta, *, create_graph=False):
    theta = theta if theta.requires_grad else theta.detach().requires_grad_()
    (g,) = torch.autograd.grad(loss_fn(theta), theta, create_graph=create_graph)
    return g


def _flooded_step(loss_fn, theta, level, lr):
    """One step of gradient descent on the flooded loss."""
    theta = theta.detach().requires_grad_()
    (g,) = torch.autograd.grad(LF.flooding(loss_fn(theta), level), theta)
    return (theta - lr * g).detach()


def _two_flooded_steps(loss_fn, theta, lr, *, descend_first=True):
    """Descend-then-ascend (or the reverse) produced by flooding itself: the level sits between
    the losses at the two points, so the sign of the flooded gradient flips between the steps."""
    sign = 1.0 if descend_first else -1.0
    first = (theta - sign * lr * _grad(loss_fn, theta)).detach()
    level = 0.5 * (loss_fn(theta).item() + loss_fn(first).item())
    step1 = _flooded_step(loss_fn, theta, level, lr)
    torch.testing.assert_close(step1, first)
    return _flooded_step(loss_fn, step1, level, lr)


def _penalty_step(loss_fn, theta, coefficient):
    r""":math:`\theta - c \nabla \Vert \nabla \mathcal L(\theta) \Vert^2` (double backward)."""
    theta = theta.detach().requires_grad_()
    g = _grad(loss_fn, theta, create_graph=True)
    (penalty_grad,) = torch.autograd.grad(g.square().sum(), theta)
    return (theta - coefficient * penalty_grad).detach()


def test_quadratic_is_exact():
    """L = theta^T A theta / 2: the two steps give exactly theta - eps^2 A^2 theta."""
    a = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.7]], dtype=torch.float64)
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    def loss_fn(t):
        return 0.5 * t @ a @ t

    for descend_first in (True, False):
        eps = 0.1
        two = _two_flooded_steps(loss_fn, theta, eps, descend_first=descend_first)
        torch.testing.assert_close(two, theta - eps**2 * a @ a @ theta, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(two, _penalty_step(loss_fn, theta, eps**2 / 2), rtol=1e-13, atol=1e-14)
    # asymmetric alternation: theta - (e1 - e2) A theta - e1 e2 A^2 theta
    e1, e2 = 0.05, 0.02
    t1 = theta - e1 * a @ theta
    t2 = t1 + e2 * a @ t1
    torch.testing.assert_close(
        t2, theta - (e1 - e2) * a @ theta - e1 * e2 * a @ a @ theta, rtol=1e-13, atol=1e-14
    )


def _logcosh_loss(t):
    """The spec's non-quadratic check: sum log cosh theta_i + 0.3 theta_0 theta_1^2."""
    return torch.log(torch.cosh(t)).sum() + 0.3 * t[0] * t[1] ** 2


@pytest.mark.parametrize("descend_first", [True, False])
def test_first_order_expansion_gap_is_third_order(descend_first):
    """Gap between two flooded steps and theta - (eps^2 / 2) grad ||grad L||^2 shrinks ~8x per
    halving of eps (O(eps^3)); the wrong coefficient eps^2 leaves an O(eps^2) gap (~4x)."""
    theta = torch.tensor([1.0, 0.5], dtype=torch.float64)
    gaps, wrong = [], []
    for eps in (0.1, 0.05, 0.025):
        two = _two_flooded_steps(_logcosh_loss, theta, eps, descend_first=descend_first)
        gaps.append((two - _penalty_step(_logcosh_loss, theta, eps**2 / 2)).norm().item())
        wrong.append((two - _penalty_step(_logcosh_loss, theta, eps**2)).norm().item())
    # spec (losses.md §5.5): 1.8e-4, 2.3e-5, 2.8e-6 (descend first); 1.7e-4, 2.2e-5, 2.8e-6
    assert gaps[0] == pytest.approx(1.8e-4 if descend_first else 1.7e-4, rel=0.1)
    for big, small in itertools.pairwise(gaps):
        assert 6.5 < big / small < 9.5
    for big, small in itertools.pairwise(wrong):
        assert 3.0 < big / small < 5.0


def test_asymmetric_alternation_expansion():
    """Descend e1, ascend e2 is descent with step e1 - e2 on L + e1 e2 / (2 (e1 - e2)) ||grad L||^2
    (eq. 5); spec: gap 9.1e-6 against a step of 3.5e-2 at (0.05, 0.02); O(eps^3) when halved."""
    theta = torch.tensor([1.0, 0.5], dtype=torch.float64)
    gaps = []
    for scale in (1.0, 0.5, 0.25):
        e1, e2 = 0.05 * scale, 0.02 * scale
        t1 = theta - e1 * _grad(_logcosh_loss, theta)
        t2 = t1 + e2 * _grad(_logcosh_loss, t1)
        expansion = _penalty_step(_logcosh_loss, theta, e1 * e2 / 2) - (e1 - e2) * _grad(_logcosh_loss, theta)
        gaps.append((t2 - expansion).norm().item())
        if scale == 1.0:
            assert (t2 - theta).norm().item() == pytest.approx(3.5e-2, rel=0.05)
            assert gaps[0] == pytest.approx(9.1e-6, rel=0.1)
    for big, small in itertools.pairwise(gaps):
        assert 6.5 < big / small < 9.5


def test_expansion_on_a_softmax_regression_with_fused_cross_entropy():
    """The same reading on a real classifier: logitkit's cross-entropy supports the exact double
    backward (create_graph) that the gradient penalty needs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=g)

    def loss_fn(flat):
        return LF.cross_entropy(x @ flat.view(4, 3), y, label_smoothing=0.1)

    theta = torch.randn(12, generator=g, dtype=torch.float64)
    gaps = []
    for eps in (0.2, 0.1, 0.05):
        two = _two_flooded_steps(loss_fn, theta, eps)
        gaps.append((two - _penalty_step(loss_fn, theta, eps**2 / 2)).norm().item())
    for big, small in itertools.pairwise(gaps):
        assert 6.0 < big / small < 10.0
