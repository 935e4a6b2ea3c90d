"""Focal loss (softmax and sigmoid): CE semantics grid, oracles, peers' properties, numerics."""

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
from tests.helpers import (
    FLOAT_DTYPES,
    TOLERANCE,
    assert_compiles,
    assert_finite,
    assert_gradcheck,
    assert_raises,
)
from tests.losses.test_cross_entropy import _case
from tests.reference import imbalance as ref

SHAPES = [(6, 5), (4, 5, 3), (3, 5, 2, 2)]
GAMMAS = [0.5, 2.0]  # gamma = 0 is pinned to cross_entropy below

GRID = [
    (shape, kind, ignore_index, weighted, eps, reduction, gamma)
    for shape, kind, weighted, eps, reduction, gamma in itertools.product(
        SHAPES, ["index", "probs"], [False, True], [0.0, 0.15], ["mean", "sum", "none"], GAMMAS
    )
    for ignore_index in ([-100, 2] if kind == "index" else [-100])
]


@pytest.mark.parametrize(("shape", "kind", "ignore_index", "weighted", "eps", "reduction", "gamma"), GRID)
def test_grid_matches_oracle_loss_and_gradient(shape, kind, ignore_index, weighted, eps, reduction, gamma):
    """Index / probability targets x weight x ignore_index x label_smoothing x reduction x N-D,
    against the brute-force oracle (value) and the autograd form of the formula (gradient)."""
    x, target = _case(shape, kind, ignore_index)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)
    ours = LF.focal_loss(x, target, gamma=gamma, **kwargs)
    expected = ref.softmax_loss(
        "focal",
        gamma,
        x.detach().numpy(),
        target.numpy(),
        weight=None if weight is None else weight.numpy(),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=eps,
    )
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-11, atol=1e-12)
    theirs = ref.torch_softmax_loss("focal", gamma, x, target, **kwargs)
    upstream = torch.rand_like(ours) + 0.5
    (g_ours,) = torch.autograd.grad((ours * upstream).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * upstream).sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_gamma_zero_is_cross_entropy_loss_and_gradient(kind, eps):
    x, target = _case((7, 6, 2), kind, -100)
    w = torch.rand(6, dtype=torch.float64) + 0.2
    for kwargs in ({}, {"weight": w}):
        ours = LF.focal_loss(x, target, gamma=0.0, label_smoothing=eps, **kwargs)
        theirs = F.cross_entropy(x, target, label_smoothing=eps, **kwargs)
        torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-14)
        (g_ours,) = torch.autograd.grad(ours, x)
        (g_theirs,) = torch.autograd.grad(theirs, x)
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-13, atol=1e-14)


def test_gamma_zero_index_path_is_bitwise_cross_entropy():
    x = torch.randn(9, 5, requires_grad=True)
    y = torch.randint(0, 5, (9,))
    a = LF.focal_loss(x, y, gamma=0.0, reduction="none")
    b = LF.cross_entropy(x, y, reduction="none")
    assert torch.equal(a, b)
    assert torch.equal(torch.autograd.grad(a.sum(), x)[0], torch.autograd.grad(b.sum(), x)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.2, 0.5, 0.9, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_gradients_finite_as_p_tends_to_one(dtype, gamma, eps):
    """kornia#918 / optax#1267: (1 - p)^gamma differentiated naively is inf or NaN at p = 1."""
    x = torch.tensor([[40.0, 0.0, 0.0], [1e4, -1e4, 0.0], [0.0, 20.0, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    x.requires_grad_()
    y = torch.tensor([0, 0, 1, 2])
    loss = LF.focal_loss(x, y, gamma=gamma, label_smoothing=eps)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    if eps == 0 and gamma > 0:
        # p_y = 1 in floating point: no loss, no gradient from the first three rows.
        assert (grad[:2] == 0).all()
    # torch.pow's backward is NaN at p = 1 for 0 < gamma < 1 (the bug this loss avoids).
    if 0 < gamma < 1 and eps == 0:
        p = torch.softmax(x.detach(), 1).requires_grad_()
        naive = (-((1 - p[:, 0]) ** gamma) * torch.log(p[:, 0])).sum()
        (naive_grad,) = torch.autograd.grad(naive, p)
        assert not torch.isfinite(naive_grad).all()


def test_gradient_near_p_one_matches_float64_oracle():
    """0 < gamma < 1 close to p = 1 but not at it: the gradient is large-ish and accurate."""
    x = torch.tensor([[12.0, 0.0, -1.0], [7.0, 6.5, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1])
    for gamma in (0.3, 0.7):
        for eps in (0.0, 0.05):
            ours = LF.focal_loss(x, y, gamma=gamma, label_smoothing=eps, reduction="sum")
            theirs = ref.torch_softmax_loss("focal", gamma, x, y, label_smoothing=eps, reduction="sum")
            (g1,) = torch.autograd.grad(ours, x)
            (g2,) = torch.autograd.grad(theirs, x)
            torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-15)


def test_alpha_scales_terms_but_not_the_mean_divisor():
    x, y = _case((8, 4), "index", -100)
    alpha = torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    per = LF.focal_loss(x, y, alpha=alpha, reduction="none")
    valid = y != -100
    plain = LF.focal_loss(x, y, reduction="none")
    torch.testing.assert_close(per, torch.where(valid, alpha[y.clamp_min(0)], 0.0) * plain)
    assert LF.focal_loss(x, y, alpha=alpha).item() == pytest.approx(per.sum().item() / valid.sum().item())
    weighted = LF.focal_loss(x, y, weight=alpha)
    assert weighted.item() == pytest.approx(per.sum().item() / alpha[y[valid]].sum().item())
    expected = ref.softmax_loss("focal", 2.0, x.detach().numpy(), y.numpy(), alpha=alpha.numpy())
    assert LF.focal_loss(x, y, alpha=alpha).item() == pytest.approx(expected, rel=1e-12)


def test_kornia_focal_loss_differential():
    """kornia.losses.focal_loss: alpha weighs class 0 by 1 - alpha and others by alpha, 'mean' divides
    by N * C; with those conventions mapped, the values and gradients agree."""
    kl = pytest.importorskip("kornia.losses")
    x = (torch.randn(6, 5, 3, dtype=torch.float64) * 3).requires_grad_()
    y = torch.randint(0, 5, (6, 3))
    w = torch.rand(5, dtype=torch.float64) + 0.1
    for gamma in (0.0, 0.5, 2.0):
        ours = LF.focal_loss(x, y, gamma=gamma, weight=w, reduction="sum")
        theirs = kl.focal_loss(x, y, None, gamma, reduction="sum", weight=w)
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, x)[0])
        alpha = torch.tensor([0.75] + [0.25] * 4, dtype=torch.float64)
        torch.testing.assert_close(
            LF.focal_loss(x, y, gamma=gamma, alpha=alpha, reduction="sum"),
            kl.focal_loss(x, y, 0.25, gamma, reduction="sum"),
        )
        torch.testing.assert_close(
            LF.focal_loss(x, y, gamma=gamma), kl.focal_loss(x, y, None, gamma, reduction="mean") * 5
        )


@pytest.mark.parametrize("shape", [(37, 11), (5, 11, 13), (2, 3, 40)])
@pytest.mark.parametrize("kind", ["index", "probs"])
def test_blocked_paths(monkeypatch, shape, kind):
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
    x, target = _case(shape, kind, -100)
    w = torch.rand(shape[1], dtype=torch.float64) + 0.1
    for kwargs in ({"gamma": 1.5}, {"gamma": 2.0, "weight": w, "label_smoothing": 0.2}):
        ours = LF.focal_loss(x, target, reduction="none", **kwargs)
        theirs = ref.torch_softmax_loss(
            "focal",
            kwargs["gamma"],
            x,
            target,
            weight=kwargs.get("weight"),
            label_smoothing=kwargs.get("label_smoothing", 0.0),
            reduction="none",
        )
        torch.testing.assert_close(ours, theirs, rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(
            torch.autograd.grad(ours.sum(), x)[0],
            torch.autograd.grad(theirs.sum(), x)[0],
            rtol=1e-10,
            atol=1e-12,
        )


# ---------------------------------------------------------------------------------------------
# Edge cases shared with cross_entropy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_empty_dead_rows_and_all_ignored(eps):
    x = torch.randn(0, 5, requires_grad=True)
    assert LF.focal_loss(x, torch.zeros(0, dtype=torch.long), label_smoothing=eps).item() == 0.0
    x = torch.randn(4, 6, requires_grad=True)
    with torch.no_grad():
        x[2] = -math.inf
    for target in (torch.tensor([1, 2, 3, 4]), torch.softmax(torch.randn(4, 6), 1)):
        loss = LF.focal_loss(x, target, reduction="none", label_smoothing=eps)
        assert loss[2] == 0 and torch.isfinite(loss).all()
        (grad,) = torch.autograd.grad(loss.sum(), x)
        assert_finite(grad)
        assert (grad[2] == 0).all()
    ignored = torch.full((4,), -100)
    loss = LF.focal_loss(x, ignored, label_smoothing=eps)
    assert loss.item() == 0.0


def test_masked_classes_with_zero_target_contribute_nothing():
    x = torch.tensor([[2.0, -math.inf, 0.5], [0.0, 1.0, -math.inf]], requires_grad=True)
    for target in (torch.tensor([0, 1]), torch.tensor([[0.7, 0.0, 0.3], [0.2, 0.8, 0.0]])):
        loss = LF.focal_loss(x, target, gamma=0.5, reduction="none")
        expected = ref.softmax_loss("focal", 0.5, x.detach().numpy(), target.numpy(), reduction="none")
        np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        assert_finite(grad)
        assert grad[0, 1] == 0 and grad[1, 2] == 0


def test_masked_target_class_is_infinite_with_finite_gradient():
    x = torch.tensor([[2.0, -math.inf, 0.5], [0.0, 1.0, 2.0]], requires_grad=True)
    loss = LF.focal_loss(x, torch.tensor([1, 0]), gamma=0.5, reduction="none")
    assert torch.isposinf(loss[0]) and torch.isfinite(loss[1])
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert_finite(grad)


def test_unbatched_input():
    x = torch.randn(7, dtype=torch.float64)
    for target in (torch.tensor(3), torch.softmax(torch.randn(7, dtype=torch.float64), 0)):
        for reduction in ("mean", "none"):
            batched = LF.focal_loss(x[None], target[None], reduction=reduction, label_smoothing=0.1)
            single = LF.focal_loss(x, target, reduction=reduction, label_smoothing=0.1)
            torch.testing.assert_close(single, batched.squeeze(0) if reduction == "none" else batched)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_dtype_matrix(dtype, eps):
    x, target = _case((16, 9, 2), "index", -100)
    x = x.detach().to(dtype).requires_grad_()
    loss = LF.focal_loss(x, target, gamma=2.0, label_smoothing=eps)
    assert loss.dtype == dtype
    expected = ref.softmax_loss(
        "focal", 2.0, x.detach().double().numpy(), target.numpy(), label_smoothing=eps
    )
    tol = TOLERANCE[dtype]
    assert loss.double().item() == pytest.approx(expected, rel=max(tol["rtol"], 1e-12) * 10, abs=tol["atol"])
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    (ref_grad,) = torch.autograd.grad(
        ref.torch_softmax_loss("focal", 2.0, x64, target, label_smoothing=eps), x64
    )
    torch.testing.assert_close(grad.double(), ref_grad, rtol=10 * tol["rtol"], atol=10 * tol["atol"])


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@given(st.integers(1, 8), st.integers(2, 9), st.floats(0.0, 4.0), st.floats(0.0, 1.0), st.integers(0, 2**16))
def test_focal_below_cross_entropy_and_non_increasing_in_gamma(n, c, gamma, eps, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 4
    y = torch.randint(0, c, (n,), generator=g)
    ce = LF.cross_entropy(x, y, reduction="none", label_smoothing=eps)
    fl = LF.focal_loss(x, y, gamma=gamma, reduction="none", label_smoothing=eps)
    more = LF.focal_loss(x, y, gamma=gamma + 0.5, reduction="none", label_smoothing=eps)
    assert (fl <= ce + 1e-12).all() and (more <= fl + 1e-12).all() and (more >= 0).all()
    # shift invariance
    torch.testing.assert_close(
        LF.focal_loss(x + 3.7, y, gamma=gamma, reduction="none", label_smoothing=eps),
        fl,
        rtol=1e-9,
        atol=1e-9,
    )


@given(st.integers(1, 6), st.integers(2, 7), st.floats(0.0, 1.0), st.floats(0.0, 3.0), st.integers(0, 2**16))
def test_one_hot_probabilities_equal_index_targets(n, c, eps, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    torch.testing.assert_close(
        LF.focal_loss(x, F.one_hot(y, c).double(), gamma=gamma, reduction="none", label_smoothing=eps),
        LF.focal_loss(x, y, gamma=gamma, reduction="none", label_smoothing=eps),
    )


@given(st.integers(1, 10), st.floats(0.0, 4.0), st.integers(0, 2**16))
def test_two_class_softmax_focal_is_binary_focal_on_logit_difference(n, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * 3
    t = torch.rand(n, generator=g, dtype=torch.float64)
    probs = torch.stack([1 - t, t], 1)
    torch.testing.assert_close(
        LF.focal_loss(x, probs, gamma=gamma, reduction="none"),
        LF.sigmoid_focal_loss(x[:, 1] - x[:, 0], t, gamma=gamma, alpha=None, reduction="none"),
    )


# ---------------------------------------------------------------------------------------------
# Gradients, compile, autograd contract, Module
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_gradcheck_and_gradgradcheck(kind, eps):
    x, target = _case((3, 4, 2), kind, -100)
    w = torch.rand(4, dtype=torch.float64) + 0.1
    assert_gradcheck(lambda v: LF.focal_loss(v, target, gamma=0.5, weight=w, label_smoothing=eps), x)
    x2, target2 = _case((3, 4), kind, -100)
    assert_gradcheck(
        lambda v: LF.focal_loss(v, target2, gamma=2.0, weight=w, label_smoothing=eps), x2, gradgrad=True
    )
    if kind == "probs":
        soft = torch.softmax(torch.randn(3, 4, 2, dtype=torch.float64), 1).requires_grad_()
        assert_gradcheck(
            lambda v, q: LF.focal_loss(v, q, gamma=1.5, weight=w, label_smoothing=eps, reduction="none"),
            x,
            soft,
        )


def test_double_backward_and_repeated_backward():
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, -100])
    v = torch.randn(5, 6, dtype=torch.float64)
    for eps in (0.0, 0.2):
        hvps = []
        for fn in (LF.focal_loss, lambda a, b, **k: ref.torch_softmax_loss("focal", 2.0, a, b, **k)):
            (grad,) = torch.autograd.grad(fn(x, y, label_smoothing=eps), x, create_graph=True)
            hvps.append(torch.autograd.grad((grad * v).sum(), x)[0])
        torch.testing.assert_close(hvps[0], hvps[1])
        loss = LF.focal_loss(x, y, label_smoothing=eps)
        first = torch.autograd.grad(loss, x, retain_graph=True)[0]
        torch.testing.assert_close(torch.autograd.grad(loss, x)[0], first)


def test_torch_compile_fullgraph():
    x = torch.randn(6, 5, 3, requires_grad=True)
    y = torch.randint(0, 5, (6, 3))
    y[0, 0] = -100
    probs = torch.softmax(torch.randn(6, 5, 3), 1)
    w = torch.rand(5)
    alpha = torch.rand(5)
    assert_compiles(lambda v: LF.focal_loss(v, y, weight=w, alpha=alpha), x)
    assert_compiles(lambda v: LF.focal_loss(v, probs, gamma=0.5, label_smoothing=0.1, reduction="none"), x)
    t = (torch.rand(6, 5, 3) < 0.3).float()
    assert_compiles(lambda v: LF.sigmoid_focal_loss(v, t, gamma=0.5, pos_weight=torch.ones(3) * 2), x)


def test_modules_match_functional_and_own_buffers():
    w, alpha = torch.rand(5), torch.rand(5)
    module = LN.FocalLoss(gamma=1.5, alpha=alpha, weight=w, label_smoothing=0.1, ignore_index=3)
    x, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    torch.testing.assert_close(
        module(x, y),
        LF.focal_loss(x, y, gamma=1.5, alpha=alpha, weight=w, label_smoothing=0.1, ignore_index=3),
    )
    assert sorted(module.state_dict()) == ["alpha", "weight"] and not list(module.parameters())
    assert module.double().alpha.dtype == torch.float64 and "gamma=1.5" in repr(module)
    pw = torch.rand(5)
    sig = LN.SigmoidFocalLoss(gamma=0.5, alpha=None, pos_weight=pw, reduction="sum")
    t = torch.rand(6, 5)
    torch.testing.assert_close(
        sig(x, t), LF.sigmoid_focal_loss(x, t, gamma=0.5, alpha=None, pos_weight=pw, reduction="sum")
    )
    assert list(sig.state_dict()) == ["pos_weight"]


# ---------------------------------------------------------------------------------------------
# Sigmoid focal loss
# ---------------------------------------------------------------------------------------------

INPUTS = {
    "small": torch.tensor([-3.0, -1e-3, 0.0, 1e-3]),
    "big": torch.tensor([-40.0, -25.0, 25.0, 40.0]),
    "zeros": torch.zeros(4),
    "ones": torch.ones(4),
    "random": torch.randn(4, generator=torch.Generator().manual_seed(1)) * 5,
}
TARGETS = {"zeros": torch.zeros(4), "ones": torch.ones(4), "binary": torch.tensor([0.0, 1.0, 1.0, 0.0])}


@pytest.mark.parametrize(("inputs", "targets"), list(itertools.product(INPUTS, TARGETS)))
@pytest.mark.parametrize("alpha", [None, 0.25, 0.5])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_matches_torchvision_formula(inputs, targets, alpha, gamma):
    """torchvision's test grid (small/big/zeros/ones/random x zeros/ones/binary), its alpha=-1."""
    x = INPUTS[inputs].double().repeat(3, 1).requires_grad_()
    t = TARGETS[targets].double().repeat(3, 1)
    for reduction in ("none", "mean", "sum"):
        ours = LF.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, reduction=reduction)
        expected = ref.torchvision_sigmoid_focal_loss(
            x.detach().numpy(),
            t.numpy(),
            alpha=-1 if alpha is None else alpha,
            gamma=gamma,
            reduction=reduction,
        )
        # The formula as torchvision writes it loses the tails ((1 - p_t) rounds to 0): absolute.
        np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-12, atol=1e-15)
        exact = ref.sigmoid_loss(
            "focal", gamma, x.detach().numpy(), t.numpy(), alpha=alpha, reduction=reduction
        )
        np.testing.assert_allclose(ours.detach().numpy(), exact, rtol=1e-12, atol=1e-300)
    ours = LF.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="sum")
    theirs = ref.torch_sigmoid_loss("focal", gamma, x, t, alpha=alpha, reduction="sum")
    torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, x)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_gamma_zero_is_bce_loss_and_gradient(dtype):
    x = (torch.randn(5, 4, dtype=dtype) * 4).requires_grad_()
    t = torch.rand(5, 4, dtype=dtype)
    t[0] = 1.0
    t[1] = 0.0
    pw, w = torch.rand(4, dtype=dtype) + 0.5, torch.rand(5, 4, dtype=dtype)
    for kwargs in ({}, {"pos_weight": pw}, {"weight": w, "pos_weight": pw}):
        for reduction in ("none", "mean", "sum"):
            ours = LF.sigmoid_focal_loss(x, t, gamma=0.0, alpha=None, reduction=reduction, **kwargs)
            theirs = F.binary_cross_entropy_with_logits(x, t, reduction=reduction, **kwargs)
            tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(ours, theirs, **tol)
            g1 = torch.autograd.grad(ours.sum(), x)[0]
            g2 = torch.autograd.grad(theirs.sum(), x)[0]
            torch.testing.assert_close(g1, g2, **tol)


def test_sigmoid_focal_properties_from_torchvision():
    """focal <= BCE, the ratio to BCE is (1 - p_t)^gamma alpha_t (hard targets)."""
    x = torch.randn(50, dtype=torch.float64) * 4
    t = (torch.rand(50) < 0.5).double()
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p = torch.sigmoid(x)
    p_t = p * t + (1 - p) * (1 - t)
    for gamma, alpha in ((2.0, 0.25), (0.5, 0.75), (1.0, None)):
        loss = LF.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="none")
        assert (loss <= bce + 1e-12).all()
        a_t = 1.0 if alpha is None else alpha * t + (1 - alpha) * (1 - t)
        torch.testing.assert_close(loss / bce, (1 - p_t) ** gamma * a_t)
    half = LF.sigmoid_focal_loss(x, t, gamma=0.0, alpha=0.5, reduction="none")
    torch.testing.assert_close(half, 0.5 * bce)


@given(st.floats(-30, 30), st.floats(0.0, 4.0), st.floats(0.0, 1.0))
def test_sigmoid_symmetry_and_linearity_in_target(x, gamma, t):
    v = torch.tensor([x], dtype=torch.float64)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    pos = LF.sigmoid_focal_loss(v, one, gamma=gamma, alpha=None, reduction="none")
    neg = LF.sigmoid_focal_loss(-v, zero, gamma=gamma, alpha=None, reduction="none")
    torch.testing.assert_close(pos, neg, rtol=1e-12, atol=1e-300)
    soft = LF.sigmoid_focal_loss(v, torch.tensor([t], dtype=torch.float64), gamma=gamma, reduction="none")
    mixed = t * LF.sigmoid_focal_loss(v, one, gamma=gamma, reduction="none") + (
        1 - t
    ) * LF.sigmoid_focal_loss(v, zero, gamma=gamma, reduction="none")
    torch.testing.assert_close(soft, mixed, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.5, 1.0, 2.0])
def test_sigmoid_extreme_logits_finite_gradients(dtype, gamma):
    x = torch.tensor([1e4, -1e4, 100.0, -100.0, 40.0, -math.inf, math.inf], dtype=dtype, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=dtype)
    loss = LF.sigmoid_focal_loss(x, t, gamma=gamma, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert (loss[5:] == 0).all() and (grad[5:] == 0).all()  # masked negatives, saturated positives
    if gamma < 1 and gamma > 0:
        # the torchvision formula's gradient is NaN here
        xx = x.detach()[:2].clone().requires_grad_()
        p = torch.sigmoid(xx)
        tv = (
            F.binary_cross_entropy_with_logits(xx, t[:2], reduction="none")
            * (1 - (p * t[:2] + (1 - p) * (1 - t[:2]))) ** gamma
        ).sum()
        assert not torch.isfinite(torch.autograd.grad(tv, xx)[0]).all()


def test_kornia_binary_focal_differential():
    kl = pytest.importorskip("kornia.losses")
    x = (torch.randn(6, 4, dtype=torch.float64) * 3).requires_grad_()
    t = (torch.rand(6, 4) < 0.4).double()
    pw = torch.rand(4, dtype=torch.float64) + 0.5
    for gamma, alpha in ((2.0, 0.25), (0.5, None)):
        ours = LF.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, pos_weight=pw, reduction="sum")
        theirs = kl.binary_focal_loss_with_logits(
            x, t, alpha=alpha, gamma=gamma, reduction="sum", pos_weight=pw
        )
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, x)[0])


def test_sigmoid_blocks_weights_and_target_gradient(monkeypatch):
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
    x = (torch.randn(7, 3, 5, dtype=torch.float64) * 3).requires_grad_()
    t = torch.rand(7, 3, 5, dtype=torch.float64).requires_grad_()
    pw, w = torch.rand(5, dtype=torch.float64), torch.rand(3, 1, dtype=torch.float64)
    ours = LF.sigmoid_focal_loss(x, t, gamma=1.5, pos_weight=pw, weight=w, reduction="none")
    theirs = ref.torch_sigmoid_loss("focal", 1.5, x, t, alpha=0.25, pos_weight=pw, weight=w, reduction="none")
    torch.testing.assert_close(ours, theirs)
    up = torch.rand_like(ours)
    g1 = torch.autograd.grad((ours * up).sum(), (x, t))
    g2 = torch.autograd.grad((theirs * up).sum(), (x, t))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sigmoid_dtype_matrix(dtype):
    x = (torch.randn(16, 8) * 3).to(dtype).requires_grad_()
    t = (torch.rand(16, 8) < 0.3).to(dtype)
    loss = LF.sigmoid_focal_loss(x, t)
    assert loss.dtype == dtype
    expected = ref.sigmoid_loss("focal", 2.0, x.detach().double().numpy(), t.double().numpy(), alpha=0.25)
    assert loss.double().item() == pytest.approx(expected, rel=10 * TOLERANCE[dtype]["rtol"])
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    (g64,) = torch.autograd.grad(ref.torch_sigmoid_loss("focal", 2.0, x64, t.double(), alpha=0.25), x64)
    torch.testing.assert_close(
        grad.double(), g64, rtol=10 * TOLERANCE[dtype]["rtol"], atol=TOLERANCE[dtype]["atol"]
    )


def test_sigmoid_gradcheck_and_retain_graph():
    x = (torch.randn(3, 4, dtype=torch.float64) * 2).requires_grad_()
    t = torch.rand(3, 4, dtype=torch.float64)
    for gamma in (0.5, 2.0):
        assert_gradcheck(
            lambda v, gamma=gamma: LF.sigmoid_focal_loss(v, t, gamma=gamma, reduction="none"),
            x,
            gradgrad=True,
        )
    loss = LF.sigmoid_focal_loss(x, t)
    first = torch.autograd.grad(loss, x, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(loss, x)[0], first)
    assert LF.sigmoid_focal_loss(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_inputs():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    assert_raises(
        ValueError, "gamma: expected a non-negative finite number, got -1.0", LF.focal_loss, x, y, gamma=-1.0
    )
    assert_raises(
        ValueError,
        "alpha: expected a 1-D tensor of 3 per-class values, got shape (4,)",
        LF.focal_loss,
        x,
        y,
        alpha=torch.ones(4),
    )
    assert_raises(
        ValueError,
        "alpha: expected values in [0, 1], got values in [0.5, 1.5]",
        LF.focal_loss,
        x,
        y,
        alpha=torch.tensor([0.5, 1.5, 1.0]),
    )
    assert_raises(
        TypeError, "alpha: expected None or a tensor of 3 per-class factors", LF.focal_loss, x, y, alpha=0.25
    )
    assert_raises(
        ValueError,
        "target: expected class indices in [0, 3) or ignore_index=-100, got values in [0, 5]",
        LF.focal_loss,
        x,
        torch.tensor([0, 1, 5, 1]),
    )
    assert_raises(
        ValueError,
        "label_smoothing: expected a value in [0, 1], got 2.0",
        LF.focal_loss,
        x,
        y,
        label_smoothing=2.0,
    )
    assert_raises(
        ValueError,
        "reduction: expected one of 'mean', 'sum', 'none', got 'avg'",
        LF.focal_loss,
        x,
        y,
        reduction="avg",
    )
    t = torch.rand(4, 3)
    sfl = LF.sigmoid_focal_loss
    assert_raises(
        ValueError,
        "alpha: expected a value in [0, 1] or None, got -1 (torchvision's alpha=-1 is alpha=None here)",
        sfl,
        x,
        t,
        alpha=-1,
    )
    assert_raises(ValueError, "alpha: expected a value in [0, 1], got 1.5", sfl, x, t, alpha=1.5)
    assert_raises(ValueError, "gamma: expected a non-negative finite number, got -0.5", sfl, x, t, gamma=-0.5)
    assert_raises(
        ValueError, "target: expected the shape of input (4, 3), got (4, 2)", sfl, x, torch.rand(4, 2)
    )
    assert_raises(
        ValueError,
        "target: expected values in [0, 1], got values in [0, 2]",
        sfl,
        x,
        t * 0 + torch.tensor([0.0, 1.0, 2.0]),
    )
    assert_raises(TypeError, "target: expected a floating-point tensor, got dtype torch.int64", sfl, x, y)
    assert_raises(
        ValueError,
        "pos_weight: expected a shape broadcastable to the input's (4, 3), got (2,)",
        sfl,
        x,
        t,
        pos_weight=torch.ones(2),
    )
    assert_raises(
        ValueError, "weight: expected non-negative values, got -1", sfl, x, t, weight=-torch.ones(3)
    )
    assert_raises(
        ValueError,
        "pos_weight: treated as a constant",
        sfl,
        x,
        t,
        pos_weight=torch.ones(3, requires_grad=True),
    )
