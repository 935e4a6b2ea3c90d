"""Smooth accuracy, smooth F1 and the F1-weighted BCE (losses.md §3, §7)."""

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
from tests.losses.test_cross_entropy import _case
from tests.reference import objectives as ref

torchmetrics = pytest.importorskip("torchmetrics")
from torchmetrics.functional import classification as tmc  # noqa: E402

SHAPES = [(6, 5), (4, 5, 3)]


def _binary_case(shape, seed=0, soft=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).requires_grad_()
    t = (
        torch.rand(shape, generator=g, dtype=torch.float64)
        if soft
        else torch.randint(0, 2, shape, generator=g)
    )
    return x, t


# ---------------------------------------------------------------------------------------------
# Smooth accuracy
# ---------------------------------------------------------------------------------------------

ACC_GRID = list(
    itertools.product(SHAPES, ["index", "probs"], [False, True], ["mean", "sum", "none"], [1.0, 0.5])
)


@pytest.mark.parametrize(("shape", "kind", "weighted", "reduction", "temperature"), ACC_GRID)
def test_multiclass_accuracy_matches_oracle(shape, kind, weighted, reduction, temperature):
    x, target = _case(shape, kind, -100)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    ours = LF.smooth_accuracy_loss(x, target, weight=weight, reduction=reduction, temperature=temperature)
    expected = ref.smooth_accuracy_multiclass(
        x.detach().numpy(),
        target.numpy(),
        temperature=temperature,
        weight=None if weight is None else weight.numpy(),
        reduction=reduction,
    )
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    if kind == "index" and reduction == "mean":
        log = LF.smooth_accuracy_loss(x, target, weight=weight, temperature=temperature, log=True)
        expected_log = ref.smooth_accuracy_multiclass_log(
            x.detach().numpy(),
            target.numpy(),
            temperature=temperature,
            weight=None if weight is None else weight.numpy(),
        )
        assert log.item() == pytest.approx(expected_log, rel=1e-10)


def test_log_variant_with_probability_targets():
    x, target = _case((6, 5), "probs", -100)
    p = torch.softmax(x, 1)
    expected = -torch.log((target * p).sum(1).mean())
    torch.testing.assert_close(LF.smooth_accuracy_loss(x, target, log=True), expected)


@pytest.mark.parametrize("task", ["binary", "multilabel"])
@pytest.mark.parametrize("soft", [False, True])
def test_binary_accuracy_matches_oracle(task, soft):
    x, t = _binary_case((5, 4), soft=soft)
    for reduction in ("mean", "sum", "none"):
        ours = LF.smooth_accuracy_loss(x, t, task=task, reduction=reduction, temperature=0.7)
        expected = ref.smooth_accuracy_binary(
            x.detach().numpy(), t.numpy(), temperature=0.7, reduction=reduction
        )
        np.testing.assert_allclose(ours.detach().numpy().ravel(), np.ravel(expected), rtol=1e-10, atol=1e-12)
    log = LF.smooth_accuracy_loss(x, t, task=task, log=True, temperature=0.7)
    assert log.item() == pytest.approx(
        ref.smooth_accuracy_binary(x.detach().numpy(), t.numpy(), temperature=0.7, log=True)
    )
    # bool targets are 0/1 labels
    if not soft:
        torch.testing.assert_close(
            LF.smooth_accuracy_loss(x, t.bool(), task=task), LF.smooth_accuracy_loss(x, t.double(), task=task)
        )


def test_accuracy_tends_to_exact_metric():
    """tau -> 0: torchmetrics / scikit-learn accuracies (micro for multiclass)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (200,), generator=g)
    from sklearn.metrics import accuracy_score

    exact = accuracy_score(y.numpy(), x.argmax(1).numpy())
    assert 1 - LF.smooth_accuracy_loss(x, y, temperature=1e-4).item() == pytest.approx(exact, abs=1e-12)
    exact_tm = tmc.multiclass_accuracy(x.argmax(1), y, num_classes=7, average="micro").item()
    assert exact == pytest.approx(exact_tm, abs=1e-6)
    errors = [abs(1 - LF.smooth_accuracy_loss(x, y, temperature=t).item() - exact) for t in (1.0, 0.1, 0.01)]
    assert errors[0] > errors[1] > errors[2]
    # balanced accuracy = weights 1 / class count (torchmetrics' macro accuracy)
    counts = torch.bincount(y, minlength=7).double()
    balanced = 1 - LF.smooth_accuracy_loss(x, y, temperature=1e-4, weight=1 / counts).item()
    assert balanced == pytest.approx(tmc.multiclass_accuracy(x.argmax(1), y, num_classes=7).item(), abs=1e-6)
    # multi-label: the fraction of correct labels
    z = torch.randn(50, 6, generator=g, dtype=torch.float64)
    t = torch.randint(0, 2, (50, 6), generator=g)
    exact = tmc.multilabel_accuracy((z > 0).long(), t, num_labels=6, average="micro").item()
    ours = 1 - LF.smooth_accuracy_loss(z, t, task="multilabel", temperature=1e-4).item()
    assert ours == pytest.approx(exact, abs=1e-6)
    exact = tmc.binary_accuracy((z > 0).long(), t).item()
    assert 1 - LF.smooth_accuracy_loss(z, t, task="binary", temperature=1e-4).item() == pytest.approx(
        exact, abs=1e-6
    )


def test_cross_entropy_is_a_stretched_smooth_accuracy():
    """post 9098: -log p - (1 - p) = O((1 - p)^2) as p -> 1; smooth accuracy's gradient is p times CE's
    (losses.md §3.5), the factor that starves badly wrong samples."""
    for gap in (1e-2, 1e-3, 1e-4):
        p = 1 - gap
        x = torch.tensor([[math.log(p), math.log(gap)]], dtype=torch.float64, requires_grad=True)
        y = torch.tensor([0])
        ce, acc = LF.cross_entropy(x, y), LF.smooth_accuracy_loss(x, y)
        assert (ce - acc).item() == pytest.approx(gap**2 / 2, rel=0.02)
        (g_ce,) = torch.autograd.grad(ce, x)
        (g_acc,) = torch.autograd.grad(acc, x)
        torch.testing.assert_close(g_acc, p * g_ce)


@given(st.integers(1, 6), st.integers(2, 7), st.floats(-100, 100), st.integers(0, 2**16))
def test_accuracy_properties(n, c, shift, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, c, (n,), generator=g)
    loss = LF.smooth_accuracy_loss(x, y, reduction="none")
    assert ((loss >= 0) & (loss <= 1)).all()
    torch.testing.assert_close(LF.smooth_accuracy_loss(x + shift, y, reduction="none"), loss)
    assert LF.smooth_accuracy_loss(x, y, log=True).item() >= LF.smooth_accuracy_loss(x, y).item() - 1e-12


# ---------------------------------------------------------------------------------------------
# Smooth F1
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "kind", "average"),
    list(itertools.product(SHAPES, ["index", "probs"], ["macro", "micro", "none"])),
)
def test_multiclass_f1_matches_oracle(shape, kind, average):
    x, target = _case(shape, kind, -100)
    ours = LF.smooth_f1_loss(x, target, average=average, temperature=0.8)
    expected = ref.smooth_f1_multiclass(x.detach().numpy(), target.numpy(), average=average, temperature=0.8)
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("average", ["macro", "micro", "none"])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 2)])
def test_multilabel_and_binary_f1_match_oracle(average, shape):
    x, t = _binary_case(shape, soft=True)
    ours = LF.smooth_f1_loss(x, t, task="multilabel", average=average)
    expected = ref.smooth_f1_multilabel(x.detach().numpy(), t.numpy(), average=average)
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    binary = LF.smooth_f1_loss(x, t, task="binary", average=average)  # average has no effect
    assert binary.item() == pytest.approx(ref.smooth_f1_binary(x.detach().numpy(), t.numpy()), rel=1e-10)


def test_micro_f1_of_single_label_multiclass_is_smooth_accuracy():
    x, y = _case((6, 5, 3), "index", -100)
    torch.testing.assert_close(LF.smooth_f1_loss(x, y, average="micro"), LF.smooth_accuracy_loss(x, y))


def test_f1_tends_to_exact_metric():
    """tau -> 0: scikit-learn / torchmetrics F1 (classes absent from targets and predictions are
    left out of the macro mean, as both do for multiclass)."""
    from sklearn.metrics import f1_score

    g = torch.Generator().manual_seed(2)
    x = torch.randn(60, 6, generator=g, dtype=torch.float64) * 3
    x[:, 5] -= 100  # class 5 is never predicted
    y = torch.randint(0, 5, (60,), generator=g)  # ... nor a target
    pred = x.argmax(1)
    for average in ("macro", "micro"):
        exact = f1_score(y.numpy(), pred.numpy(), average=average)
        ours = 1 - LF.smooth_f1_loss(x, y, average=average, temperature=1e-5).item()
        assert ours == pytest.approx(exact, abs=1e-9)
        exact_tm = tmc.multiclass_f1_score(pred, y, num_classes=6, average=average).item()
        assert ours == pytest.approx(exact_tm, abs=1e-6)
    z = torch.randn(40, 4, generator=g, dtype=torch.float64) * 3
    t = torch.randint(0, 2, (40, 4), generator=g)
    for average in ("macro", "micro"):
        exact = tmc.multilabel_f1_score((z > 0).long(), t, num_labels=4, average=average).item()
        ours = 1 - LF.smooth_f1_loss(z, t, task="multilabel", average=average, temperature=1e-5).item()
        assert ours == pytest.approx(exact, abs=1e-6)
    exact = tmc.binary_f1_score((z > 0).long(), t).item()
    assert 1 - LF.smooth_f1_loss(z, t, task="binary", temperature=1e-5).item() == pytest.approx(
        exact, abs=1e-6
    )


def test_f1_zero_division_and_all_negative_batch():
    """No target and no predicted mass: zero_division; all-negative batch: constant, zero gradient."""
    x = torch.full((4,), -1e4, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(4)
    assert LF.smooth_f1_loss(x, t, task="binary").item() == 1.0
    assert LF.smooth_f1_loss(x, t, task="binary", zero_division=1.0).item() == 0.0
    soft = torch.randn(4, dtype=torch.float64, requires_grad=True)
    loss = LF.smooth_f1_loss(soft, t, task="binary")
    assert loss.item() == 1.0
    (grad,) = torch.autograd.grad(loss, soft)
    assert (grad == 0).all()


def test_f1_ignore_index_and_dead_rows():
    x, y = _case((8, 4), "index", -100)
    keep = y != -100
    torch.testing.assert_close(LF.smooth_f1_loss(x, y), LF.smooth_f1_loss(x[keep], y[keep]))
    with torch.no_grad():
        dead = x.clone()
        dead[keep.nonzero()[0, 0]] = -math.inf
    loss = LF.smooth_f1_loss(dead.requires_grad_(), y)
    assert torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, dead)
    assert_finite(grad)


# ---------------------------------------------------------------------------------------------
# F1-weighted BCE
# ---------------------------------------------------------------------------------------------


def test_f1_weighted_bce_matches_oracle_and_torch():
    x, t = _binary_case((6, 3), soft=False)
    t = t.double()
    for f1 in (0.3, 0.9):
        for reduction in ("mean", "sum", "none"):
            ours = LF.f1_weighted_bce(x, t, f1=f1, reduction=reduction)
            expected = ref.f1_weighted_bce(x.detach().numpy(), t.numpy(), f1, reduction=reduction)
            np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
        # BCEWithLogitsLoss: weight = F1/2, pos_weight = (2 - F1)/F1 (losses.md §3.5)
        torch_loss = F.binary_cross_entropy_with_logits(
            x, t, weight=torch.tensor(f1 / 2), pos_weight=torch.tensor((2 - f1) / f1, dtype=torch.float64)
        )
        torch.testing.assert_close(LF.f1_weighted_bce(x, t, f1=f1), torch_loss)


def test_f1_weighted_bce_gradients_follow_the_smooth_f1():
    """Logit gradient -(1 - F1/2)(1 - p) / (F1/2) p, and with sums: dL_w/dp_i times
    (y p + (1 - y)(1 - p)) = (D/2) d(-F1)/dp_i (losses.md §3.5)."""
    x, t = _binary_case((10,), seed=3)
    t = t.double()
    p = torch.sigmoid(x.detach())
    f1 = (2 * (t * p).sum() / (t.sum() + p.sum())).item()
    loss = LF.f1_weighted_bce(x, t, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    expected = torch.where(t == 1, -(1 - f1 / 2) * (1 - p), f1 / 2 * p)
    torch.testing.assert_close(grad, expected)
    probs = p.clone().requires_grad_()
    weighted = -((1 - f1 / 2) * t * probs.log() + f1 / 2 * (1 - t) * torch.log1p(-probs)).sum()
    (d_weighted,) = torch.autograd.grad(weighted, probs)
    smooth_f1 = 2 * (t * probs).sum() / (t + probs).sum()
    (d_f1,) = torch.autograd.grad(-smooth_f1, probs)
    denominator = (t + p).sum()
    torch.testing.assert_close(d_weighted * (t * p + (1 - t) * (1 - p)), denominator / 2 * d_f1)


def test_f1_weighted_bce_batch_f1_and_multilabel():
    x, t = _binary_case((8, 3), soft=True)
    f1 = 1 - LF.smooth_f1_loss(x.detach(), t, task="binary")
    torch.testing.assert_close(LF.f1_weighted_bce(x, t), LF.f1_weighted_bce(x, t, f1=f1.item()))
    per_label = 1 - LF.smooth_f1_loss(x.detach(), t, task="multilabel", average="none")
    ours = LF.f1_weighted_bce(x, t, task="multilabel", reduction="none")
    expected = ref.f1_weighted_bce(
        x.detach().numpy(), t.numpy(), per_label.numpy()[None, :], reduction="none"
    )
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10)
    x3, t3 = _binary_case((4, 3, 2), soft=True)
    f1_3 = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    ours = LF.f1_weighted_bce(x3, t3, task="multilabel", f1=f1_3, reduction="none")
    expected = ref.f1_weighted_bce(
        x3.detach().numpy(), t3.numpy(), f1_3.numpy()[None, :, None], reduction="none"
    )
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=1e-10)


def test_all_negative_batch_needs_a_floor():
    x = torch.randn(16, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(16, dtype=torch.float64)
    (grad,) = torch.autograd.grad(LF.f1_weighted_bce(x, t), x)
    assert (grad == 0).all()  # batch F1 = 0: negatives weigh 0
    (grad,) = torch.autograd.grad(LF.f1_weighted_bce(x, t, min_weight=0.05), x)
    torch.testing.assert_close(grad, 0.05 * torch.sigmoid(x.detach()) / 16)


def test_running_f1_module():
    module = LN.F1WeightedBCELoss(momentum=0.5)
    x1, t1 = _binary_case((8,), seed=1)
    x2, t2 = _binary_case((8,), seed=2)
    f1_1 = 1 - LF.smooth_f1_loss(x1.detach().float(), t1, task="binary")
    f1_2 = 1 - LF.smooth_f1_loss(x2.detach().float(), t2, task="binary")
    torch.testing.assert_close(
        module(x1, t1), LF.f1_weighted_bce(x1, t1, f1=f1_1.item()), rtol=1e-6, atol=1e-7
    )
    running = 0.5 * f1_1 + 0.5 * f1_2
    torch.testing.assert_close(
        module(x2, t2), LF.f1_weighted_bce(x2, t2, f1=running.item()), rtol=1e-6, atol=1e-7
    )
    module.eval()
    torch.testing.assert_close(
        module(x1, t1), LF.f1_weighted_bce(x1, t1, f1=running.item()), rtol=1e-6, atol=1e-7
    )
    assert "running_f1" in module.state_dict()
    fixed = LN.F1WeightedBCELoss(f1=0.4, min_weight=0.1, reduction="sum")
    torch.testing.assert_close(
        fixed(x1, t1), LF.f1_weighted_bce(x1, t1, f1=0.4, min_weight=0.1, reduction="sum")
    )


# ---------------------------------------------------------------------------------------------
# Gradients, kernels, dtypes, compile
# ---------------------------------------------------------------------------------------------


def test_gradcheck():
    x, y = _case((2, 3, 2), "index", -100)
    _, probs = _case((2, 3, 2), "probs", -100)
    w = torch.rand(3, dtype=torch.float64) + 0.1
    tau = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(lambda v, s: LF.smooth_accuracy_loss(v, y, weight=w, temperature=s), x, tau)
    assert_gradcheck(lambda v: LF.smooth_accuracy_loss(v, probs, reduction="none"), x)
    assert_gradcheck(lambda v: LF.smooth_accuracy_loss(v, y, log=True), x)
    assert_gradcheck(lambda v: LF.smooth_accuracy_loss(v, probs, log=True), x)
    assert_gradcheck(lambda v, s: LF.smooth_f1_loss(v, y, average="none", temperature=s), x, tau)
    assert_gradcheck(lambda v: LF.smooth_f1_loss(v, probs), x)
    xb, tb = _binary_case((3, 2), soft=True)
    assert_gradcheck(
        lambda v, s: LF.smooth_accuracy_loss(v, tb, task="binary", temperature=s), xb, tau, gradgrad=True
    )
    assert_gradcheck(lambda v: LF.smooth_accuracy_loss(v, tb, task="multilabel", log=True), xb)
    assert_gradcheck(lambda v: LF.smooth_f1_loss(v, tb, task="multilabel"), xb)
    assert_gradcheck(lambda v: LF.f1_weighted_bce(v, tb, f1=0.6, min_weight=0.35), xb)


@pytest.mark.parametrize("shape", [(37, 11), (5, 11, 13)])
def test_blocked_kernels(monkeypatch, shape):
    for kind in ("index", "probs"):
        x, target = _case(shape, kind, -100)
        expected_acc = LF.smooth_accuracy_loss(x, target, reduction="none")
        expected_f1 = LF.smooth_f1_loss(x, target, average="none")
        (g_acc,) = torch.autograd.grad(expected_acc.sum(), x)
        (g_f1,) = torch.autograd.grad(expected_f1.sum(), x)
        monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
        acc = LF.smooth_accuracy_loss(x, target, reduction="none")
        f1 = LF.smooth_f1_loss(x, target, average="none")
        torch.testing.assert_close(acc, expected_acc)
        torch.testing.assert_close(f1, expected_f1)
        torch.testing.assert_close(torch.autograd.grad(acc.sum(), x)[0], g_acc)
        torch.testing.assert_close(torch.autograd.grad(f1.sum(), x)[0], g_f1)
        monkeypatch.setattr(_blocks, "BLOCK_BYTES", 1 << 20)


def test_repeated_backward_recomputes():
    x, y = _case((6, 5), "index", -100)
    loss = LF.smooth_f1_loss(x, y)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


def test_extreme_inputs_dead_rows_and_empty():
    x = torch.tensor(
        [[1e4, -1e4, 0.0], [0.0, 1e4, 1e4], [-math.inf, -math.inf, -math.inf], [0.0, -math.inf, 1.0]]
    )
    x.requires_grad_()
    y = torch.tensor([1, 0, 2, 0])
    probs = F.one_hot(y, 3).float()
    for fn in (
        lambda v: LF.smooth_accuracy_loss(v, y, reduction="none"),
        lambda v: LF.smooth_accuracy_loss(v, probs, reduction="none"),
        lambda v: LF.smooth_f1_loss(v, y, average="none"),
        lambda v: LF.smooth_f1_loss(v, probs, average="none"),
    ):
        loss = fn(x)
        assert torch.isfinite(loss).all()
        (grad,) = torch.autograd.grad(loss.sum(), x)
        assert_finite(grad)
        assert (grad[2] == 0).all()
    acc = LF.smooth_accuracy_loss(x, y, reduction="none")
    torch.testing.assert_close(acc, torch.tensor([1.0, 1.0, 0.0, 1 - 1 / (1 + math.e)]))
    empty = torch.zeros(0, 3)
    assert LF.smooth_accuracy_loss(empty, torch.zeros(0, dtype=torch.long)).item() == 0.0
    assert LF.smooth_accuracy_loss(empty, torch.zeros(0, dtype=torch.long), log=True).item() == 0.0
    assert LF.smooth_accuracy_loss(torch.zeros(0), torch.zeros(0), task="binary", log=True).item() == 0.0
    assert LF.smooth_f1_loss(empty, torch.zeros(0, dtype=torch.long)).item() == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, *LOW_PRECISION])
def test_dtypes(dtype):
    x, y = _case((16, 9, 2), "index", -100, dtype=dtype)
    _, probs = _case((16, 9, 2), "probs", -100, dtype=dtype)
    x64 = x.detach().double()
    rtol = 1e-5 if dtype == torch.float32 else 3e-2
    for fn in (
        lambda v: LF.smooth_accuracy_loss(v, y),
        lambda v: LF.smooth_accuracy_loss(v, probs.to(v.dtype)),
        lambda v: LF.smooth_accuracy_loss(v, y, log=True),
        lambda v: LF.smooth_f1_loss(v, y),
        lambda v: LF.smooth_f1_loss(v, probs.to(v.dtype), average="micro"),
        lambda v: LF.smooth_accuracy_loss(v, (probs > 0.1).to(v.dtype), task="multilabel"),
        lambda v: LF.smooth_f1_loss(v, (probs > 0.1).to(v.dtype), task="multilabel"),
        lambda v: LF.f1_weighted_bce(v, (probs > 0.1).to(v.dtype), task="multilabel"),
    ):
        out = fn(x)
        assert out.dtype == dtype
        assert out.item() == pytest.approx(fn(x64).item(), rel=rtol, abs=1e-6)
        (grad,) = torch.autograd.grad(out, x)
        assert grad.dtype == dtype
        assert_finite(grad)


def test_torch_compile_fullgraph():
    x = torch.randn(6, 5, 3, requires_grad=True)
    y = torch.randint(0, 5, (6, 3))
    probs = torch.softmax(torch.randn(6, 5, 3), 1)
    t = torch.randint(0, 2, (6, 5, 3)).float()
    # one call per code path: fused CE, class-term kernel, class-sums kernel, element-wise
    assert_compiles(lambda v: LF.smooth_accuracy_loss(v, y, log=True) + LF.smooth_accuracy_loss(v, y), x)
    assert_compiles(lambda v: LF.smooth_accuracy_loss(v, probs, temperature=0.5), x)
    assert_compiles(lambda v: LF.smooth_f1_loss(v, y) + LF.smooth_f1_loss(v, probs, average="micro"), x)
    assert_compiles(
        lambda v: (
            LF.smooth_accuracy_loss(v, t, task="multilabel", log=True)
            + LF.smooth_f1_loss(v, t, task="multilabel")
            + LF.f1_weighted_bce(v, t, task="multilabel")
        ),
        x,
    )


def test_modules():
    x, y = _case((6, 5), "index", -100)
    w = torch.rand(5, dtype=torch.float64)
    module = LN.SmoothAccuracyLoss(weight=w, temperature=0.5, log=True)
    torch.testing.assert_close(
        module(x, y), LF.smooth_accuracy_loss(x, y, weight=w, temperature=0.5, log=True)
    )
    assert list(module.state_dict()) == ["weight"]
    f1 = LN.SmoothF1Loss(average="micro", temperature=2.0)
    torch.testing.assert_close(f1(x, y), LF.smooth_f1_loss(x, y, average="micro", temperature=2.0))
    assert "average='micro'" in repr(f1) and not list(f1.parameters())


def test_bad_inputs():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    acc, f1, bce = LF.smooth_accuracy_loss, LF.smooth_f1_loss, LF.f1_weighted_bce
    assert_raises(
        ValueError,
        "task: expected one of 'multiclass', 'binary', 'multilabel', got 'multi'",
        acc,
        x,
        y,
        task="multi",
    )
    assert_raises(
        ValueError, "temperature: expected a positive finite number, got 0", acc, x, y, temperature=0
    )
    assert_raises(
        ValueError,
        "reduction: the log variant -log(mean accuracy) is a batch quantity",
        acc,
        x,
        y,
        log=True,
        reduction="none",
    )
    assert_raises(TypeError, "log: expected a bool, got 1", acc, x, y, log=1)
    assert_raises(
        ValueError,
        "weight: class weights apply to task='multiclass' only",
        acc,
        x,
        x,
        task="binary",
        weight=torch.ones(3),
    )
    assert_raises(
        ValueError, "target: expected the shape of input (4, 3), got (4,)", acc, x, y.float(), task="binary"
    )
    assert_raises(
        ValueError,
        "target: expected values in [0, 1], got values in [0, 2]",
        acc,
        x,
        torch.full((4, 3), 2) * (x > 0),
        task="binary",
    )
    assert_raises(
        ValueError, "input: task='multiclass' expects logits of shape (N, C)", acc, torch.randn(4), y
    )
    assert_raises(
        ValueError,
        "input: task='multilabel' expects logits of shape (N, L)",
        f1,
        torch.randn(4),
        y.float(),
        task="multilabel",
    )
    assert_raises(
        ValueError,
        "average: expected one of 'macro', 'micro', 'none', got 'weighted'",
        f1,
        x,
        y,
        average="weighted",
    )
    assert_raises(ValueError, "zero_division: expected a number in [0, 1], got 2", f1, x, y, zero_division=2)
    assert_raises(
        ValueError,
        "task: expected one of 'binary', 'multilabel', got 'multiclass'",
        bce,
        x,
        x,
        task="multiclass",
    )
    assert_raises(ValueError, "f1: expected a number in [0, 1], got 1.5", bce, x, (x > 0).float(), f1=1.5)
    assert_raises(
        ValueError,
        "f1: expected values in [0, 1], got values in [-1, -1]",
        bce,
        x,
        (x > 0).float(),
        f1=torch.tensor(-1.0),
    )
    assert_raises(
        ValueError,
        "min_weight: expected a number in [0, inf], got -1",
        bce,
        x,
        (x > 0).float(),
        min_weight=-1,
    )
    assert_raises(
        ValueError,
        "momentum: a running F1 and a fixed f1 exclude each other",
        LN.F1WeightedBCELoss,
        f1=0.5,
        momentum=0.1,
    )
    assert_raises(
        ValueError, "momentum: expected a number in (0, 1], got 0", LN.F1WeightedBCELoss, momentum=0
    )
