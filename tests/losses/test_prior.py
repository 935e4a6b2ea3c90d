"""Class priors, logit-adjusted cross-entropy, class weights, ClassPrior (incl. 2-process gloo)."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import logitkit
import logitkit.functional as LF
import logitkit.nn as LN
from tests.helpers import FLOAT_DTYPES, TOLERANCE, assert_compiles, assert_gradcheck, assert_raises
from tests.losses.test_cross_entropy import _case
from tests.reference import imbalance as ref

PRIOR5 = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03], dtype=torch.float64)


def _shift(x: torch.Tensor, prior: torch.Tensor, tau: float) -> torch.Tensor:
    return x + tau * torch.log(prior).view(1, -1, *([1] * (x.dim() - 2)))


# ---------------------------------------------------------------------------------------------
# class_prior
# ---------------------------------------------------------------------------------------------


def test_class_prior_from_labels_and_counts():
    labels = torch.tensor([[0, 2, 2], [1, -100, 2]])
    torch.testing.assert_close(class_prior := LF.class_prior(labels, 4), torch.tensor([0.2, 0.2, 0.6, 0.0]))
    assert class_prior.dtype == torch.get_default_dtype()
    counts = torch.tensor([1.0, 1.0, 3.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(LF.class_prior(counts, 4), class_prior.double())
    torch.testing.assert_close(
        LF.class_prior(counts, 4, smoothing=0.5), torch.tensor([1.5, 1.5, 3.5, 0.5], dtype=torch.float64) / 7
    )
    torch.testing.assert_close(LF.class_prior(torch.zeros(0, dtype=torch.long), 3), torch.full((3,), 1 / 3))
    torch.testing.assert_close(
        LF.class_prior(labels.clamp_min(0), 4, ignore_index=2), torch.tensor([2 / 3, 1 / 3, 0.0, 0.0])
    )


def test_class_prior_bad_inputs():
    assert_raises(
        ValueError,
        "targets_or_counts: expected class indices in [0, 3) or ignore_index=-100, got values in [0, 3]",
        LF.class_prior,
        torch.tensor([0, 3]),
        3,
    )
    assert_raises(
        ValueError,
        "targets_or_counts: expected floating counts of shape (3,) or integer class indices, got a floating "
        "tensor of shape (2,)",
        LF.class_prior,
        torch.ones(2),
        3,
    )
    assert_raises(
        ValueError,
        "targets_or_counts: expected non-negative values, got -1",
        LF.class_prior,
        -torch.ones(3),
        3,
    )
    assert_raises(
        ValueError, "num_classes: expected a positive int, got 0", LF.class_prior, torch.tensor([0]), 0
    )
    assert_raises(
        ValueError,
        "smoothing: expected a non-negative finite number, got -1",
        LF.class_prior,
        torch.tensor([0]),
        2,
        smoothing=-1,
    )
    assert_raises(
        TypeError,
        "targets_or_counts: expected integer class indices or floating counts",
        LF.class_prior,
        torch.ones(2, dtype=torch.bool),
        2,
    )


# ---------------------------------------------------------------------------------------------
# logit_adjusted_cross_entropy
# ---------------------------------------------------------------------------------------------

GRID = list(
    itertools.product(
        [(6, 5), (4, 5, 3)],
        ["index", "probs"],
        [False, True],
        [0.0, 0.15],
        ["mean", "sum", "none"],
        [0.0, 1.7],
    )
)


@pytest.mark.parametrize(("shape", "kind", "weighted", "eps", "reduction", "tau"), GRID)
def test_equals_cross_entropy_of_shifted_logits(shape, kind, weighted, eps, reduction, tau):
    ignore_index = 2 if kind == "index" else -100  # torch takes ignore_index for index targets only
    x, target = _case(shape, kind, ignore_index)
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.1 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=eps, ignore_index=ignore_index)
    ours = LF.logit_adjusted_cross_entropy(x, target, prior=PRIOR5, tau=tau, **kwargs)
    theirs = F.cross_entropy(_shift(x, PRIOR5, tau), target, **kwargs)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(theirs.sum(), x)[0], rtol=1e-12, atol=1e-12
    )


@given(st.integers(1, 6), st.integers(2, 7), st.floats(0.0, 3.0), st.integers(0, 2**16))
def test_pairwise_form_of_eq6(n, c, tau, seed):
    """post 7615 eq. (6): log[1 + sum_{i != y} (p(i)/p(y))^tau e^{f_i - f_y}], float64."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, c, (n,), generator=g)
    prior = torch.softmax(torch.randn(c, generator=g, dtype=torch.float64) * 2, 0)
    ours = LF.logit_adjusted_cross_entropy(f, y, prior=prior, tau=tau, reduction="none")
    expected = [ref.logit_adjusted_pairwise(f[i].tolist(), int(y[i]), prior.tolist(), tau) for i in range(n)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-13)


def test_uniform_prior_or_tau_zero_is_cross_entropy_and_gradient_formula():
    x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    uniform = torch.full((5,), 0.2, dtype=torch.float64)
    ce = F.cross_entropy(x, y)
    for loss in (
        LF.logit_adjusted_cross_entropy(x, y, prior=uniform, tau=1.3),
        LF.logit_adjusted_cross_entropy(x, y, prior=PRIOR5, tau=0.0),
    ):
        torch.testing.assert_close(loss, ce, rtol=1e-13, atol=1e-14)
    loss = LF.logit_adjusted_cross_entropy(x, y, prior=PRIOR5, tau=1.0)
    (grad,) = torch.autograd.grad(loss, x)
    expected = (torch.softmax(x.detach() + torch.log(PRIOR5), 1) - F.one_hot(y, 5)) / 8
    torch.testing.assert_close(grad, expected)


def test_population_minimiser_is_log_posterior_minus_scaled_log_prior():
    """spec 4.5: the expected loss under p(y|x) is minimised at f = log p(y|x) - tau log p(y) + c."""
    posterior = torch.softmax(torch.randn(4, 5, dtype=torch.float64), 1)
    for tau in (0.5, 1.0, 2.0):
        f = (torch.log(posterior) - tau * torch.log(PRIOR5) + 3.0).requires_grad_()
        loss = LF.logit_adjusted_cross_entropy(f, posterior, prior=PRIOR5, tau=tau)
        (grad,) = torch.autograd.grad(loss, f)
        assert grad.abs().max() < 1e-15


def test_bias_initialisation_equals_loss_variant_at_step_zero():
    torch.manual_seed(3)
    features = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (10,))
    head = torch.nn.Linear(4, 5).double()
    LF.init_bias_with_prior(head.bias, PRIOR5, tau=1.5)
    with_bias = F.cross_entropy(head(features), y)
    zero_head = torch.nn.functional.linear(features, head.weight)
    torch.testing.assert_close(
        with_bias, LF.logit_adjusted_cross_entropy(zero_head, y, prior=PRIOR5, tau=1.5)
    )
    sigmoid_head = torch.nn.Linear(4, 2)
    LF.init_bias_with_prior(sigmoid_head.bias, torch.tensor([0.01, 0.5]), link="sigmoid")
    torch.testing.assert_close(torch.sigmoid(sigmoid_head.bias.detach()), torch.tensor([0.01, 0.5]))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_matrix(dtype):
    x, y = _case((12, 5, 2), "index", -100)
    x = x.detach().to(dtype).requires_grad_()
    loss = LF.logit_adjusted_cross_entropy(x, y, prior=PRIOR5.float(), label_smoothing=0.1)
    assert loss.dtype == dtype
    expected = F.cross_entropy(_shift(x.detach().double(), PRIOR5, 1.0), y, label_smoothing=0.1)
    tol = TOLERANCE[dtype]
    assert loss.double().item() == pytest.approx(expected.item(), rel=10 * tol["rtol"], abs=tol["atol"])
    assert torch.autograd.grad(loss, x)[0].dtype == dtype


def test_gradcheck_compile_and_module():
    x, y = _case((3, 5, 2), "index", -100)
    assert_gradcheck(
        lambda v: LF.logit_adjusted_cross_entropy(v, y, prior=PRIOR5, label_smoothing=0.1), x, gradgrad=True
    )
    x32 = torch.randn(6, 5, requires_grad=True)
    y32 = torch.randint(0, 5, (6,))
    assert_compiles(lambda v: LF.logit_adjusted_cross_entropy(v, y32, prior=PRIOR5.float(), tau=0.7), x32)
    module = LN.LogitAdjustedCrossEntropyLoss(prior=PRIOR5.float(), tau=0.7, label_smoothing=0.1)
    torch.testing.assert_close(
        module(x32, y32),
        LF.logit_adjusted_cross_entropy(x32, y32, prior=PRIOR5.float(), tau=0.7, label_smoothing=0.1),
    )
    assert list(module.state_dict()) == ["prior"] and "tau=0.7" in repr(module)
    assert module.double().prior.dtype == torch.float64


def test_logit_adjusted_bad_inputs():
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 1])
    la = LF.logit_adjusted_cross_entropy
    assert_raises(
        ValueError,
        "prior: expected positive finite probabilities, got 0 at class 2 (give unseen classes a pseudo-count",
        la,
        x,
        y,
        prior=torch.tensor([0.5, 0.3, 0.0, 0.1, 0.1]),
    )
    assert_raises(
        ValueError,
        "prior: expected probabilities summing to 1, got sum 1.1 (normalise with prior / prior.sum()",
        la,
        x,
        y,
        prior=torch.tensor([0.5, 0.3, 0.1, 0.1, 0.1]),
    )
    assert_raises(
        ValueError,
        "prior: expected a 1-D tensor of 5 class probabilities, got shape (4,)",
        la,
        x,
        y,
        prior=torch.full((4,), 0.25),
    )
    assert_raises(
        ValueError,
        "prior: expected a 1-D tensor of 5 class probabilities, got shape (1, 5)",
        la,
        x,
        y,
        prior=torch.full((1, 5), 0.2),
    )
    assert_raises(
        ValueError, "tau: expected a non-negative finite number, got -1.0", la, x, y, prior=PRIOR5, tau=-1.0
    )
    assert_raises(ValueError, "prior: treated as a constant", la, x, y, prior=PRIOR5.clone().requires_grad_())
    assert_raises(TypeError, "prior: expected a torch.Tensor, got list", la, x, y, prior=[0.2] * 5)


# ---------------------------------------------------------------------------------------------
# Class weights
# ---------------------------------------------------------------------------------------------


def test_class_balanced_weights_oracle_and_limits():
    counts = torch.tensor([5000, 800, 120, 7, 0, 1])
    for beta in (0.9, 0.99, 0.999, 0.9999):
        ours = LF.class_balanced_weights(counts, beta=beta)
        np.testing.assert_allclose(
            ours.double().numpy(), ref.class_balanced(counts.tolist(), beta), rtol=1e-6
        )
        assert ours[4] == 0 and ours.sum().item() == pytest.approx(6.0)
    torch.testing.assert_close(
        LF.class_balanced_weights(counts, beta=0.0), torch.tensor([1.2, 1.2, 1.2, 1.2, 0.0, 1.2])
    )
    torch.testing.assert_close(
        LF.class_balanced_weights(counts.double(), beta=1 - 1e-12),
        LF.inverse_frequency_weights(counts.double()),
        rtol=1e-6,
        atol=0,
    )
    inv = LF.inverse_frequency_weights(torch.tensor([1000.0, 100.0, 10.0]), power=0.5)
    raw = torch.tensor([1000.0, 100.0, 10.0]) ** -0.5
    torch.testing.assert_close(inv, raw * 3 / raw.sum())
    assert_raises(
        ValueError, "beta: expected a value in [0, 1), got 1.0", LF.class_balanced_weights, counts, beta=1.0
    )
    assert_raises(
        ValueError,
        "counts: expected a 1-D tensor of per-class counts, got shape (2, 3)",
        LF.class_balanced_weights,
        counts.view(2, 3),
    )
    assert_raises(
        ValueError,
        "counts: expected non-negative values, got -1",
        LF.inverse_frequency_weights,
        torch.tensor([-1.0, 2.0]),
    )
    assert_raises(
        ValueError,
        "power: expected a non-negative finite number, got -1",
        LF.inverse_frequency_weights,
        counts,
        power=-1,
    )


def test_weights_plug_into_losses():
    counts = torch.tensor([900, 90, 10])
    w = LF.class_balanced_weights(counts, beta=0.99)
    x, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    torch.testing.assert_close(LF.focal_loss(x, y, weight=w, gamma=0.0), F.cross_entropy(x, y, weight=w))


def test_f1_class_weights_oracle_and_spec_identities():
    torch.manual_seed(0)
    x = torch.randn(40, dtype=torch.float64) * 2
    t = (torch.rand(40) < 0.3).double()
    p = torch.sigmoid(x)
    f1 = 2 * (t * p).sum() / (t + p).sum()
    w = LF.f1_class_weights(x, t)
    torch.testing.assert_close(w.f1, f1)
    torch.testing.assert_close(w.positive, 1 - f1 / 2)
    torch.testing.assert_close(w.negative, f1 / 2)
    # spec 3.5: elementwise weights == BCEWithLogits with weight F1/2 and pos_weight (2 - F1)/F1
    a = F.binary_cross_entropy_with_logits(x, t, weight=w.elementwise(t))
    b = F.binary_cross_entropy_with_logits(x, t, weight=f1 / 2, pos_weight=(2 - f1) / f1)
    torch.testing.assert_close(a, b)
    # spec 3.5: logit gradient -(1 - F1/2)(1 - p) for positives, (F1/2) p for negatives
    xr = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(
        F.binary_cross_entropy_with_logits(xr, t, weight=w.elementwise(t), reduction="sum"), xr
    )
    torch.testing.assert_close(grad, torch.where(t == 1, -(1 - f1 / 2) * (1 - p), f1 / 2 * p))
    # spec 3.5 sum form: dL_w/dp_i (y p + (1-y)(1-p)) = D/2 d(-F1)/dp_i
    pr = p.clone().requires_grad_()
    (dl,) = torch.autograd.grad(
        -(t * w.positive * torch.log(pr) + (1 - t) * w.negative * torch.log1p(-pr)).sum(), pr
    )
    (df1,) = torch.autograd.grad(-(2 * (t * pr).sum() / (t + pr).sum()), pr)
    torch.testing.assert_close(dl * (t * p + (1 - t) * (1 - p)), (t + p).sum() / 2 * df1)


def test_f1_class_weights_options():
    x = torch.randn(6, 3, 2)
    t = (torch.rand(6, 3, 2) < 0.5).float()
    w = LF.f1_class_weights(x, t, per_class=True)
    assert w.f1.shape == (1, 3, 1)
    p = torch.sigmoid(x)
    per = 2 * (t * p).sum((0, 2)) / (t + p).sum((0, 2))
    torch.testing.assert_close(w.f1.flatten(), per)
    fixed = LF.f1_class_weights(x, t, f1=0.6)
    assert fixed.positive.item() == pytest.approx(0.7) and fixed.negative.item() == pytest.approx(0.3)
    # an all-negative batch: F1 = 0, negatives get weight 0 (the post's pitfall), unless floored
    none = LF.f1_class_weights(torch.randn(5), torch.zeros(5))
    assert none.f1.item() == 0 and none.negative.item() == 0 and none.positive.item() == 1
    assert LF.f1_class_weights(torch.randn(5), torch.zeros(5), floor=0.05).negative.item() == pytest.approx(
        0.05
    )
    assert_raises(
        ValueError, "floor: expected a value in [0, 0.5], got 0.7", LF.f1_class_weights, x, t, floor=0.7
    )
    assert_raises(ValueError, "f1: expected values in [0, 1], got 1.5", LF.f1_class_weights, x, t, f1=1.5)
    assert_raises(
        ValueError,
        "per_class: needs a class dim 1, got input of shape (5,)",
        LF.f1_class_weights,
        torch.randn(5),
        torch.zeros(5),
        per_class=True,
    )


# ---------------------------------------------------------------------------------------------
# ClassPrior
# ---------------------------------------------------------------------------------------------


def test_class_prior_module_counts_in_training_only():
    tracker = LN.ClassPrior(4, smoothing=1.0)
    torch.testing.assert_close(tracker.prior, torch.full((4,), 0.25, dtype=torch.float64))
    tracker(torch.tensor([0, 0, 1, -100]))
    tracker(torch.tensor([[3, 3], [3, 0]]))
    torch.testing.assert_close(tracker.counts, torch.tensor([3.0, 1.0, 0.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(tracker.prior, torch.tensor([4.0, 2.0, 1.0, 4.0], dtype=torch.float64) / 11)
    tracker.eval()
    tracker(torch.tensor([2, 2]))
    assert tracker.counts[2] == 0
    tracker.update(torch.tensor([2]))
    assert tracker.counts[2] == 1
    state = tracker.state_dict()
    clone = LN.ClassPrior(4, smoothing=1.0)
    clone.load_state_dict(state)
    torch.testing.assert_close(clone.prior, tracker.prior)
    torch.testing.assert_close(tracker.log_prior, torch.log(tracker.prior))
    tracker.reset()
    assert tracker.counts.sum() == 0
    assert "num_classes=4" in repr(tracker)
    # the running prior plugs into the logit-adjusted loss
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 3])
    tracker.train()
    loss = LF.logit_adjusted_cross_entropy(x, y, prior=tracker(y))
    assert torch.isfinite(loss)


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        tracker = LN.ClassPrior(4)
        batches = {
            0: [torch.tensor([0, 0, 1]), torch.tensor([2])],
            1: [torch.tensor([3, 3, 3, 2]), torch.tensor([0])],
        }
        for labels in batches[rank]:
            tracker(labels)
        local = LN.ClassPrior(4, sync=False)
        for labels in batches[rank]:
            local(labels)
        torch.save({"global": tracker.counts, "local": local.counts}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_class_prior_all_reduces_across_two_gloo_processes(tmp_path):
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    expected = torch.tensor([3.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    for r in results:
        torch.testing.assert_close(r["global"], expected)
    torch.testing.assert_close(results[0]["local"], torch.tensor([2.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(results[1]["local"], torch.tensor([1.0, 0.0, 1.0, 3.0], dtype=torch.float64))


def test_validation_can_be_switched_off():
    logitkit.set_validate_args(False)
    try:
        # not normalised: only the value checks are skipped; the shift by a constant changes nothing
        x, y = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
        torch.testing.assert_close(
            LF.logit_adjusted_cross_entropy(x, y, prior=PRIOR5 * 7),
            LF.logit_adjusted_cross_entropy(x, y, prior=PRIOR5),
        )
    finally:
        logitkit.set_validate_args(True)
    assert math.isclose(PRIOR5.sum().item(), 1.0)


def test_torch_compile_fullgraph_of_the_helpers():
    labels = torch.randint(0, 5, (40,))
    assert_compiles(lambda y: LF.class_prior(y, 5, smoothing=0.5), labels)
    counts = torch.tensor([500.0, 50.0, 5.0, 0.0])
    assert_compiles(lambda n: LF.class_balanced_weights(n, beta=0.99), counts)
    assert_compiles(lambda n: LF.inverse_frequency_weights(n, power=0.5), counts)
    x, t = torch.randn(8, 3), (torch.rand(8, 3) < 0.4).float()
    assert_compiles(lambda v: LF.f1_class_weights(v, t, per_class=True), x)
    probs = torch.softmax(torch.randn(6, 5), 1)
    assert_compiles(lambda p: LF.topk_uncertainty(p, 3, uncertainty="any_k"), probs)
    bias = torch.zeros(5)
    assert_compiles(lambda b: LF.init_bias_with_prior(b, PRIOR5.float(), tau=0.5), bias)
    t2 = (torch.rand(8, 3) < 0.4).float()
    assert_compiles(
        lambda v: LF.truncated_binary_cross_entropy(v, t2, margin=0.7), x.clone().requires_grad_()
    )
