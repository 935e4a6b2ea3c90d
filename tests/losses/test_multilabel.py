"""ZLPR (dense hard / soft labels, sparse indices), decoding: oracle, properties, numerics, autograd."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import logitkit
import logitkit.functional as LF
import logitkit.nn as LN
from logitkit import _blocks
from logitkit.losses._zlpr_dense import plain_zlpr
from tests.helpers import (
    LOW_PRECISION,
    assert_compiles,
    assert_finite,
    assert_gradcheck,
    assert_raises,
)
from tests.reference import zlpr as ref

INF = math.inf


def _hard(shape, generator, dim=1, positives=2):
    """Multi-hot labels with about ``positives`` ones per sample along ``dim``."""
    c = shape[dim]
    probs = torch.rand(shape, generator=generator, dtype=torch.float64)
    return (probs < positives / c).double()


def _soft(shape, generator):
    t = torch.rand(shape, generator=generator, dtype=torch.float64)
    flat = t.view(-1)
    flat[::5] = 0.0  # exact 0 and 1 occur in real soft labels
    flat[1::7] = 1.0
    return t


def _case(shape, kind, dim=1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype).requires_grad_()
    target = _hard(shape, g, dim) if kind == "hard" else _soft(shape, g)
    return x, target.to(dtype)


def _mask(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) > 0.3


# ---------------------------------------------------------------------------------------------
# The spec's oracle values and identities (losses.md §1.8)
# ---------------------------------------------------------------------------------------------

S = [2.0, -1.0, 0.5, -3.0]


def test_spec_oracle_values():
    s = torch.tensor([S], dtype=torch.float64)
    hard = LF.zlpr_loss(s, torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64))
    soft = LF.zlpr_loss(s, torch.tensor([[0.9, 0.2, 0.6, 0.0]], dtype=torch.float64))
    assert hard.item() == pytest.approx(0.9039691, abs=5e-8)
    assert soft.item() == pytest.approx(1.716593, abs=5e-7)
    assert hard.item() == pytest.approx(ref.zlpr([S], [[1, 0, 1, 0]]), rel=1e-14)
    assert hard.item() == pytest.approx(ref.pairwise(S, [0, 2]), rel=1e-14)
    sparse = LF.sparse_zlpr_loss(s, torch.tensor([[0, 2]]))
    assert sparse.item() == pytest.approx(0.9039691, abs=5e-8)
    assert LF.zlpr_loss(s.float(), torch.tensor([[True, False, True, False]])).item() == pytest.approx(
        0.9039691, abs=1e-6
    )


def test_one_positive_formula_and_difference_from_cross_entropy():
    s = torch.tensor([[1.5, -0.3, 0.2, -2.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    expected = math.log1p(math.exp(1.5) + math.exp(0.2) + math.exp(-2.0)) + math.log1p(math.exp(0.3))
    assert LF.zlpr_loss(s, t).item() == pytest.approx(expected, rel=1e-14)
    # The pairwise form without the threshold class is softmax CE; ZLPR is not.
    assert LF.zlpr_loss(s, t).item() != pytest.approx(F.cross_entropy(s, torch.tensor([1])).item())


def test_clipped_reference_differs_by_less_than_two_eps():
    """The bert4keras soft form clips t to [eps, 1 - eps]; on hard labels its value differs from the
    exact loss by -eps (A/(1+A) + B/(1+B)) (spec §1.8: -7.2e-8 on the example)."""
    s = np.array(S)
    eps = 1e-7
    t = np.clip(np.array([1.0, 0.0, 1.0, 0.0]), eps, 1 - eps)
    pos = np.where(t > eps, -s + np.log(t), -np.inf)  # masks from the unclipped labels
    neg = np.where(t < 1 - eps, s + np.log(1 - t), -np.inf)
    pos[[1, 3]] = -np.inf
    neg[[0, 2]] = -np.inf
    clipped = np.logaddexp.reduce(np.append(pos, 0.0)) + np.logaddexp.reduce(np.append(neg, 0.0))
    exact = LF.zlpr_loss(torch.tensor([S], dtype=torch.float64), torch.tensor([[1.0, 0, 1, 0]])).item()
    assert clipped - exact == pytest.approx(-7.2e-8, rel=0.02)


# ---------------------------------------------------------------------------------------------
# The independent float64 oracle over shapes, dims, labels, masks and reductions
# ---------------------------------------------------------------------------------------------

GRID = list(
    itertools.product(
        [((6, 5), 1), ((4, 5, 3), 1), ((3, 2, 5), -1), ((2, 5, 2, 3), 1), ((5,), 0)],
        ["hard", "soft"],
        [False, True],
        ["mean", "sum", "none"],
    )
)


@pytest.mark.parametrize(("shape_dim", "kind", "masked", "reduction"), GRID)
def test_matches_oracle_loss_and_gradient(shape_dim, kind, masked, reduction):
    shape, dim = shape_dim
    x, t = _case(shape, kind, dim=dim)
    mask = _mask(shape) if masked else None
    loss = LF.zlpr_loss(x, t, mask=mask, dim=dim, reduction=reduction)
    expected = ref.zlpr(
        x.detach().numpy(),
        t.numpy(),
        mask=None if mask is None else mask.numpy(),
        dim=dim,
        reduction=reduction,
    )
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-12, atol=1e-13)
    upstream = torch.rand_like(loss) + 0.5
    (grad,) = torch.autograd.grad((loss * upstream).sum(), x)
    axis = dim % x.dim()
    ref_grad = ref.zlpr_grad(
        x.detach().numpy(), t.numpy(), mask=None if mask is None else mask.numpy(), dim=axis
    )
    if reduction == "none":
        ref_grad = ref_grad * np.expand_dims(upstream.numpy(), axis)
    else:
        samples = x.numel() // x.shape[axis]
        ref_grad = ref_grad * upstream.item() / (samples if reduction == "mean" else 1)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# The fused kernel against the plain composition: blocks, label kinds, hand-back rows
# ---------------------------------------------------------------------------------------------


def _mixed_problem(n=23, c=9, seed=0, dtype=torch.float64):
    """Rows of every kind: hard, soft, no positive, all positive, -inf logits, a dead row, huge gaps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 4
    t = _hard((n, c), g)
    t[3:6] = torch.rand(3, c, generator=g, dtype=torch.float64)  # soft rows
    t[7] = 0.0  # no positive
    t[8] = 1.0  # all positive
    x[10, [1, 4]] = -INF  # masked logits, one of them a positive
    t[10, 1] = 1.0
    x[11] = -INF  # dead row
    x[13], t[13] = torch.linspace(-5, 5, c, dtype=torch.float64), 0.0
    x[13, 0], t[13, 0] = -700.0, 1.0  # a positive far below every negative
    x[14] = torch.linspace(-40, 40, c, dtype=torch.float64) * (20 if dtype == torch.float64 else 1)
    t[14, 0] = 1.0  # a badly wrong positive: the negatives' mass underflows next to it
    x[15, 2], t[15, 2] = 1e4, 0.0
    x[16, 0], t[16, 0] = -1e4, 1.0
    big = 200.0 if dtype == torch.float32 else 2000.0  # e^{-L} underflows next to an empty group
    x[17], t[17] = -big, 1.0
    x[18], t[18] = big, 0.0
    return x.to(dtype), t.to(dtype)


@pytest.mark.parametrize("block_bytes", [16, 64, 1 << 20])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_kernel_matches_plain_composition(monkeypatch, block_bytes, dtype):
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    x, t = _mixed_problem(dtype=dtype)
    x.requires_grad_()
    for mask in (None, _mask(x.shape)):
        ours = LF.zlpr_loss(x, t, mask=mask, reduction="none")
        plain = plain_zlpr(x, t, mask)
        tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-6, "atol": 2e-6}
        torch.testing.assert_close(ours, plain, **tol)
        expected = ref.zlpr(x.detach().double().numpy(), t.double().numpy(), mask=mask, reduction="none")
        np.testing.assert_allclose(ours.detach().double().numpy(), expected, **tol)
        upstream = torch.rand(x.shape[0], dtype=dtype) + 0.5
        (g_ours,) = torch.autograd.grad((ours * upstream).sum(), x)
        (g_plain,) = torch.autograd.grad((plain * upstream).sum(), x)
        assert_finite(g_ours)
        torch.testing.assert_close(g_ours, g_plain, **tol)
        with torch.no_grad():
            torch.testing.assert_close(LF.zlpr_loss(x, t, mask=mask, reduction="none"), ours.detach())


def test_hard_labels_through_soft_formula_are_exact():
    """Hard == soft on {0, 1}: the fused hard kernel, the soft kernel (forced by one soft row in the
    same block) and the plain log form agree to 1e-12."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 12, generator=g, dtype=torch.float64) * 3
    t = _hard(x.shape, g)
    hard = LF.zlpr_loss(x, t, reduction="none")
    soft_t = t.clone()
    soft_t[0, 0] = 0.5  # the whole (single) block now takes the soft path
    mixed = LF.zlpr_loss(x, soft_t, reduction="none")
    torch.testing.assert_close(mixed[1:], hard[1:], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hard, plain_zlpr(x, t, None), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(LF.zlpr_loss(x, t.bool(), reduction="none"), hard, rtol=0, atol=0)


def test_underflowing_group_is_recomputed_exactly():
    # float32: positives at -60 next to negatives at +30: the positives' share of one softmax is e^-90.
    x = torch.tensor([[-60.0, -61.0, 30.0, 29.0, -5.0], [60.0, 5.0, -30.0, -31.0, -40.0]], requires_grad=True)
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0, 0.0]])
    loss = LF.zlpr_loss(x, t, reduction="none")
    expected = ref.zlpr(x.detach().numpy(), t.numpy(), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    np.testing.assert_allclose(
        grad.numpy(), ref.zlpr_grad(x.detach().numpy(), t.numpy()), rtol=1e-5, atol=1e-45
    )
    # Row 1: the negatives' gradient is ~e^-30 next to a positive gradient ~e^-5; both are kept.
    assert (grad[1, 2:] > 0).all()


# ---------------------------------------------------------------------------------------------
# Sparse form
# ---------------------------------------------------------------------------------------------


def _sparse_case(n=7, c=11, p=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, generator=g, dtype=torch.float64) * 3).to(dtype)
    positives = torch.randint(0, c, (n, p), generator=g)
    positives[0, 1] = positives[0, 0]  # a repeat counts once
    positives[1, 2:] = -1  # padding
    positives[2] = -1  # no positive at all
    return x, positives


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparse_equals_dense(monkeypatch, block_bytes, dtype):
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    x, positives = _sparse_case(dtype=dtype)
    with torch.no_grad():
        x[4, 3] = -INF
        x[5, positives[5, 0]] = -INF  # a -inf positive is excluded, as in the dense form
    dense_t = torch.as_tensor(ref.sparse_to_dense(positives.numpy(), x.shape[1]), dtype=dtype)
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    sparse = LF.sparse_zlpr_loss(x1, positives, reduction="none")
    dense = LF.zlpr_loss(x2, dense_t, reduction="none")
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(sparse, dense, **tol)
    upstream = torch.rand(x.shape[0], dtype=dtype) + 0.5
    (g1,) = torch.autograd.grad((sparse * upstream).sum(), x1)
    (g2,) = torch.autograd.grad((dense * upstream).sum(), x2)
    torch.testing.assert_close(g1, g2, **tol)
    for reduction in ("mean", "sum"):
        torch.testing.assert_close(
            LF.sparse_zlpr_loss(x, positives, reduction=reduction),
            LF.zlpr_loss(x, dense_t, reduction=reduction),
            **tol,
        )


def test_sparse_nd_and_unbatched_layouts():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 4, generator=g, dtype=torch.float64)  # (N, C, d1)
    positives = torch.randint(0, 6, (3, 2, 4), generator=g)
    dense_t = torch.zeros(3, 6, 4, dtype=torch.float64).scatter_(1, positives, 1.0)
    torch.testing.assert_close(
        LF.sparse_zlpr_loss(x, positives, reduction="none"), LF.zlpr_loss(x, dense_t, reduction="none")
    )
    last = x.movedim(1, -1)
    torch.testing.assert_close(
        LF.sparse_zlpr_loss(last, positives.movedim(1, -1), dim=-1, reduction="none"),
        LF.zlpr_loss(x, dense_t, reduction="none"),
    )
    torch.testing.assert_close(
        LF.sparse_zlpr_loss(x[0, :, 0], positives[0, :, 0], reduction="none"),
        LF.zlpr_loss(x[0, :, 0], dense_t[0, :, 0], reduction="none"),
    )


def test_sparse_cancellation_case_is_exact():
    """bert4keras#436: positives at +50 and negatives at -50. The subtraction form
    A + log(1 - exp(LSE(pos) - A)) gives -inf / NaN in float32; ours matches float64 truth."""
    x = torch.full((1, 6), -50.0)
    x[0, :2] = 50.0
    positives = torch.tensor([[0, 1]])
    a = torch.logsumexp(torch.cat([x, torch.zeros(1, 1)], 1), 1)
    aux = torch.logsumexp(x[:, :2], 1) - a
    subtraction = a + torch.log(1 - torch.exp(aux))
    assert not torch.isfinite(subtraction).all()
    ours = LF.sparse_zlpr_loss(x.requires_grad_(), positives, reduction="none")
    expected = ref.zlpr(x.detach().double().numpy(), ref.sparse_to_dense([[0, 1]], 6), reduction="none")
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-6)
    (grad,) = torch.autograd.grad(ours.sum(), x)
    assert_finite(grad)
    assert (grad[0, 2:] > 0).all()


def test_sparse_edge_rows():
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        x[1] = -INF  # dead row
        x[2, 1:] = -INF  # only the positive is finite: no negative left
    positives = torch.tensor([[0, 1, 2, 3, 4], [0, -1, -1, -1, -1], [0, -1, -1, -1, -1], [-1] * 5])
    loss = LF.sparse_zlpr_loss(x, positives, reduction="none")
    dense_t = torch.as_tensor(ref.sparse_to_dense(positives.numpy(), 5))
    np.testing.assert_allclose(
        loss.detach().numpy(), ref.zlpr(x.detach().numpy(), dense_t.numpy(), reduction="none"), rtol=1e-12
    )
    assert loss[1] == 0
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert_finite(grad)
    assert (grad[1] == 0).all() and (grad[2, 1:] == 0).all()
    # pad_index inside [0, C): that class is never a positive but stays a negative.
    y = torch.randn(2, 5, dtype=torch.float64)
    p = torch.tensor([[0, 3], [0, 0]])
    torch.testing.assert_close(
        LF.sparse_zlpr_loss(y, p, pad_index=0, reduction="none"),
        LF.zlpr_loss(y, torch.as_tensor(ref.sparse_to_dense(p.numpy(), 5, pad_index=0)), reduction="none"),
    )
    empty = LF.sparse_zlpr_loss(torch.randn(0, 5, requires_grad=True), torch.zeros(0, 2, dtype=torch.long))
    assert empty.item() == 0.0
    no_classes = torch.randn(3, 0, requires_grad=True)
    assert LF.sparse_zlpr_loss(no_classes, torch.full((3, 1), -1), reduction="sum").item() == 0.0


def test_sparse_peak_memory_is_one_gradient():
    """No dense target or full-size copy: one forward + backward allocates about the gradient."""
    x = torch.randn(4, 200_000, requires_grad=True)
    positives = torch.randint(0, 200_000, (4, 20))
    LF.sparse_zlpr_loss(x, positives).backward()  # warm-up
    x.grad = None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        LF.sparse_zlpr_loss(x, positives).backward()
    events = prof.key_averages()
    peak_alloc = max(e.cpu_memory_usage for e in events)
    assert peak_alloc <= 1.1 * x.numel() * 4


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_seeds = st.integers(0, 2**16)


@given(st.integers(1, 6), st.integers(1, 9), _seeds)
def test_hard_zlpr_is_below_summed_bce(n, c, seed):
    """The BCE link (spec §1.4): on hard labels ZLPR drops positive higher-order product terms, so
    ZLPR <= summed BCE, with equality for a single label."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 4
    t = _hard((n, c), g)
    zlpr = LF.zlpr_loss(x, t, reduction="none")
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none").sum(1)
    assert (zlpr <= bce + 1e-12).all()
    for k in range(n):
        assert bce[k].item() == pytest.approx(ref.bce_sum(x[k].tolist(), t[k].tolist()), rel=1e-12)
    one = F.binary_cross_entropy_with_logits(x[:, :1], t[:, :1], reduction="none").sum(1)
    torch.testing.assert_close(LF.zlpr_loss(x[:, :1], t[:, :1], reduction="none"), one)


@given(st.floats(-8, 8), st.floats(0.01, 0.99))
def test_soft_single_label_is_above_bce(s, t):
    """With a soft label the binomial 'higher-order terms' of BCE are not all positive: for one label
    log(1 + t e^-s) >= t log(1 + e^-s) (concavity), so the inequality above is for hard labels only."""
    x = torch.tensor([[s]], dtype=torch.float64)
    y = torch.tensor([[t]], dtype=torch.float64)
    assert LF.zlpr_loss(x, y).item() >= F.binary_cross_entropy_with_logits(x, y).item() - 1e-12


@given(st.integers(2, 8), _seeds)
def test_hard_loss_equals_pairwise_form(c, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, generator=g, dtype=torch.float64) * 3
    positives = sorted(set(torch.randint(0, c, (3,), generator=g).tolist()))
    t = torch.zeros(1, c, dtype=torch.float64)
    t[0, positives] = 1.0
    assert LF.zlpr_loss(x, t).item() == pytest.approx(ref.pairwise(x[0].tolist(), positives), rel=1e-12)


@given(st.integers(1, 5), st.integers(2, 8), st.booleans(), _seeds)
def test_permutation_equivariance_mask_and_reductions(n, c, soft, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    t = torch.rand(n, c, generator=g, dtype=torch.float64) if soft else _hard((n, c), g)
    per = LF.zlpr_loss(x, t, reduction="none")
    perm = torch.randperm(c, generator=g)
    torch.testing.assert_close(LF.zlpr_loss(x[:, perm], t[:, perm], reduction="none"), per)
    # Masking a class == removing it == giving it a -inf logit.
    keep = torch.rand(n, c, generator=g) > 0.4
    keep[:, 0] = True
    masked = LF.zlpr_loss(x, t, mask=keep, reduction="none")
    torch.testing.assert_close(
        LF.zlpr_loss(x.masked_fill(~keep, -INF), t * keep, reduction="none"), masked, rtol=1e-12, atol=1e-12
    )
    subset = keep[0]
    assert masked[0].item() == pytest.approx(
        LF.zlpr_loss(x[0, subset][None], t[0, subset][None]).item(), rel=1e-12, abs=1e-14
    )
    assert LF.zlpr_loss(x, t, reduction="sum").item() == pytest.approx(per.sum().item())
    assert LF.zlpr_loss(x, t).item() == pytest.approx(per.mean().item())
    assert (per > 0).all()


def test_no_positive_and_all_positive_rows():
    x = torch.tensor([[0.3, -1.0, 2.0], [0.3, -1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    loss = LF.zlpr_loss(x, t, reduction="none")
    xs = [0.3, -1.0, 2.0]
    assert loss[0].item() == pytest.approx(math.log1p(sum(math.exp(v) for v in xs)), rel=1e-14)
    assert loss[1].item() == pytest.approx(math.log1p(sum(math.exp(-v) for v in xs)), rel=1e-14)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert (grad[0] > 0).all() and (grad[1] < 0).all()


def test_loss_vanishes_only_in_the_limit():
    t = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    direction = 2 * t - 1
    values = [LF.zlpr_loss(scale * direction, t).item() for scale in (1.0, 5.0, 20.0, 80.0)]
    assert all(a > b > 0 for a, b in itertools.pairwise(values)) or values[-1] == 0.0
    assert values[-1] < 1e-30


def test_soft_label_optimum_and_probability_reading():
    """Spec §1.5: the optimum is s* = logit(t) / 2, where the gradient vanishes and sigma(2 s*) = t."""
    t = torch.tensor([[0.9, 0.2, 0.6, 0.05, 0.5]], dtype=torch.float64)
    s_star = (0.5 * torch.log(t / (1 - t))).requires_grad_()
    (grad,) = torch.autograd.grad(LF.zlpr_loss(s_star, t), s_star)
    assert grad.abs().max() < 1e-15
    torch.testing.assert_close(LF.zlpr_probs(s_star.detach()), t, rtol=1e-12, atol=1e-12)
    # And gradient descent from 0 reaches it.
    s = torch.zeros_like(t, requires_grad=True)
    opt = torch.optim.LBFGS([s], max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = LF.zlpr_loss(s, t)
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(LF.zlpr_probs(s.detach()), t, rtol=1e-5, atol=1e-5)


def test_decode_and_probs():
    x = torch.tensor([[2.0, -1.0, 0.0, -INF, 0.3]])
    assert LF.zlpr_decode(x).tolist() == [[True, False, False, False, True]]
    assert LF.zlpr_decode(x, threshold=0.5).tolist() == [[True, False, False, False, False]]
    per_label = torch.tensor([1.0, -2.0, -0.5, 0.0, 0.0])
    assert LF.zlpr_decode(x, threshold=per_label).tolist() == [[True, True, True, False, True]]
    probs = LF.zlpr_probs(x)
    torch.testing.assert_close(probs, torch.sigmoid(2 * x))
    assert torch.equal(probs > 0.5, LF.zlpr_decode(x))
    assert LF.zlpr_probs(torch.tensor([1.0], dtype=torch.bfloat16)).dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------
# Extreme inputs and precision
# ---------------------------------------------------------------------------------------------


def test_extreme_logits_masks_and_empty_inputs():
    x = torch.tensor(
        [[1e4, -1e4, 0.0, 3.0], [-1e4, 1e4, 1e4, -1e4], [-INF, 2.0, -INF, 0.5], [-INF] * 4],
        requires_grad=True,
    )
    t = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    loss = LF.zlpr_loss(x, t, reduction="none")
    expected = ref.zlpr(x.detach().numpy(), t.numpy(), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)
    assert loss[3] == 0
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert_finite(grad)
    assert (grad[3] == 0).all() and grad[2, 0] == 0 and grad[2, 2] == 0
    empty = torch.randn(0, 4, requires_grad=True)
    loss = LF.zlpr_loss(empty, torch.zeros(0, 4))
    assert loss.item() == 0.0
    loss.backward()
    no_classes = LF.zlpr_loss(torch.randn(3, 0), torch.zeros(3, 0), reduction="none")
    assert torch.equal(no_classes, torch.zeros(3))
    all_masked = LF.zlpr_loss(torch.randn(2, 3), torch.ones(2, 3), mask=torch.zeros(2, 3, dtype=torch.bool))
    assert all_masked.item() == 0.0


def test_nan_input_propagates():
    x = torch.tensor([[1.0, float("nan"), 0.0], [1.0, 2.0, 3.0]])
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    loss = LF.zlpr_loss(x, t, reduction="none")
    assert torch.isnan(loss[0]) and torch.isfinite(loss[1])
    assert torch.isnan(LF.sparse_zlpr_loss(x, torch.tensor([[0], [1]]), reduction="none")[0])


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_low_precision_inputs(dtype, kind):
    x, t = _case((16, 9), kind, dtype=dtype)
    mask = _mask(x.shape)
    loss = LF.zlpr_loss(x, t, mask=mask)
    assert loss.dtype == dtype
    expected = ref.zlpr(x.detach().double().numpy(), t.double().numpy(), mask=mask.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-2)
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.dtype == dtype
    ref_grad = ref.zlpr_grad(x.detach().double().numpy(), t.double().numpy(), mask=mask.numpy()) / 16
    np.testing.assert_allclose(grad.double().numpy(), ref_grad, rtol=2e-2, atol=2e-3)
    positives = torch.tensor([[0, 3], [1, -1]] * 8)
    sparse = LF.sparse_zlpr_loss(x, positives)
    assert sparse.dtype == dtype and torch.isfinite(sparse)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_half_precision_where_1e12_masks_overflow(dtype):
    """The reference code's 1e12 constants are inf in float16 (max 65504): y_true * 1e12 is
    0 * inf = NaN on every negative (spec §11). -inf masks and float32 compute stay finite."""
    x = torch.tensor([[3.0, -2.0, 1.0, -INF, 0.5]], dtype=dtype)
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0]], dtype=dtype)
    big = torch.tensor(1e12, dtype=dtype)  # what a float16 graph holds for the constant
    y_pred = (1 - 2 * t) * x.masked_fill(torch.isinf(x), -1e4)
    zeros = torch.zeros(1, 1, dtype=dtype)
    y_neg = torch.cat([y_pred - t * big, zeros], 1)
    y_pos = torch.cat([y_pred - (1 - t) * big, zeros], 1)
    keras_style = torch.logsumexp(y_neg, 1) + torch.logsumexp(y_pos, 1)
    assert torch.isfinite(keras_style).all() == (dtype == torch.bfloat16)
    ours = LF.zlpr_loss(x, t)
    expected = ref.zlpr(x.double().numpy(), t.double().numpy())
    assert torch.isfinite(ours) and ours.item() == pytest.approx(expected, rel=1e-2)


def test_autocast_bfloat16():
    layer = torch.nn.Linear(8, 6)
    features = torch.randn(5, 8)
    t = _hard((5, 6), torch.Generator().manual_seed(0)).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(features)
        loss = LF.zlpr_loss(logits, t)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    loss.backward()
    assert_finite(layer.weight.grad)
    expected = ref.zlpr(logits.detach().double().numpy(), t.double().numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-2)


# ---------------------------------------------------------------------------------------------
# Gradients, compile, autograd contract
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_gradcheck_and_gradgradcheck(kind):
    x, t = _case((3, 5), kind)
    mask = _mask((1, 5))
    assert_gradcheck(lambda v: LF.zlpr_loss(v, t, mask=mask), x, gradgrad=True)
    x3, t3 = _case((2, 4, 2), kind)
    assert_gradcheck(lambda v: LF.zlpr_loss(v, t3, reduction="none"), x3)


def test_sparse_gradcheck_and_gradgradcheck():
    x, positives = _sparse_case(n=3, c=5, p=3)
    assert_gradcheck(
        lambda v: LF.sparse_zlpr_loss(v, positives, reduction="sum"), x.requires_grad_(), gradgrad=True
    )


def test_target_gradient():
    """Soft targets may require grad (e.g. learned label distributions); d loss / d t_i =
    e^{-s_i} / (1 + P) - e^{s_i} / (1 + Q), also at t_i in {0, 1}."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    t = torch.rand(3, 5, generator=g, dtype=torch.float64).requires_grad_()
    assert_gradcheck(lambda q: LF.zlpr_loss(x, q, reduction="none"), t)
    t_edge = torch.tensor([[0.0, 1.0, 0.3, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    (dt,) = torch.autograd.grad(LF.zlpr_loss(x[:1], t_edge), t_edge)
    s = x[0]
    p_sum = (t_edge.detach()[0] * torch.exp(-s)).sum()
    q_sum = ((1 - t_edge.detach()[0]) * torch.exp(s)).sum()
    torch.testing.assert_close(dt[0], torch.exp(-s) / (1 + p_sum) - torch.exp(s) / (1 + q_sum))


def test_double_backward_equals_plain_composition():
    x, t = _case((5, 7), "soft")
    v = torch.randn(5, 7, dtype=torch.float64)
    hvps = []
    for fn in (lambda z: LF.zlpr_loss(z, t), lambda z: plain_zlpr(z, t, None).mean()):
        (grad,) = torch.autograd.grad(fn(x), x, create_graph=True)
        hvps.append(torch.autograd.grad((grad * v).sum(), x)[0])
    torch.testing.assert_close(hvps[0], hvps[1])


@pytest.mark.parametrize("sparse", [False, True])
def test_backward_scaling_retained_graph_and_jacobian(sparse):
    x, positives = _sparse_case(n=5, c=6, p=2)
    t = torch.as_tensor(ref.sparse_to_dense(positives.numpy(), 6))

    def fn(v, reduction="mean"):
        if sparse:
            return LF.sparse_zlpr_loss(v, positives, reduction=reduction)
        return LF.zlpr_loss(v, t, reduction=reduction)

    expected = torch.as_tensor(ref.zlpr_grad(x.numpy(), t.numpy()))
    x = x.requires_grad_()
    loss = fn(x)
    loss.backward(retain_graph=True)
    torch.testing.assert_close(x.grad, expected / 5)
    loss.backward()  # the second backward recomputes the buffer
    torch.testing.assert_close(x.grad, 2 * expected / 5)
    (g,) = torch.autograd.grad(3.0 * fn(x, "sum"), x)  # upstream factor differs from the predicted one
    torch.testing.assert_close(g, 3 * expected)
    jac = torch.autograd.functional.jacobian(lambda v: fn(v, "none"), x.detach())
    ref_jac = torch.autograd.functional.jacobian(lambda v: plain_zlpr(v, t, None), x.detach())
    torch.testing.assert_close(jac, ref_jac)


def test_torch_compile_fullgraph():
    x, t = _case((6, 5, 3), "soft", dtype=torch.float32)
    mask = _mask((6, 5, 3))
    assert_compiles(lambda v: LF.zlpr_loss(v, t, mask=mask), x)
    x2, t2 = _case((8, 7), "hard", dtype=torch.float32)
    assert_compiles(lambda v: LF.zlpr_loss(v, t2, reduction="none"), x2)
    xs, positives = _sparse_case(dtype=torch.float32)
    assert_compiles(lambda v: LF.sparse_zlpr_loss(v, positives), xs.requires_grad_())
    assert_compiles(lambda v: LF.zlpr_probs(v) * LF.zlpr_decode(v), x2)


def test_modules_match_functional():
    x, t = _case((4, 6), "soft")
    mask = _mask((4, 6))
    module = LN.ZLPRLoss(reduction="sum")
    torch.testing.assert_close(module(x, t, mask), LF.zlpr_loss(x, t, mask=mask, reduction="sum"))
    assert not list(module.parameters()) and "reduction='sum'" in repr(module)
    last = LN.ZLPRLoss(dim=-1)
    torch.testing.assert_close(last(x.T[None], t.T[None]), LF.zlpr_loss(x.T[None], t.T[None], dim=-1))
    xs, positives = _sparse_case()
    sparse = LN.SparseZLPRLoss(pad_index=-1, reduction="none")
    torch.testing.assert_close(sparse(xs, positives), LF.sparse_zlpr_loss(xs, positives, reduction="none"))
    assert "pad_index=-1" in repr(sparse)
    assert logitkit.zlpr_loss is LF.zlpr_loss


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("requires_grad", [False, True])
def test_bad_targets(requires_grad):
    x = torch.randn(4, 3, requires_grad=requires_grad)
    z = LF.zlpr_loss
    assert_raises(
        ValueError,
        "target: expected values in [0, 1], got values in [-0.5, 1]",
        z,
        x,
        torch.tensor([[-0.5, 1.0, 0.0]] * 4),
    )
    assert_raises(
        ValueError,
        "target: expected values in [0, 1], got values in [0, 2]",
        z,
        x,
        torch.tensor([[0.0, 2.0, 1.0]] * 4),
    )
    bad = torch.zeros(4, 3)
    bad[2, 1] = float("nan")
    assert_raises(ValueError, "target: expected values in [0, 1], got NaN", z, x, bad)
    assert_raises(
        ValueError, "target: expected the shape of input (4, 3), got (4, 2)", z, x, torch.zeros(4, 2)
    )
    assert_raises(
        TypeError,
        "target: expected floating labels in [0, 1] or a bool multi-hot tensor",
        z,
        x,
        torch.tensor([0, 1, 2, 1]).reshape(4, 1).expand(4, 3),
    )
    assert_raises(
        TypeError,
        "input: expected a floating-point tensor, got dtype torch.int64",
        z,
        torch.zeros(4, 3, dtype=torch.long),
        torch.zeros(4, 3),
    )
    assert_raises(
        TypeError,
        "mask: expected a bool tensor (True keeps an entry), got torch.float32",
        z,
        x,
        torch.zeros(4, 3),
        mask=torch.ones(4, 3),
    )
    assert_raises(
        ValueError,
        "mask: expected a shape broadcastable to the input's (4, 3), got (2, 3)",
        z,
        x,
        torch.zeros(4, 3),
        mask=torch.ones(2, 3, dtype=torch.bool),
    )
    assert_raises(
        IndexError,
        "dim: expected a dimension in [-2, 1] for an input of shape (4, 3), got 2",
        z,
        x,
        torch.zeros(4, 3),
        dim=2,
    )
    assert_raises(
        ValueError,
        "reduction: expected one of 'mean', 'sum', 'none', got 'batchmean'",
        z,
        x,
        torch.zeros(4, 3),
        reduction="batchmean",
    )
    assert_raises(
        ValueError,
        "input: expected logits of shape (N, C), (N, C, d1, ...) or (C,), got a scalar",
        z,
        torch.tensor(1.0),
        torch.tensor(1.0),
    )


def test_bad_targets_in_a_later_block(monkeypatch):
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 16)  # 4 rows per block
    t = torch.zeros(10, 4)
    t[8, 2] = 1.5
    assert_raises(
        ValueError,
        "target: expected values in [0, 1], got values in [0, 1.5]",
        LF.zlpr_loss,
        torch.randn(10, 4, requires_grad=True),
        t,
    )
    logitkit.set_validate_args(False)
    try:
        assert torch.isfinite(LF.zlpr_loss(torch.randn(10, 4), t))  # unchecked: no error, no NaN
    finally:
        logitkit.set_validate_args(True)


def test_bad_positives():
    x = torch.randn(4, 5)
    sz = LF.sparse_zlpr_loss
    assert_raises(
        ValueError,
        "positives: expected class indices in [0, 5) or pad_index=-1, got values in [-1, 5]",
        sz,
        x,
        torch.tensor([[0, 5], [1, -1], [2, 2], [3, 4]]),
    )
    assert_raises(
        ValueError,
        "positives: expected class indices in [0, 5) or pad_index=-1, got values in [-3, 4]",
        sz,
        x,
        torch.tensor([[0, -3], [1, -1], [2, 2], [3, 4]]),
    )
    assert_raises(
        ValueError,
        "or pad_index=-100, got values in [-1, 4]",
        sz,
        x,
        torch.tensor([[0, -1], [1, 1], [2, 2], [3, 4]]),
        pad_index=-100,
    )
    assert_raises(
        TypeError,
        "positives: expected integer class indices, got dtype torch.float32",
        sz,
        x,
        torch.zeros(4, 2),
    )
    assert_raises(
        TypeError,
        "positives: expected integer class indices, got dtype torch.bool",
        sz,
        x,
        torch.zeros(4, 5, dtype=torch.bool),
    )
    assert_raises(
        ValueError,
        "positives: expected shape (4, P) for input of shape (4, 5) (P indices along dim 1), got (3, 2)",
        sz,
        x,
        torch.zeros(3, 2, dtype=torch.long),
    )
    assert_raises(
        TypeError,
        "pad_index: expected an int, got None",
        sz,
        x,
        torch.zeros(4, 2, dtype=torch.long),
        pad_index=None,
    )
    assert_raises(
        TypeError, "threshold: expected a float or a tensor, got 'high'", LF.zlpr_decode, x, threshold="high"
    )


@pytest.mark.parametrize(
    ("shape", "mask_shape", "dim"), [((6, 5), (5,), 1), ((4, 5, 3), (1, 5, 1), 1), ((3, 4, 5), (5,), -1)]
)
def test_broadcast_masks(shape, mask_shape, dim):
    x, t = _case(shape, "hard", dim=dim)
    mask = _mask(mask_shape, seed=4)
    mask.view(-1)[0] = False
    loss = LF.zlpr_loss(x, t, mask=mask, dim=dim, reduction="none")
    full = mask.expand(shape)
    expected = ref.zlpr(x.detach().numpy(), t.numpy(), mask=full.numpy(), dim=dim, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-12)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    assert (grad[~full] == 0).all()
