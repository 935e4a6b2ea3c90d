"""The shared loss semantics of _reduce.py, pinned against torch over the full grid.

Losses with per-class terms other than -log p (focal, TaiLr, ...) reduce through
``expected_class_loss`` + ``mean_denominator`` + ``reduce_loss``; with terms = -log_softmax this
path must be torch's cross-entropy exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from logitkit import _reduce
from tests.helpers import assert_finite, assert_raises
from tests.losses.test_cross_entropy import GRID, _case


def _shared_path_cross_entropy(x, target, *, weight, ignore_index, reduction, label_smoothing):
    tgt = _reduce.class_target(x, target, ignore_index=ignore_index)
    terms = -torch.log_softmax(x, 1)
    per_sample = _reduce.expected_class_loss(terms, tgt, weight=weight, label_smoothing=label_smoothing)
    denominator = _reduce.mean_denominator(tgt, weight, x.dtype) if reduction == "mean" else None
    return _reduce.reduce_loss(per_sample, reduction, denominator)


@pytest.mark.parametrize(("shape", "kind", "ignore_index", "weighted", "eps", "reduction"), GRID)
def test_shared_path_is_torch_cross_entropy(shape, kind, ignore_index, weighted, eps, reduction):
    x, target = _case(shape, kind, ignore_index)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)
    ours = _shared_path_cross_entropy(x, target, **kwargs)
    theirs = F.cross_entropy(x, target, **kwargs)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-12, atol=1e-12)


def test_zero_coefficient_on_infinite_term_is_zero_with_finite_gradient():
    x = torch.tensor([[1.0, -math.inf, 0.0]], requires_grad=True)
    probs = torch.tensor([[0.5, 0.0, 0.5]], requires_grad=True)
    tgt = _reduce.class_target(x, probs)
    loss = _reduce.expected_class_loss(-torch.log_softmax(x, 1), tgt).sum()
    assert torch.isfinite(loss)
    loss.backward()
    assert_finite(x.grad, probs.grad)


def test_ignored_entry_with_infinite_term_is_zero():
    x = torch.tensor([[1.0, -math.inf]], requires_grad=True)
    tgt = _reduce.class_target(x, torch.tensor([-100]))
    loss = _reduce.expected_class_loss(-torch.log_softmax(x, 1), tgt, label_smoothing=0.1)
    assert loss.item() == 0.0


def test_smoothed_probs_dense_form():
    x = torch.zeros(2, 4)
    tgt = _reduce.class_target(x, torch.tensor([1, -100]))
    probs = _reduce.smoothed_probs(tgt, 0.2, torch.float32)
    torch.testing.assert_close(probs[0], torch.tensor([0.05, 0.85, 0.05, 0.05]))
    assert (probs[1] == 0).all()


def test_reduce_loss_rules():
    loss = torch.tensor([1.0, 2.0, 3.0])
    assert _reduce.reduce_loss(loss, "sum").item() == 6.0
    assert _reduce.reduce_loss(loss, "mean").item() == 2.0
    assert _reduce.reduce_loss(loss, "mean", torch.tensor(4.0)).item() == 1.5
    assert _reduce.reduce_loss(loss, "mean", torch.tensor(0.0)).item() == 6.0
    assert _reduce.reduce_loss(torch.empty(0), "mean").item() == 0.0
    assert _reduce.reduce_loss(loss, "none") is loss


def test_class_target_errors():
    x = torch.randn(2, 3)
    assert_raises(
        ValueError,
        "input: expected logits of shape (N, C)",
        _reduce.class_target,
        torch.randn(3),
        torch.tensor(1),
    )
    assert_raises(TypeError, "target: expected a torch.Tensor, got list", _reduce.class_target, x, [0, 1])
    assert_raises(
        TypeError,
        "got dtype torch.complex64",
        _reduce.class_target,
        x,
        torch.zeros(2, dtype=torch.complex64),
    )
