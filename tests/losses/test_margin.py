"""AM-Softmax, the simpler A-Softmax and the cosine head (losses.md §9)."""

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
from tests.helpers import LOW_PRECISION, assert_compiles, assert_gradcheck, assert_raises
from tests.reference import objectives as ref


def _cosines(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.tanh(torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()


def _targets(shape, c, ignore_index=-100, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    y = torch.randint(0, c, shape, generator=g)
    y.view(-1)[::4] = ignore_index
    return y


def _adjusted(cos, y, psi):
    """Dense form: the target cosine replaced by psi(cos_t), ignored samples untouched."""
    valid = (y != -100).unsqueeze(1)
    col = y.clamp_min(0).unsqueeze(1)
    cos_t = cos.gather(1, col)
    return cos.scatter(1, col, torch.where(valid, psi(cos_t), cos_t))


GRID = list(itertools.product([(6, 5), (4, 5, 3)], [False, True], [0.0, 0.1], ["mean", "sum", "none"]))


@pytest.mark.parametrize(("shape", "weighted", "eps", "reduction"), GRID)
def test_am_softmax_matches_oracle_and_dense_torch(shape, weighted, eps, reduction):
    cos = _cosines(shape)
    y = _targets((shape[0], *shape[2:]), shape[1])
    w = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=w, label_smoothing=eps, reduction=reduction)
    ours = LF.am_softmax_loss(cos, y, margin=0.35, scale=30.0, **kwargs)
    expected = ref.am_softmax(
        cos.detach().numpy(),
        y.numpy(),
        margin=0.35,
        scale=30.0,
        **dict(kwargs, weight=None if w is None else w.numpy()),
    )
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    dense = F.cross_entropy(30.0 * _adjusted(cos, y, lambda c: c - 0.35), y, **kwargs)
    torch.testing.assert_close(ours, dense, rtol=1e-12, atol=1e-12)
    up = torch.rand_like(ours) + 0.5
    (g_ours,) = torch.autograd.grad((ours * up).sum(), cos)
    (g_dense,) = torch.autograd.grad((dense * up).sum(), cos)
    torch.testing.assert_close(g_ours, g_dense, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize(("shape", "weighted", "eps", "reduction"), GRID[::3])
def test_simpler_a_softmax_matches_oracle_and_dense_torch(shape, weighted, eps, reduction):
    cos = _cosines(shape, seed=3)
    y = _targets((shape[0], *shape[2:]), shape[1], seed=3)
    w = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=w, label_smoothing=eps, reduction=reduction)
    for m in (1, 2, 4):
        ours = LF.simpler_a_softmax_loss(cos, y, m=m, **kwargs)
        expected = ref.simpler_a_softmax(
            cos.detach().numpy(), y.numpy(), m=m, **dict(kwargs, weight=None if w is None else w.numpy())
        )
        np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)

        def psi(c, m=m):
            return torch.minimum(torch.cos(m * torch.acos(c)), c)

        dense = F.cross_entropy(30.0 * _adjusted(cos, y, psi), y, **kwargs)
        up = torch.rand_like(ours) + 0.5
        (g_ours,) = torch.autograd.grad((ours * up).sum(), cos)
        (g_dense,) = torch.autograd.grad((dense * up).sum(), cos)
        torch.testing.assert_close(g_ours, g_dense, rtol=1e-9, atol=1e-11)


def test_margin_zero_scale_one_is_cross_entropy_on_cosines():
    cos = _cosines((8, 6))
    y = _targets((8,), 6)
    ours = LF.am_softmax_loss(cos, y, margin=0.0, scale=1.0, label_smoothing=0.1)
    theirs = F.cross_entropy(cos, y, label_smoothing=0.1)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(ours, cos)[0], torch.autograd.grad(theirs, cos)[0])
    # m = 1: the simpler variant is the normalised softmax (no margin)
    torch.testing.assert_close(LF.simpler_a_softmax_loss(cos, y, m=1), LF.am_softmax_loss(cos, y, margin=0.0))


def test_gradient_is_scaled_softmax_minus_onehot():
    cos = _cosines((5, 4))
    y = torch.tensor([0, 1, 2, 3, 0])
    (grad,) = torch.autograd.grad(LF.am_softmax_loss(cos, y, reduction="sum"), cos)
    p = torch.softmax(30 * (cos.detach() - 0.35 * F.one_hot(y, 4)), 1)
    torch.testing.assert_close(grad, 30 * (p - F.one_hot(y, 4)))


def test_sparse_computation_of_the_post_agrees():
    """losses.md §9.2: log Z from LSE([s cos, s (c_t - m)]) minus the unmargined target term,
    with log(-expm1(a)); agrees with the dense form to 1e-5 (float64 here)."""
    cos = _cosines((32, 50)).detach()
    y = torch.randint(0, 50, (32,))
    s, m = 30.0, 0.35
    c_t = cos.gather(1, y[:, None]).squeeze(1)
    log_z = torch.logsumexp(torch.cat([s * cos, (s * (c_t - m))[:, None]], 1), 1)
    log_z = log_z + torch.log(-torch.expm1(s * c_t - log_z))
    sparse = (log_z - s * (c_t - m)).mean()
    assert LF.am_softmax_loss(cos, y).item() == pytest.approx(sparse.item(), abs=1e-5)


@given(st.floats(0.0, 0.5), st.floats(0.01, 0.3), st.integers(0, 2**16))
def test_monotone_in_margin(margin, step, seed):
    cos = _cosines((6, 5), seed=seed).detach()
    y = torch.randint(0, 5, (6,), generator=torch.Generator().manual_seed(seed))
    low = LF.am_softmax_loss(cos, y, margin=margin, reduction="none")
    high = LF.am_softmax_loss(cos, y, margin=margin + step, reduction="none")
    assert (high >= low).all() and high.sum() > low.sum()  # a certain sample's loss can underflow to 0


@given(st.floats(-1.0, 1.0))
def test_simpler_psi_properties(c):
    """psi <= cos always; psi = cos 4 theta where cos 4 theta < cos theta; T_4 = cos(4 arccos c)."""
    cos = torch.tensor([[c, 0.0]], dtype=torch.float64)
    loss = LF.simpler_a_softmax_loss(cos, torch.tensor([0]), scale=1.0).item()
    cos4 = math.cos(4 * math.acos(c))
    assert cos4 == pytest.approx(8 * c**4 - 8 * c**2 + 1, abs=1e-12)
    psi = min(cos4, c)
    assert loss == pytest.approx(math.log1p(math.exp(-psi)), rel=1e-10)
    assert loss >= math.log1p(math.exp(-c)) - 1e-12


# ---------------------------------------------------------------------------------------------
# The cosine head, and pytorch-metric-learning's CosFace
# ---------------------------------------------------------------------------------------------


def test_cosine_classifier():
    torch.manual_seed(0)
    head = LN.CosineClassifier(8, 5).double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    cos = head(x)
    assert cos.shape == (3, 4, 5)
    expected = F.normalize(x, dim=-1) @ F.normalize(head.weight, dim=-1).T
    torch.testing.assert_close(cos, expected)
    assert cos.abs().max() <= 1 + 1e-12
    # invariant to positive rescaling of the features or of any class vector
    torch.testing.assert_close(head(3.5 * x), cos)
    with torch.no_grad():
        head.weight[2] *= 7.0
    torch.testing.assert_close(head(x), cos)
    assert [name for name, _ in head.named_parameters()] == ["weight"]
    assert "in_features=8, num_classes=5" in repr(head)


def test_cosine_classifier_is_float32_under_autocast():
    torch.manual_seed(0)
    head = LN.CosineClassifier(16, 10)
    x = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = head(x)
        loss = LF.am_softmax_loss(inside, torch.tensor([0, 1, 2, 3]))
    assert inside.dtype == torch.float32 and loss.dtype == torch.float32
    torch.testing.assert_close(inside, head(x))
    loss.backward()
    assert head.weight.grad.dtype == torch.float32 and torch.isfinite(head.weight.grad).all()
    # half-precision features are normalised in float32 too
    assert head(x.to(torch.float16)).dtype == torch.float32


def test_matches_pytorch_metric_learning_cosface():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    torch.manual_seed(0)
    head = LN.CosineClassifier(12, 7).double()
    cosface = pml.CosFaceLoss(num_classes=7, embedding_size=12, margin=0.35, scale=30).double()
    with torch.no_grad():
        cosface.W.copy_(head.weight.T)  # PML stores W as (embedding, classes)
    x = torch.randn(20, 12, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 7, (20,))
    ours = LF.am_softmax_loss(head(x), y)
    theirs = cosface(x, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    g_ours = torch.autograd.grad(ours, [x, head.weight])
    g_theirs = torch.autograd.grad(theirs, [x, cosface.W])
    torch.testing.assert_close(g_ours[0], g_theirs[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_ours[1], g_theirs[1].T, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Gradients, kernels, dtypes, compile, errors
# ---------------------------------------------------------------------------------------------


def test_gradcheck():
    cos = _cosines((4, 5, 2))
    y = _targets((4, 2), 5)
    w = torch.rand(5, dtype=torch.float64) + 0.1
    assert_gradcheck(lambda v: LF.am_softmax_loss(v, y, weight=w, label_smoothing=0.1, scale=4.0), cos)
    assert_gradcheck(lambda v: LF.simpler_a_softmax_loss(v, y, scale=4.0, reduction="none"), cos)
    head = LN.CosineClassifier(6, 5).double()
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    weight = head.weight

    def end_to_end(features, class_weight):
        cosines = F.normalize(features, dim=-1) @ F.normalize(class_weight, dim=-1).T
        return LF.am_softmax_loss(cosines, torch.tensor([0, 1, 2, 3]), scale=5.0)

    assert_gradcheck(end_to_end, x, weight.detach().requires_grad_())


@pytest.mark.parametrize("shape", [(37, 11), (5, 11, 13)])
def test_blocked_path(monkeypatch, shape):
    cos = _cosines(shape)
    y = _targets((shape[0], *shape[2:]), shape[1])
    expected = LF.simpler_a_softmax_loss(cos, y, reduction="none", label_smoothing=0.1)
    (g_expected,) = torch.autograd.grad(expected.sum(), cos)
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
    ours = LF.simpler_a_softmax_loss(cos, y, reduction="none", label_smoothing=0.1)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), cos)[0], g_expected)


def test_extremes_and_empty():
    cos = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0])
    loss = LF.am_softmax_loss(cos, y, reduction="none", scale=64.0)
    expected = ref.am_softmax(cos.detach().numpy(), y.numpy(), scale=64.0, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-5)
    (grad,) = torch.autograd.grad(loss.sum(), cos)
    assert torch.isfinite(grad).all()
    assert LF.am_softmax_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).item() == 0.0
    assert LF.simpler_a_softmax_loss(torch.zeros(2, 3), torch.tensor([-100, -100])).item() == 0.0
    # rounding just above 1 is accepted
    LF.am_softmax_loss(torch.tensor([[1.0 + 1e-6, 0.0]]), torch.tensor([0]))


@pytest.mark.parametrize("dtype", [torch.float32, *LOW_PRECISION])
def test_dtypes(dtype):
    cos = _cosines((16, 9), dtype=dtype)
    y = _targets((16,), 9)
    for fn in (LF.am_softmax_loss, LF.simpler_a_softmax_loss):
        loss = fn(cos, y, label_smoothing=0.1)
        assert loss.dtype == dtype
        expected = fn(cos.detach().double(), y, label_smoothing=0.1).item()
        assert loss.item() == pytest.approx(expected, rel=1e-5 if dtype == torch.float32 else 3e-2)
        (grad,) = torch.autograd.grad(loss, cos)
        assert grad.dtype == dtype and torch.isfinite(grad).all()


def test_torch_compile_fullgraph():
    cos = torch.tanh(torch.randn(6, 5, 3)).requires_grad_()
    y = torch.randint(0, 5, (6, 3))
    assert_compiles(lambda v: LF.am_softmax_loss(v, y), cos, rtol=1e-4, atol=1e-5)
    assert_compiles(lambda v: LF.simpler_a_softmax_loss(v, y, label_smoothing=0.1), cos, rtol=1e-4, atol=1e-5)
    head = LN.CosineClassifier(8, 5)
    assert_compiles(
        lambda v: LF.am_softmax_loss(head(v), y[:, 0]), torch.randn(6, 8, requires_grad=True), rtol=1e-4
    )


def test_modules():
    cos, y = _cosines((6, 5)), _targets((6,), 5)
    w = torch.rand(5, dtype=torch.float64)
    module = LN.AMSoftmaxLoss(margin=0.2, scale=16.0, weight=w, label_smoothing=0.1)
    torch.testing.assert_close(
        module(cos, y), LF.am_softmax_loss(cos, y, margin=0.2, scale=16.0, weight=w, label_smoothing=0.1)
    )
    assert list(module.state_dict()) == ["weight"] and not list(module.parameters())
    simpler = LN.SimplerASoftmaxLoss(m=3, scale=10.0)
    torch.testing.assert_close(simpler(cos, y), LF.simpler_a_softmax_loss(cos, y, m=3, scale=10.0))
    assert "m=3" in repr(simpler)


def test_bad_inputs():
    cos, y = torch.tanh(torch.randn(4, 3)), torch.tensor([0, 1, 2, 1])
    am, simpler = LF.am_softmax_loss, LF.simpler_a_softmax_loss
    assert_raises(ValueError, "margin: expected a number in [0, inf], got -0.1", am, cos, y, margin=-0.1)
    assert_raises(ValueError, "scale: expected a number in (0, inf], got 0", am, cos, y, scale=0)
    assert_raises(ValueError, "m: expected an integer in [1, inf], got 0", simpler, cos, y, m=0)
    assert_raises(TypeError, "m: expected an integer, got 4.0", simpler, cos, y, m=4.0)
    assert_raises(
        ValueError,
        "input: expected cosine similarities in [-1, 1], got values in [-3, 2]",
        am,
        torch.tensor([[2.0, -3.0, 0.0]]),
        torch.tensor([0]),
    )
    assert_raises(
        ValueError,
        "input: expected cosine similarities in [-1, 1], got values in [nan",
        am,
        torch.full((1, 3), math.nan),
        torch.tensor([0]),
    )
    assert_raises(
        TypeError, "target: margin losses expect integer class indices", am, cos, torch.softmax(cos, 1)
    )
    assert_raises(
        ValueError, "target: expected class indices in [0, 3)", simpler, cos, torch.tensor([0, 1, 2, 3])
    )
    assert_raises(
        ValueError,
        "input: expected a last dimension of in_features=4, got shape (2, 3)",
        LN.CosineClassifier(4, 2),
        torch.randn(2, 3),
    )
    assert_raises(
        ValueError, "num_classes: expected an integer in [1, inf], got 0", LN.CosineClassifier, 4, 0
    )
    assert_raises(ValueError, "margin: expected a number in [0, inf]", LN.AMSoftmaxLoss, margin=-1.0)
