"""Hard-truncated and softened losses (softmax and sigmoid): oracles and the spec's identities."""

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

SOFTMAX = {
    "truncated": (LF.truncated_cross_entropy, "margin", [0.3, 0.5, 0.9]),
    "softened": (LF.softened_cross_entropy, "sharpness", [0.5, 2.0]),
}
GRID = [
    (loss, param, shape, kind, weighted, eps, reduction)
    for loss in SOFTMAX
    for param, shape, kind, weighted, eps, reduction in itertools.product(
        SOFTMAX[loss][2],
        [(6, 5), (4, 5, 3)],
        ["index", "probs"],
        [False, True],
        [0.0, 0.15],
        ["mean", "none"],
    )
]


@pytest.mark.parametrize(("loss", "param", "shape", "kind", "weighted", "eps", "reduction"), GRID)
def test_softmax_grid_matches_oracle(loss, param, shape, kind, weighted, eps, reduction):
    fn, name, _ = SOFTMAX[loss]
    x, target = _case(shape, kind, 2)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=eps, ignore_index=2)
    ours = fn(x, target, **{name: param}, **kwargs)
    expected = ref.softmax_loss(
        loss,
        param,
        x.detach().numpy(),
        target.numpy(),
        weight=None if weight is None else weight.numpy(),
        ignore_index=2,
        reduction=reduction,
        label_smoothing=eps,
    )
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-11, atol=1e-12)
    theirs = ref.torch_softmax_loss(loss, param, x, target, **kwargs)
    (g1,) = torch.autograd.grad(ours.sum(), x)
    (g2,) = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_truncated_with_margin_one_is_cross_entropy(kind, eps):
    """Every example active: the truncated loss is cross-entropy, value and gradient."""
    x, target = _case((7, 6, 2), kind, -100)
    w = torch.rand(6, dtype=torch.float64) + 0.2
    ours = LF.truncated_cross_entropy(x, target, margin=1.0, weight=w, label_smoothing=eps)
    theirs = F.cross_entropy(x, target, weight=w, label_smoothing=eps)
    torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, x)[0])
    t = torch.rand(5, 4, dtype=torch.float64)
    xb = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    a = LF.truncated_binary_cross_entropy(xb, t, margin=1.0)
    b = F.binary_cross_entropy_with_logits(xb, t)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.autograd.grad(a, xb)[0], torch.autograd.grad(b, xb)[0])


def test_truncated_drops_confident_examples_value_and_gradient():
    x = torch.tensor([[3.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 2.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 0])
    loss = LF.truncated_cross_entropy(x, y, margin=0.6, reduction="none")
    p = torch.softmax(x.detach(), 1)[:, 0]
    assert p[0] > 0.6 and p[1] < 0.6
    torch.testing.assert_close(loss, torch.where(p > 0.6, 0.0, -torch.log(p)))
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert (grad[0] == 0).all() and (grad[1:] != 0).any()


def test_binary_truncated_gates_and_half_at_threshold():
    """spec 2.1: positives drop once sigma(x) > m, negatives once sigma(x) < 1 - m; theta(0) = 1/2."""
    m = 0.6
    ell = math.log(m / (1 - m))
    x = torch.tensor([ell - 1e-3, ell + 1e-3, -ell + 1e-3, -ell - 1e-3], dtype=torch.float64)
    t = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    loss = LF.truncated_binary_cross_entropy(x.requires_grad_(), t, margin=m, reduction="none")
    bce = F.binary_cross_entropy_with_logits(x.detach(), t, reduction="none")
    torch.testing.assert_close(loss, bce * torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64))
    expected = ref.sigmoid_loss("truncated", 0.0, x.detach().numpy(), t.numpy(), margin=ell, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-14)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert grad[1] == 0 and grad[3] == 0 and grad[0] != 0 and grad[2] != 0
    x0 = torch.zeros(2, dtype=torch.float64)
    half = LF.truncated_binary_cross_entropy(
        x0, torch.tensor([1.0, 0.0], dtype=torch.float64), reduction="none"
    )
    torch.testing.assert_close(half, torch.full((2,), 0.5 * math.log(2), dtype=torch.float64))


@given(st.integers(1, 8), st.floats(0.5, 0.99), st.integers(0, 2**16))
def test_two_class_truncated_is_binary_truncated(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(n, generator=g) < 0.5).double()
    probs = torch.stack([1 - t, t], 1)
    torch.testing.assert_close(
        LF.truncated_cross_entropy(x, probs, margin=m, reduction="none"),
        LF.truncated_binary_cross_entropy(x[:, 1] - x[:, 0], t, margin=m, reduction="none"),
    )


@given(st.integers(1, 8), st.floats(0.1, 4.0), st.integers(0, 2**16))
def test_two_class_softened_is_binary_softened(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * 3
    t = torch.rand(n, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        LF.softened_cross_entropy(x, torch.stack([1 - t, t], 1), sharpness=k, reduction="none"),
        LF.softened_binary_cross_entropy(x[:, 1] - x[:, 0], t, sharpness=k, reduction="none"),
    )


def test_softened_with_k_one_is_focal_with_gamma_one():
    """spec 2.5: K = gamma = 1 gives the focal loss (binary and two-class softmax), with gradients."""
    x = (torch.randn(20, dtype=torch.float64) * 4).requires_grad_()
    t = (torch.rand(20) < 0.5).double()
    a = LF.softened_binary_cross_entropy(x, t, sharpness=1.0, reduction="none")
    b = LF.sigmoid_focal_loss(x, t, gamma=1.0, alpha=None, reduction="none")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.autograd.grad(a.sum(), x)[0], torch.autograd.grad(b.sum(), x)[0])
    x2 = (torch.randn(20, 2, dtype=torch.float64) * 4).requires_grad_()
    y = torch.randint(0, 2, (20,))
    a = LF.softened_cross_entropy(x2, y, sharpness=1.0)
    b = LF.focal_loss(x2, y, gamma=1.0)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.autograd.grad(a, x2)[0], torch.autograd.grad(b, x2)[0])


def test_softened_tends_to_hard_truncated_value_not_gradient():
    x = torch.tensor([-2.0, -0.5, 0.3, 1.5, 4.0], dtype=torch.float64, requires_grad=True)
    for t in (torch.ones(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)):
        soft = LF.softened_binary_cross_entropy(x, t, sharpness=1e4, reduction="none")
        hard = LF.truncated_binary_cross_entropy(x, t, reduction="none")
        torch.testing.assert_close(soft, hard, rtol=0, atol=1e-12)
    # The softened weight is differentiated: its gradient differs from the gated BCE near x = 0.
    x0 = torch.tensor([0.05], dtype=torch.float64, requires_grad=True)
    one = torch.ones(1, dtype=torch.float64)
    g_soft = torch.autograd.grad(LF.softened_binary_cross_entropy(x0, one, sharpness=2.0), x0)[0]
    g_hard = torch.autograd.grad(LF.truncated_binary_cross_entropy(x0, one), x0)[0]
    assert not torch.allclose(g_soft, g_hard)


@pytest.mark.parametrize("kind", ["truncated", "softened"])
def test_binary_losses_match_oracle(kind):
    x = (torch.randn(6, 5, dtype=torch.float64) * 4).requires_grad_()
    t = torch.rand(6, 5, dtype=torch.float64)
    t[0] = 1.0
    pw, w = torch.rand(5, dtype=torch.float64) + 0.5, torch.rand(6, 1, dtype=torch.float64)
    fn = LF.truncated_binary_cross_entropy if kind == "truncated" else LF.softened_binary_cross_entropy
    for m in (0.5, 0.7):
        kwargs = {"margin": m} if kind == "truncated" else {"margin": m, "sharpness": 1.5}
        ell = math.log(m / (1 - m))
        for reduction in ("none", "mean", "sum"):
            ours = fn(x, t, pos_weight=pw, weight=w, reduction=reduction, **kwargs)
            expected = ref.sigmoid_loss(
                kind,
                1.5,
                x.detach().numpy(),
                t.numpy(),
                pos_weight=pw.numpy(),
                weight=w.numpy(),
                margin=ell,
                reduction=reduction,
            )
            np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-12, atol=1e-14)
        ours = fn(x, t, pos_weight=pw, weight=w, reduction="sum", **kwargs)
        theirs = ref.torch_sigmoid_loss(kind, 1.5, x, t, pos_weight=pw, weight=w, margin=ell, reduction="sum")
        torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, x)[0])


def test_softened_excludes_masked_classes():
    x = torch.tensor([[2.0, -math.inf, 0.5, 0.0]], requires_grad=True)
    y = torch.tensor([2])
    loss = LF.softened_cross_entropy(x, y, sharpness=1.5, label_smoothing=0.1)
    finite = LF.softened_cross_entropy(x[:, [0, 2, 3]].detach(), torch.tensor([1]), sharpness=1.5)
    assert torch.isfinite(loss)
    # the masked class leaves both softmaxes: only its smoothing mass (now on a zero term) differs
    expected = ref.softmax_loss("softened", 1.5, x.detach().numpy(), y.numpy(), label_smoothing=0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-6) and finite.item() > 0
    (grad,) = torch.autograd.grad(loss, x)
    assert_finite(grad)
    assert grad[0, 1] == 0


def test_softened_sparse_path_with_masks_matches_oracle():
    x = torch.tensor([[2.0, -math.inf, 0.5, 0.0], [1.0, 0.0, -math.inf, 3.0]], dtype=torch.float64)
    x.requires_grad_()
    for y in (torch.tensor([2, 3]), torch.tensor([0, 2])):  # the second row's target is masked
        loss = LF.softened_cross_entropy(x, y, sharpness=1.5, reduction="none")
        expected = ref.softmax_loss("softened", 1.5, x.detach().numpy(), y.numpy(), reduction="none")
        np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-12, atol=1e-15)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        assert_finite(grad)
        assert grad[0, 1] == 0 and grad[1, 2] == 0
        dense = LF.softened_cross_entropy(x, F.one_hot(y, 4).double(), sharpness=1.5, reduction="none")
        torch.testing.assert_close(loss, dense)
        torch.testing.assert_close(grad, torch.autograd.grad(dense.sum(), x)[0])


def test_extremes_dead_rows_and_empty():
    x = torch.tensor([[1e4, -1e4, 0.0], [-math.inf] * 3, [0.0, 1e4, 1e4]], requires_grad=True)
    y = torch.tensor([1, 0, 2])
    for fn in (LF.truncated_cross_entropy, LF.softened_cross_entropy):
        for eps in (0.0, 0.1):
            loss = fn(x, y, reduction="none", label_smoothing=eps)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            assert torch.isfinite(loss).all() and torch.isfinite(grad).all() and loss[1] == 0
        assert fn(torch.randn(0, 3), torch.zeros(0, dtype=torch.long)).item() == 0
    xb = torch.tensor([1e4, -1e4, 30.0, -math.inf], requires_grad=True)
    tb = torch.tensor([0.0, 1.0, 1.0, 0.0])
    for fn in (LF.truncated_binary_cross_entropy, LF.softened_binary_cross_entropy):
        loss = fn(xb, tb, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), xb)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all() and loss[3] == 0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_matrix(dtype):
    x, y = _case((12, 7), "index", -100)
    x = x.detach().to(dtype).requires_grad_()
    t = (torch.rand(12, 7) < 0.3).to(dtype)
    tol = TOLERANCE[dtype]
    for fn, kind, args in (
        (LF.truncated_cross_entropy, "truncated", 0.5),
        (LF.softened_cross_entropy, "softened", 1.0),
    ):
        loss = fn(x, y, label_smoothing=0.1)
        assert loss.dtype == dtype
        expected = ref.softmax_loss(kind, args, x.detach().double().numpy(), y.numpy(), label_smoothing=0.1)
        assert loss.double().item() == pytest.approx(expected, rel=10 * tol["rtol"], abs=tol["atol"])
        assert torch.autograd.grad(loss, x)[0].dtype == dtype
    for fn, kind in (
        (LF.truncated_binary_cross_entropy, "truncated"),
        (LF.softened_binary_cross_entropy, "softened"),
    ):
        loss = fn(x, t)
        assert loss.dtype == dtype
        expected = ref.sigmoid_loss(kind, 1.0, x.detach().double().numpy(), t.double().numpy())
        assert loss.double().item() == pytest.approx(expected, rel=10 * tol["rtol"], abs=tol["atol"])


def test_gradcheck():
    x, y = _case((3, 4, 2), "index", -100)
    assert_gradcheck(lambda v: LF.softened_cross_entropy(v, y, sharpness=1.5, label_smoothing=0.1), x)
    x2, y2 = _case((3, 4), "probs", -100)
    assert_gradcheck(lambda v: LF.softened_cross_entropy(v, y2, sharpness=0.7), x2, gradgrad=True)
    assert_gradcheck(lambda v: LF.truncated_cross_entropy(v, y2, margin=0.35), x2, gradgrad=True)
    xb = (torch.randn(3, 4, dtype=torch.float64) * 2).requires_grad_()
    tb = torch.rand(3, 4, dtype=torch.float64)
    assert_gradcheck(
        lambda v: LF.softened_binary_cross_entropy(v, tb, sharpness=2.0, margin=0.6), xb, gradgrad=True
    )
    assert_gradcheck(lambda v: LF.truncated_binary_cross_entropy(v, tb, margin=0.7, reduction="none"), xb)


def test_torch_compile_fullgraph():
    x = torch.randn(6, 5, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    assert_compiles(lambda v: LF.truncated_cross_entropy(v, y, margin=0.4), x)
    assert_compiles(lambda v: LF.softened_cross_entropy(v, y, sharpness=2.0, label_smoothing=0.1), x)
    t = (torch.rand(6, 5) < 0.3).float()
    assert_compiles(lambda v: LF.softened_binary_cross_entropy(v, t, reduction="none"), x)


def test_modules_match_functional():
    x, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    w = torch.rand(5)
    torch.testing.assert_close(
        LN.TruncatedCrossEntropyLoss(margin=0.4, weight=w)(x, y),
        LF.truncated_cross_entropy(x, y, margin=0.4, weight=w),
    )
    torch.testing.assert_close(
        LN.SoftenedCrossEntropyLoss(sharpness=2.0, label_smoothing=0.1)(x, y),
        LF.softened_cross_entropy(x, y, sharpness=2.0, label_smoothing=0.1),
    )
    t = torch.rand(6, 5)
    pw = torch.rand(5)
    module = LN.TruncatedBinaryCrossEntropyLoss(margin=0.7, pos_weight=pw, reduction="sum")
    torch.testing.assert_close(
        module(x, t), LF.truncated_binary_cross_entropy(x, t, margin=0.7, pos_weight=pw, reduction="sum")
    )
    assert list(module.state_dict()) == ["pos_weight"]
    torch.testing.assert_close(
        LN.SoftenedBinaryCrossEntropyLoss(sharpness=3.0)(x, t),
        LF.softened_binary_cross_entropy(x, t, sharpness=3.0),
    )


def test_bad_inputs():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    t = torch.rand(4, 3)
    assert_raises(
        ValueError,
        "margin: expected a probability threshold in (0, 1], got 0",
        LF.truncated_cross_entropy,
        x,
        y,
        margin=0,
    )
    assert_raises(
        ValueError,
        "margin: expected a probability threshold in (0, 1], got 1.5",
        LF.truncated_cross_entropy,
        x,
        y,
        margin=1.5,
    )
    assert_raises(
        ValueError,
        "sharpness: expected a positive finite number, got 0",
        LF.softened_cross_entropy,
        x,
        y,
        sharpness=0,
    )
    assert_raises(
        ValueError,
        "margin: expected a value in [0.5, 1], got 0.3",
        LF.truncated_binary_cross_entropy,
        x,
        t,
        margin=0.3,
    )
    assert_raises(
        ValueError,
        "sharpness: expected a positive finite number, got -1",
        LF.softened_binary_cross_entropy,
        x,
        t,
        sharpness=-1,
    )
    assert_raises(
        TypeError,
        "margin: expected a float in [0.5, 1], got None",
        LF.softened_binary_cross_entropy,
        x,
        t,
        margin=None,
    )
