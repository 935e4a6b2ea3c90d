"""Softmax cross-entropy: torch's semantics over the full grid, an independent oracle, numerics."""

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
    LOW_PRECISION,
    assert_compiles,
    assert_finite,
    assert_gradcheck,
    assert_raises,
)
from tests.reference import cross_entropy as ref

SHAPES = [(6, 5), (4, 5, 3), (3, 5, 2, 3)]


def _case(shape, target_kind, ignore_index, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype).requires_grad_()
    n, c, *rest = shape
    if target_kind == "index":
        target = torch.randint(0, c, (n, *rest), generator=g)
        flat = target.view(-1)
        flat[::4] = ignore_index  # some ignored entries (possibly a valid class id)
    else:
        target = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64) * 2, 1).to(dtype)
        target.select(1, 0).zero_()  # exact zeros appear in real soft labels
    return x, target


GRID = [
    (shape, kind, ignore_index, weighted, eps, reduction)
    for shape, kind, weighted, eps, reduction in itertools.product(
        SHAPES, ["index", "probs"], [False, True], [0.0, 0.15], ["mean", "sum", "none"]
    )
    for ignore_index in ([-100, 2] if kind == "index" else [-100])
]


@pytest.mark.parametrize(("shape", "kind", "ignore_index", "weighted", "eps", "reduction"), GRID)
def test_grid_matches_torch_loss_and_gradient(shape, kind, ignore_index, weighted, eps, reduction):
    """Issue #2: index / probability targets x weight x ignore_index x label_smoothing x
    reduction x N-D reproduce torch.nn.functional.cross_entropy (loss and gradient)."""
    x, target = _case(shape, kind, ignore_index)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)
    ours = LF.cross_entropy(x, target, **kwargs)
    theirs = F.cross_entropy(x, target, **kwargs)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    upstream = torch.rand_like(ours) + 0.5
    (g_ours,) = torch.autograd.grad((ours * upstream).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * upstream).sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-12, atol=1e-12)
    # The same semantics through the independent float64 oracle.
    expected = ref.cross_entropy(
        x.detach().numpy(),
        target.numpy(),
        weight=None if weight is None else weight.numpy(),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=eps,
    )
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("shape", "kind"), [((64, 50), "index"), ((8, 50, 7), "index"), ((64, 50), "probs")])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_float32_matches_torch(shape, kind, eps):
    x, target = _case(shape, kind, -100, dtype=torch.float32)
    weight = torch.rand(shape[1]) + 0.5
    for kwargs in ({}, {"weight": weight}):
        ours = LF.cross_entropy(x, target, label_smoothing=eps, temperature=0.8, **kwargs)
        theirs = F.cross_entropy(x / 0.8, target, label_smoothing=eps, **kwargs)
        torch.testing.assert_close(ours, theirs, rtol=2e-6, atol=2e-6)
        (g_ours,) = torch.autograd.grad(ours, x)
        (g_theirs,) = torch.autograd.grad(theirs, x)
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(37, 11), (5, 11, 13), (2, 3, 40)])
@pytest.mark.parametrize("kind", ["index", "probs"])
def test_blocked_paths(monkeypatch, shape, kind):
    """Tiny blocks exercise multi-block rows, column chunks of N-D inputs and the 2-D fast path."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
    x, target = _case(shape, kind, -100)
    w = torch.rand(shape[1], dtype=torch.float64)
    for kwargs in ({}, {"weight": w, "label_smoothing": 0.2}):
        ours = LF.cross_entropy(x, target, reduction="none", temperature=1.3, **kwargs)
        theirs = F.cross_entropy(x / 1.3, target, reduction="none", **kwargs)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
        (g_ours,) = torch.autograd.grad(ours.sum(), x)
        (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-12, atol=1e-12)
        with torch.no_grad():
            torch.testing.assert_close(
                LF.cross_entropy(x, target, reduction="none", temperature=1.3, **kwargs), theirs
            )


def test_unbatched_input():
    x = torch.randn(7, dtype=torch.float64)
    for target in (torch.tensor(3), torch.softmax(torch.randn(7, dtype=torch.float64), 0)):
        for reduction in ("mean", "none"):
            torch.testing.assert_close(
                LF.cross_entropy(x, target, reduction=reduction, label_smoothing=0.1),
                F.cross_entropy(x, target, reduction=reduction, label_smoothing=0.1),
            )


def test_temperature_tensor_gradient_matches_torch():
    x = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 6, (9,))
    t1 = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    t2 = t1.detach().clone().requires_grad_()
    LF.cross_entropy(x, y, temperature=t1, label_smoothing=0.1).backward()
    F.cross_entropy(x / t2, y, label_smoothing=0.1).backward()
    torch.testing.assert_close(t1.grad, t2.grad)


def test_probability_target_gradient_matches_torch():
    x = torch.randn(5, 4, dtype=torch.float64)
    t1 = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1).requires_grad_()
    t2 = t1.detach().clone().requires_grad_()
    w = torch.rand(4, dtype=torch.float64)
    LF.cross_entropy(x, t1, weight=w, label_smoothing=0.2).backward()
    F.cross_entropy(x, t2, weight=w, label_smoothing=0.2).backward()
    torch.testing.assert_close(t1.grad, t2.grad)


# ---------------------------------------------------------------------------------------------
# Where logitkit deliberately differs from torch (design.md: never NaN on valid extreme input)
# ---------------------------------------------------------------------------------------------


def test_empty_and_all_ignored_batches_give_zero():
    x = torch.randn(0, 5, requires_grad=True)
    loss = LF.cross_entropy(x, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0 and torch.isnan(F.cross_entropy(x, torch.zeros(0, dtype=torch.long)))
    loss.backward()
    x = torch.randn(3, 5, requires_grad=True)
    target = torch.full((3,), -100)
    loss = LF.cross_entropy(x, target, weight=torch.ones(5))
    assert loss.item() == 0.0
    loss.backward()
    assert (x.grad == 0).all()
    probs = torch.zeros(0, 5)
    assert LF.cross_entropy(torch.randn(0, 5), probs).item() == 0.0


def test_zero_target_on_neg_inf_logit_contributes_nothing():
    x = torch.tensor([[2.0, -math.inf, 0.5]], requires_grad=True)
    target = torch.tensor([[0.7, 0.0, 0.3]])
    loss = LF.cross_entropy(x, target)
    assert torch.isnan(F.cross_entropy(x, target))  # torch: 0 * inf
    expected = ref.cross_entropy(x.detach().numpy(), target.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert_finite(x.grad)
    assert x.grad[0, 1] == 0


def test_masked_target_class_is_infinite_not_nan():
    x = torch.tensor([[2.0, -math.inf, 0.5]], requires_grad=True)
    loss = LF.cross_entropy(x, torch.tensor([1]))
    assert torch.isposinf(loss)


@pytest.mark.parametrize("kind", ["index", "probs"])
def test_dead_rows_give_zero_loss_and_gradient(kind):
    x = torch.randn(4, 6, requires_grad=True)
    with torch.no_grad():
        x[2] = -math.inf
    target = torch.tensor([1, 2, 3, 4]) if kind == "index" else torch.softmax(torch.randn(4, 6), 1)
    for eps in (0.0, 0.1):
        loss = LF.cross_entropy(x, target, reduction="none", label_smoothing=eps)
        assert loss[2] == 0 and torch.isfinite(loss).all()
        (grad,) = torch.autograd.grad(loss.sum(), x)
        assert_finite(grad)
        assert (grad[2] == 0).all()
        with torch.no_grad():
            assert LF.cross_entropy(x, target, reduction="none", label_smoothing=eps)[2] == 0


def test_nan_input_propagates():
    x = torch.tensor([[1.0, float("nan"), 0.0], [1.0, 2.0, 3.0]])
    loss = LF.cross_entropy(x, torch.tensor([0, 1]), reduction="none")
    assert torch.isnan(loss[0]) and torch.isfinite(loss[1])


# ---------------------------------------------------------------------------------------------
# Extreme inputs and precision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_extreme_logits_match_oracle(eps):
    x = torch.tensor([[1e4, -1e4, 0.0], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4], [0.0, 1e3, 0.0]])
    target = torch.tensor([1, 0, 2, 0])
    loss = LF.cross_entropy(x.requires_grad_(), target, reduction="none", label_smoothing=eps)
    expected = ref.cross_entropy(x.detach().numpy(), target.numpy(), reduction="none", label_smoothing=eps)
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert_finite(grad)


def test_underflowed_target_probability_uses_exact_path():
    # p_y = e^-200 underflows float32: the loss must still be exactly 200, not inf.
    x = torch.tensor([[0.0, 200.0], [0.0, 50.0]], requires_grad=True)
    loss = LF.cross_entropy(x, torch.tensor([0, 0]), reduction="none")
    torch.testing.assert_close(loss, torch.tensor([200.0, 50.0]))
    (grad,) = torch.autograd.grad(loss.sum(), x)
    torch.testing.assert_close(grad, torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]))


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_inputs(dtype):
    x, target = _case((16, 9, 2), "index", -100, dtype=dtype)
    loss = LF.cross_entropy(x, target, label_smoothing=0.1)
    assert loss.dtype == dtype
    expected = ref.cross_entropy(x.detach().double().numpy(), target.numpy(), label_smoothing=0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-2)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    (ref_grad,) = torch.autograd.grad(F.cross_entropy(x64, target, label_smoothing=0.1), x64)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=2e-2, atol=2e-3)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


@given(
    st.integers(1, 8),
    st.integers(2, 9),
    st.floats(-1e3, 1e3),
    st.floats(0.0, 1.0),
    st.integers(0, 2**16),
)
def test_shift_invariance_and_reduction_consistency(n, c, shift, eps, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 4
    y = torch.randint(0, c, (n,), generator=g)
    w = torch.rand(c, generator=g, dtype=torch.float64) + 0.1
    per = LF.cross_entropy(x, y, weight=w, reduction="none", label_smoothing=eps)
    torch.testing.assert_close(
        LF.cross_entropy(x + shift, y, weight=w, reduction="none", label_smoothing=eps),
        per,
        rtol=1e-9,
        atol=1e-9,
    )
    assert LF.cross_entropy(x, y, weight=w, reduction="sum", label_smoothing=eps).item() == pytest.approx(
        per.sum().item()
    )
    mean = LF.cross_entropy(x, y, weight=w, label_smoothing=eps).item()
    assert mean == pytest.approx(per.sum().item() / w[y].sum().item())
    assert (per >= -1e-12).all()


@given(st.integers(1, 6), st.integers(2, 7), st.floats(0.0, 1.0), st.integers(0, 2**16))
def test_one_hot_probabilities_equal_index_targets(n, c, eps, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    onehot = F.one_hot(y, c).double()
    torch.testing.assert_close(
        LF.cross_entropy(x, onehot, reduction="none", label_smoothing=eps),
        LF.cross_entropy(x, y, reduction="none", label_smoothing=eps),
    )


def test_full_smoothing_is_uniform_target_cross_entropy():
    x = torch.randn(5, 4, dtype=torch.float64)
    uniform = torch.full((5, 4), 0.25, dtype=torch.float64)
    torch.testing.assert_close(
        LF.cross_entropy(x, torch.randint(0, 4, (5,)), label_smoothing=1.0),
        LF.cross_entropy(x, uniform),
    )


# ---------------------------------------------------------------------------------------------
# Gradients, compile, autograd contract
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["index", "probs"])
def test_gradcheck_and_gradgradcheck(kind):
    x, target = _case((4, 5, 2), kind, -100)
    w = torch.rand(5, dtype=torch.float64) + 0.1
    t = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(
        lambda v, tau: LF.cross_entropy(v, target, weight=w, label_smoothing=0.1, temperature=tau),
        x,
        t,
        gradgrad=True,
    )
    if kind == "probs":
        # Interior targets: gradcheck's perturbations of exact zeros would leave [0, 1].
        soft = torch.softmax(torch.randn(4, 5, 2, dtype=torch.float64), 1).requires_grad_()
        assert_gradcheck(
            lambda v, q: LF.cross_entropy(v, q, weight=w, label_smoothing=0.1, reduction="none"),
            x,
            soft,
        )


def test_double_backward_equals_torch():
    """Gradient penalties and Hessian-vector products need exact second derivatives."""
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, -100])
    w = torch.rand(6, dtype=torch.float64) + 0.1
    v = torch.randn(5, 6, dtype=torch.float64)
    hvps = []
    for fn in (LF.cross_entropy, F.cross_entropy):
        (grad,) = torch.autograd.grad(fn(x, y, weight=w, label_smoothing=0.2), x, create_graph=True)
        hvps.append(torch.autograd.grad((grad * v).sum(), x)[0])
    torch.testing.assert_close(hvps[0], hvps[1])


def test_repeated_backward_through_retained_graph():
    x = torch.randn(3, 4, requires_grad=True)
    loss = LF.cross_entropy(x, torch.tensor([0, 1, 2]), label_smoothing=0.1)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)
    jac = torch.autograd.functional.jacobian(
        lambda v: LF.cross_entropy(v, torch.tensor([0, 1, 2]), reduction="none"), x.detach()
    )
    ref_jac = torch.autograd.functional.jacobian(
        lambda v: F.cross_entropy(v, torch.tensor([0, 1, 2]), reduction="none"), x.detach()
    )
    torch.testing.assert_close(jac, ref_jac)


def test_torch_compile_fullgraph():
    x = torch.randn(6, 5, 3, requires_grad=True)
    y = torch.randint(0, 5, (6, 3))
    y[0, 0] = -100
    probs = torch.softmax(torch.randn(6, 5, 3), 1)
    w = torch.rand(5)
    assert_compiles(lambda v: LF.cross_entropy(v, y, weight=w, label_smoothing=0.1), x)
    assert_compiles(lambda v: LF.cross_entropy(v, y, reduction="none", temperature=0.5), x)
    assert_compiles(lambda v: LF.cross_entropy(v, probs, weight=w), x)
    x2 = torch.randn(16, 10, requires_grad=True)
    y2 = torch.randint(0, 10, (16,))
    assert_compiles(lambda v: LF.cross_entropy(v, y2), x2)


@pytest.mark.slow
def test_torch_compile_inductor():
    x = torch.randn(32, 17, requires_grad=True)
    y = torch.randint(0, 17, (32,))
    assert_compiles(lambda v: LF.cross_entropy(v, y, label_smoothing=0.1), x, backend="inductor")


def test_module_matches_functional_and_owns_weight_buffer():
    w = torch.rand(5)
    module = LN.CrossEntropyLoss(weight=w, label_smoothing=0.1, ignore_index=3, temperature=2.0)
    x, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    torch.testing.assert_close(
        module(x, y),
        LF.cross_entropy(x, y, weight=w, label_smoothing=0.1, ignore_index=3, temperature=2.0),
    )
    assert list(module.state_dict()) == ["weight"] and not list(module.parameters())
    assert module.double().weight.dtype == torch.float64
    assert "label_smoothing=0.1" in repr(module)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_inputs():
    x = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 1])
    ce = LF.cross_entropy
    assert_raises(
        ValueError,
        "target: expected class indices in [0, 3) or ignore_index=-100, got values in [0, 5]",
        ce,
        x,
        torch.tensor([0, 1, 5, 1]),
    )
    assert_raises(
        ValueError,
        "target: expected class indices in [0, 3) or ignore_index=-100, got values in [-1, 2]",
        ce,
        x,
        torch.tensor([0, -1, 2, 1]),
    )
    assert_raises(
        ValueError,
        "target: expected class indices of shape (4,) for input of shape (4, 3), got (3,)",
        ce,
        x,
        torch.tensor([0, 1, 2]),
    )
    assert_raises(
        TypeError,
        "target: expected integer class indices or floating class probabilities, got dtype torch.bool",
        ce,
        x,
        torch.ones(4, dtype=torch.bool),
    )
    assert_raises(
        ValueError,
        "target: expected the shape of input (4, 3), got (4, 2)",
        ce,
        x,
        torch.rand(4, 2),
    )
    assert_raises(
        ValueError,
        "target: expected values in [0, 1], got values in [-0.5, 1]",
        ce,
        x,
        torch.tensor([[-0.5, 1.0, 0.5]] * 4),
    )
    assert_raises(
        ValueError,
        "target: expected values in [0, 1], got NaN",
        ce,
        x,
        torch.full((4, 3), float("nan")),
    )
    assert_raises(
        ValueError,
        "weight: expected a 1-D tensor of 3 per-class values, got shape (4,)",
        ce,
        x,
        y,
        weight=torch.ones(4),
    )
    assert_raises(
        ValueError,
        "weight: expected non-negative values, got -1",
        ce,
        x,
        y,
        weight=torch.tensor([1.0, -1.0, 1.0]),
    )
    assert_raises(
        ValueError,
        "weight: class weights are treated as constants",
        ce,
        x,
        y,
        weight=torch.ones(3, requires_grad=True),
    )
    assert_raises(
        ValueError,
        "label_smoothing: expected a value in [0, 1], got 1.5",
        ce,
        x,
        y,
        label_smoothing=1.5,
    )
    assert_raises(
        ValueError,
        "reduction: expected one of 'mean', 'sum', 'none', got 'elementwise_mean'",
        ce,
        x,
        y,
        reduction="elementwise_mean",
    )
    assert_raises(
        ValueError,
        "temperature: expected a positive finite number, got -1",
        ce,
        x,
        y,
        temperature=-1,
    )
    assert_raises(TypeError, "input: expected a floating-point tensor, got dtype torch.int64", ce, y, y)
    assert_raises(
        ValueError,
        "input: expected logits of shape (N, C) or (N, C, d1, ...)",
        ce,
        torch.tensor(1.0),
        y,
    )
    assert_raises(TypeError, "ignore_index: expected an int", ce, x, y, ignore_index=None)
