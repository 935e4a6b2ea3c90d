"""TaiLr (losses.md §6): CE semantics, both forms, the spec's oracle values, numerics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
import logitkit.nn as LN
from logitkit import _blocks
from tests.helpers import LOW_PRECISION, assert_compiles, assert_finite, assert_gradcheck, assert_raises
from tests.losses.test_cross_entropy import GRID, _case
from tests.reference import objectives as ref

GAMMAS = [1e-7, 0.1, 0.8]


@pytest.mark.parametrize(("shape", "kind", "ignore_index", "weighted", "eps", "reduction"), GRID)
def test_grid_matches_oracle(shape, kind, ignore_index, weighted, eps, reduction):
    """Every CE option (targets x weight x ignore_index x smoothing x reduction x N-D), both forms."""
    x, target = _case(shape, kind, ignore_index)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)
    np_kwargs = dict(kwargs, weight=None if weight is None else weight.numpy())
    for form, b in (("closed", None), ("weighted", 0.0), ("weighted", 0.3)):
        extra = {} if b is None else {"form": form, "min_weight": b}
        ours = LF.tailr_loss(x, target, gamma=0.3, **extra, **kwargs)
        expected = ref.tailr_loss(x.detach().numpy(), target.numpy(), gamma=0.3, min_weight=b, **np_kwargs)
        np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("shape", "kind", "ignore_index", "weighted", "eps", "reduction"), GRID[::3])
def test_gamma_zero_is_cross_entropy_exactly(shape, kind, ignore_index, weighted, eps, reduction):
    x, target = _case(shape, kind, ignore_index)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)
    theirs = F.cross_entropy(x, target, **kwargs)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
    for form in ("closed", "weighted"):
        ours = LF.tailr_loss(x, target, gamma=0.0, form=form, **kwargs)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
        (g_ours,) = torch.autograd.grad(ours.sum(), x)
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-12, atol=1e-12)
        assert torch.equal(ours, LF.cross_entropy(x, target, **kwargs))


def test_small_gamma_is_continuous_at_cross_entropy():
    x, target = _case((16, 7), "index", -100)
    for eps in (0.0, 0.2):
        ce = F.cross_entropy(x, target, label_smoothing=eps)
        tailr = LF.tailr_loss(x, target, gamma=1e-12, label_smoothing=eps)
        # log(gamma + (1 - gamma) p) - log p ~ gamma / p: 1e-8 at p ~ 1e-4
        torch.testing.assert_close(tailr, ce, rtol=1e-7, atol=0)


def test_spec_oracle_values_at_p_0_3():
    """losses.md §6.3: p = 0.3 gives 1.203973 / 1.104725 / 0.754114 with weights 1 / 0.810811 /
    0.348837 for gamma = 0 / 0.1 / 0.8."""
    x = torch.log(torch.tensor([[0.3, 0.7]], dtype=torch.float64)).requires_grad_()
    y = torch.tensor([0])
    for gamma, loss, weight in ((0.0, 1.203973, 1.0), (0.1, 1.104725, 0.810811), (0.8, 0.754114, 0.348837)):
        value = LF.tailr_loss(x, y, gamma=gamma)
        assert value.item() == pytest.approx(loss, abs=1e-6)
        # the weighted form's value is w * (-log p); its gradient is the closed form's
        weighted = LF.tailr_loss(x, y, gamma=gamma, form="weighted")
        assert weighted.item() == pytest.approx(weight * -math.log(0.3), abs=1e-6)
        (g_closed,) = torch.autograd.grad(value, x)
        (g_weighted,) = torch.autograd.grad(weighted, x)
        torch.testing.assert_close(g_closed, g_weighted)
        # d loss / d z_y = -w (1 - p_y)
        assert g_closed[0, 0].item() == pytest.approx(-weight * 0.7, abs=1e-6)


@given(st.floats(1e-6, 1 - 1e-6), st.floats(0.0, 0.99))
def test_loss_bounds_and_weight(p, gamma):
    """1 - p <= loss <= -log p; weight p / (gamma + (1 - gamma) p) in [0, 1]; dL/dp in [-1/gamma, -1]."""
    x = torch.tensor([[math.log(p), math.log1p(-p)]], dtype=torch.float64, requires_grad=True)
    loss = LF.tailr_loss(x, torch.tensor([0]), gamma=gamma)
    assert 1 - p - 1e-12 <= loss.item() <= -math.log(p) + 1e-12
    (grad,) = torch.autograd.grad(loss, x)
    weight = -grad[0, 0].item() / (1 - p)
    assert weight == pytest.approx(p / (gamma + (1 - gamma) * p), rel=1e-9)
    assert 0 <= weight <= 1 + 1e-12


def test_limit_gamma_to_one_is_one_minus_p():
    x = torch.randn(32, 6, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 6, (32,))
    p = torch.softmax(x, 1).gather(1, y[:, None]).squeeze(1)
    for gamma in (1 - 1e-6, 1 - 1e-9):
        loss = LF.tailr_loss(x, y, gamma=gamma, reduction="none")
        torch.testing.assert_close(loss, 1 - p, rtol=0, atol=2 * (1 - gamma))
        # log1p branch (p > 1/2) and logaddexp branch agree on the 1 - p limit with label smoothing
        smooth = LF.tailr_loss(x, y, gamma=gamma, reduction="none", label_smoothing=0.3)
        probs = torch.softmax(x, 1)
        expected = 0.7 * (1 - p) + 0.3 / 6 * (1 - probs).sum(1)
        torch.testing.assert_close(smooth, expected, rtol=0, atol=4 * (1 - gamma))


@given(st.integers(1, 6), st.integers(2, 8), st.floats(-50, 50), st.integers(0, 2**16))
def test_properties(n, c, shift, seed):
    """Shift invariance, monotone decreasing in gamma, non-negative, 0 at p = 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, c, (n,), generator=g)
    previous = None
    for gamma in (0.0, 0.3, 0.9):
        loss = LF.tailr_loss(x, y, gamma=gamma, reduction="none")
        torch.testing.assert_close(LF.tailr_loss(x + shift, y, gamma=gamma, reduction="none"), loss)
        assert (loss >= 0).all()
        if previous is not None:
            assert (loss <= previous + 1e-12).all()
        previous = loss
    sure = torch.full((1, c), -1e4, dtype=torch.float64)
    sure[0, 0] = 0.0
    assert LF.tailr_loss(sure, torch.tensor([0]), gamma=0.3).item() == 0.0


def test_official_recipe_with_label_smoothing():
    """docs/tailr.md: (1 - eps) * weighted TaiLr + eps * uniform CE is the thu-coai/TaiLr loss."""
    x, y = _case((4, 9, 5), "index", -100)
    ours = 0.9 * LF.tailr_loss(x, y, gamma=0.1, min_weight=0.3, form="weighted") + 0.1 * LF.cross_entropy(
        x, y, label_smoothing=1.0
    )
    expected = ref.tailr_official(
        x.detach().numpy(), y.numpy(), gamma=0.1, min_weight=0.3, label_smoothing=0.1
    )
    assert ours.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("kind", "eps"), [("index", 0.0), ("index", 0.1), ("probs", 0.1)])
def test_gradcheck_closed_form(kind, eps):
    x, target = _case((2, 4, 2), kind, -100)
    w = torch.rand(4, dtype=torch.float64) + 0.1
    fn = lambda v: LF.tailr_loss(v, target, gamma=0.4, weight=w, label_smoothing=eps)  # noqa: E731
    assert_gradcheck(fn, x, gradgrad=kind == "index" and eps == 0)  # CE's create_graph path


@pytest.mark.parametrize(("kind", "eps"), [("index", 0.0), ("index", 0.1), ("probs", 0.1)])
def test_weighted_form_gradient_is_the_stop_gradient_one(kind, eps):
    """Not the gradient of its value: -sum_c q_c w_c max(b, W_c) grad log p_c, W = p / mix."""
    x, target = _case((4, 5, 2), kind, -100)
    w = torch.rand(5, dtype=torch.float64) + 0.1
    loss = LF.tailr_loss(x, target, gamma=0.4, min_weight=0.2, form="weighted", weight=w, label_smoothing=eps)
    (ours,) = torch.autograd.grad(loss, x)
    logp = torch.log_softmax(x, 1)
    p = logp.exp().detach()
    floor = (p / (0.4 + 0.6 * p)).clamp_min(0.2)
    if kind == "index":
        valid = target != -100
        q = F.one_hot(target.clamp_min(0), 5).movedim(-1, 1).double()
        q = ((1 - eps) * q + eps / 5) * valid.unsqueeze(1)
        denominator = w[target.clamp_min(0)][valid].sum()
    else:
        q, denominator = (1 - eps) * target + eps / 5, target.shape[0] * target.shape[2]
    surrogate = -(q * w.view(1, 5, 1) * floor * logp).sum(1)
    (expected,) = torch.autograd.grad(surrogate.sum() / denominator, x)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", [(37, 11), (5, 11, 13)])
def test_blocked_paths(monkeypatch, shape):
    """Tiny blocks: multi-block rows and column chunks of the fused kernel."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
    for kind in ("index", "probs"):
        x, target = _case(shape, kind, -100)
        for form in ("closed", "weighted"):
            ours = LF.tailr_loss(x, target, gamma=0.2, form=form, label_smoothing=0.1, reduction="none")
            expected = ref.tailr_loss(
                x.detach().numpy(),
                target.numpy(),
                gamma=0.2,
                min_weight=None if form == "closed" else 0.0,
                label_smoothing=0.1,
                reduction="none",
            )
            np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
            monkeypatch.setattr(_blocks, "BLOCK_BYTES", 1 << 20)
            (g_small,) = torch.autograd.grad(ours.sum(), x)
            big = LF.tailr_loss(x, target, gamma=0.2, form=form, label_smoothing=0.1, reduction="none")
            (g_big,) = torch.autograd.grad(big.sum(), x)
            torch.testing.assert_close(g_small, g_big)
            monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)


def test_repeated_backward_recomputes():
    x, target = _case((6, 5), "probs", -100)
    loss = LF.tailr_loss(x, target, gamma=0.3, label_smoothing=0.1)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


# ---------------------------------------------------------------------------------------------
# Extreme inputs, masks, precision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("eps", "form"), list(itertools.product([0.0, 0.1], ["closed", "weighted"])))
def test_extreme_logits_and_masks(eps, form):
    x = torch.tensor([[1e4, -1e4, 0.0], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4], [0.0, -math.inf, 1.0]])
    x.requires_grad_()
    y = torch.tensor([1, 0, 2, 0])
    loss = LF.tailr_loss(x, y, gamma=0.1, form=form, label_smoothing=eps, reduction="none")
    expected = ref.tailr_loss(
        x.detach().numpy(),
        y.numpy(),
        gamma=0.1,
        min_weight=None if form == "closed" else 0.0,
        label_smoothing=eps,
        reduction="none",
    )
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-5)
    assert torch.isfinite(loss).all()  # bounded by -log(gamma) / (1 - gamma) per class term
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert_finite(grad)
    assert grad[3, 1] == 0


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_dead_rows_and_empty_batches(eps):
    x = torch.randn(3, 4, requires_grad=True)
    with torch.no_grad():
        x[1] = -math.inf
    loss = LF.tailr_loss(x, torch.tensor([0, 1, 2]), gamma=0.2, label_smoothing=eps, reduction="none")
    assert loss[1] == 0 and torch.isfinite(loss).all()
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert (grad[1] == 0).all()
    empty = LF.tailr_loss(torch.randn(0, 4), torch.zeros(0, dtype=torch.long), gamma=0.2, label_smoothing=eps)
    assert empty.item() == 0.0
    ignored = LF.tailr_loss(torch.randn(2, 4), torch.tensor([-100, -100]), gamma=0.2, label_smoothing=eps)
    assert ignored.item() == 0.0


def test_tiny_gamma_and_tiny_probability_in_float32():
    """The paper's gamma = 1e-7 with p ~ 1e-30: log(gamma + (1 - gamma) p) must not lose gamma."""
    x = torch.tensor([[0.0, 69.0]])
    loss = LF.tailr_loss(x, torch.tensor([0]), gamma=1e-7)
    p = math.exp(-69.0)
    expected = -math.log(1e-7 + (1 - 1e-7) * p) / (1 - 1e-7)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, *LOW_PRECISION])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_dtypes(dtype, eps):
    x, target = _case((16, 9, 2), "index", -100, dtype=dtype)
    loss = LF.tailr_loss(x, target, gamma=0.1, label_smoothing=eps)
    assert loss.dtype == dtype
    expected = ref.tailr_loss(x.detach().double().numpy(), target.numpy(), gamma=0.1, label_smoothing=eps)
    rtol = 1e-5 if dtype == torch.float32 else 2e-2
    assert loss.item() == pytest.approx(expected, rel=rtol)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    (ref_grad,) = torch.autograd.grad(LF.tailr_loss(x64, target, gamma=0.1, label_smoothing=eps), x64)
    torch.testing.assert_close(
        grad.double(), ref_grad, rtol=2e-2 if dtype != torch.float32 else 1e-4, atol=2e-3
    )


def test_torch_compile_fullgraph():
    x = torch.randn(6, 5, 3, requires_grad=True)
    y = torch.randint(0, 5, (6, 3))
    probs = torch.softmax(torch.randn(6, 5, 3), 1)
    assert_compiles(
        lambda v: LF.tailr_loss(v, y, gamma=0.1) + LF.tailr_loss(v, y, gamma=0.1, label_smoothing=0.1), x
    )
    assert_compiles(lambda v: LF.tailr_loss(v, probs, gamma=0.3, min_weight=0.2, form="weighted"), x)


def test_module():
    w = torch.rand(5)
    module = LN.TaiLrLoss(gamma=0.1, min_weight=0.3, form="weighted", weight=w, label_smoothing=0.1)
    x, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    torch.testing.assert_close(
        module(x, y),
        LF.tailr_loss(x, y, gamma=0.1, min_weight=0.3, form="weighted", weight=w, label_smoothing=0.1),
    )
    assert list(module.state_dict()) == ["weight"] and not list(module.parameters())
    assert "gamma=0.1" in repr(module)


def test_bad_inputs():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    assert_raises(ValueError, "gamma: expected a number in [0, 1), got 1.0", LF.tailr_loss, x, y, gamma=1.0)
    assert_raises(ValueError, "gamma: expected a number in [0, 1), got -0.1", LF.tailr_loss, x, y, gamma=-0.1)
    assert_raises(TypeError, "gamma: expected a number, got None", LF.tailr_loss, x, y, gamma=None)
    assert_raises(
        ValueError,
        "min_weight: expected a number in [0, 1], got 1.5",
        LF.tailr_loss,
        x,
        y,
        gamma=0.1,
        min_weight=1.5,
    )
    assert_raises(
        ValueError,
        "min_weight: a floor needs form='weighted' (the closed form has none), got min_weight=0.2",
        LF.tailr_loss,
        x,
        y,
        gamma=0.1,
        min_weight=0.2,
    )
    assert_raises(
        ValueError,
        "form: expected one of 'closed', 'weighted', got 'sg'",
        LF.tailr_loss,
        x,
        y,
        gamma=0.1,
        form="sg",
    )
    assert_raises(
        ValueError,
        "target: expected class indices in [0, 3) or ignore_index=-100, got values in [0, 5]",
        LF.tailr_loss,
        x,
        torch.tensor([0, 1, 5, 1]),
        gamma=0.1,
    )
    assert_raises(ValueError, "reduction: expected one of", LF.tailr_loss, x, y, gamma=0.1, reduction="avg")
    assert_raises(ValueError, "gamma: expected a number in [0, 1)", LN.TaiLrLoss, gamma=2.0)
