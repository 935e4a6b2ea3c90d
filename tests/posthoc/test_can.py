"""CAN: closed form and batched iterations against the author's per-row loop, spec oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
from tests.helpers import assert_compiles, assert_raises
from tests.reference import imbalance as ref


def _problem(n=60, c=6, seed=0, sharp=2.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64)
    logits[torch.arange(n), labels] += torch.rand(n, generator=g, dtype=torch.float64) * 4 * sharp
    probs = torch.softmax(logits, 1)
    prior = torch.softmax(torch.randn(c, generator=g, dtype=torch.float64), 0)
    return probs, prior


@pytest.mark.parametrize("iterations", [1, 2, 5])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("uncertainty", ["topk", "any_k"])
def test_matches_the_per_row_loop(iterations, alpha, uncertainty):
    probs, prior = _problem()
    out, changed = LF.can(
        probs,
        prior,
        top_k=3,
        threshold=0.6,
        alpha=alpha,
        iterations=iterations,
        uncertainty=uncertainty,
        return_changed=True,
    )
    expected, flags = ref.can_loop(
        probs.numpy(),
        prior.numpy(),
        top_k=3,
        threshold=0.6,
        alpha=alpha,
        iterations=iterations,
        any_k=uncertainty == "any_k",
    )
    assert changed.tolist() == flags.tolist() and 0 < changed.sum() < len(changed)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-13)


def test_reference_set_and_streaming_rows():
    probs, prior = _problem(seed=1)
    reference, _ = _problem(n=40, seed=2, sharp=4.0)
    for iterations in (1, 3):
        out = LF.can(probs, prior, threshold=0.6, iterations=iterations, reference=reference)
        expected, _ = ref.can_loop(
            probs.numpy(), prior.numpy(), threshold=0.6, iterations=iterations, reference=reference.numpy()
        )
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-13)
    # with a fixed reference, correcting rows one at a time equals correcting them together
    together = LF.can(probs, prior, threshold=0.6, reference=reference)
    alone = torch.cat(
        [LF.can(probs[i : i + 1], prior, threshold=0.6, reference=reference) for i in range(len(probs))]
    )
    torch.testing.assert_close(alone, together)


@given(st.integers(0, 2**16), st.floats(0.3, 1.0), st.floats(0.3, 3.0), st.integers(1, 4))
def test_confident_rows_untouched_and_rows_on_simplex(seed, threshold, alpha, iterations):
    probs, prior = _problem(n=30, c=5, seed=seed)
    out, changed = LF.can(
        probs, prior, threshold=threshold, alpha=alpha, iterations=iterations, return_changed=True
    )
    assert torch.equal(out[~changed], probs[~changed])
    torch.testing.assert_close(out.sum(1), torch.ones(30, dtype=torch.float64))
    assert (out >= 0).all()
    scores = LF.topk_uncertainty(probs, 3)
    assert changed.tolist() == (scores >= threshold).tolist()


def test_all_confident_is_identity_and_prior_matching_rows_are_unchanged():
    probs, prior = _problem()
    out = LF.can(probs, prior, threshold=1.0)
    changed = LF.topk_uncertainty(probs, 3) >= 1.0
    assert not changed.any() and torch.equal(out, probs)
    # spec 1.6: if the (n + 1)-row mean already equals the prior, the row is unchanged
    c = 4
    prior = torch.full((c,), 0.25, dtype=torch.float64)
    confident = torch.eye(c, dtype=torch.float64) * 0.96 + 0.01
    row = torch.full((1, c), 0.25, dtype=torch.float64)
    out = LF.can(torch.cat([confident, row]), prior, threshold=0.9)
    torch.testing.assert_close(out[-1], row[0])


def test_uniform_prior_balanced_data_changes_little():
    """Balanced confident predictions and a uniform prior: uncertain rows move little."""
    g = torch.Generator().manual_seed(5)
    c, n = 5, 500
    labels = torch.arange(n) % c
    logits = torch.randn(n, c, generator=g, dtype=torch.float64)
    logits[torch.arange(n), labels] += 4.0
    probs = torch.softmax(logits, 1)
    prior = torch.full((c,), 1.0 / c, dtype=torch.float64)
    out, changed = LF.can(probs, prior, threshold=0.5, return_changed=True)
    assert changed.any()
    assert (out - probs).abs().max() < 0.05
    assert (out.argmax(1) == probs.argmax(1)).double().mean() > 0.99


def test_can_recovers_the_missing_class():
    """The post's intuition: confident answers cover A and B, an A-or-C doubt goes to C."""
    confident = torch.tensor([[0.95, 0.03, 0.02]] * 10 + [[0.03, 0.95, 0.02]] * 10, dtype=torch.float64)
    doubt = torch.tensor([[0.5, 0.02, 0.48]], dtype=torch.float64)
    prior = torch.tensor([1 / 3, 1 / 3, 1 / 3], dtype=torch.float64)
    out = LF.can(torch.cat([confident, doubt]), prior, threshold=0.5)
    assert out[-1].argmax() == 2 and doubt[0].argmax() == 0


def test_no_confident_row_gives_the_prior_on_the_support():
    probs = torch.tensor([[0.4, 0.3, 0.3, 0.0], [0.34, 0.33, 0.33, 0.0]], dtype=torch.float64)
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    out = LF.can(probs, prior, threshold=0.5)
    expected = torch.tensor([0.1, 0.2, 0.3, 0.0], dtype=torch.float64) / 0.6
    torch.testing.assert_close(out, expected.expand(2, 4))


def test_topk_uncertainty_oracle_and_ordering():
    p = torch.tensor(
        [[0.5, 0.5, 0.0], [0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64
    )
    for k in (2, 3):
        expected = [ref.topk_entropy(row.tolist(), k) for row in p]
        np.testing.assert_allclose(LF.topk_uncertainty(p, k).numpy(), expected, rtol=1e-14, atol=1e-15)
    two = LF.topk_uncertainty(p, 2)
    assert two[0] > two[1]  # plain entropy orders these the other way
    any_k = LF.topk_uncertainty(p, 3, uncertainty="any_k")
    torch.testing.assert_close(any_k, torch.maximum(two, LF.topk_uncertainty(p, 3)))
    assert LF.topk_uncertainty(p, 3)[3].item() == pytest.approx(1.0)


def test_float32_input_and_compile():
    probs, prior = _problem()
    out = LF.can(probs.float(), prior.float(), threshold=0.6)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, LF.can(probs, prior, threshold=0.6).float())
    assert_compiles(lambda p: LF.can(p, prior.float(), threshold=0.6), probs.float())


def test_bad_inputs():
    probs, prior = _problem(n=4, c=3)
    can = LF.can
    assert_raises(
        ValueError,
        "probs: expected rows on the probability simplex (summing to 1), got a row summing to 2 at row 0",
        can,
        torch.tensor([[1.0, 0.5, 0.5]]),
        prior,
    )
    assert_raises(
        ValueError,
        "probs: expected values in [0, 1], got values in [-0.5, 1.5]",
        can,
        torch.tensor([[1.5, -0.5, 0.0]]),
        prior,
    )
    assert_raises(
        ValueError,
        "probs: expected probabilities of shape (N, C) with C >= 2, got (3,)",
        can,
        probs[0],
        prior,
    )
    assert_raises(ValueError, "prior: expected probabilities summing to 1, got sum 2", can, probs, prior * 2)
    assert_raises(
        ValueError,
        "prior: expected positive finite probabilities, got 0 at class 1",
        can,
        probs,
        torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64),
    )
    assert_raises(
        ValueError,
        "prior: expected a 1-D tensor of 3 class probabilities, got shape (4,)",
        can,
        probs,
        torch.full((4,), 0.25),
    )
    assert_raises(ValueError, "top_k: expected an int in [2, 3], got 4", can, probs, prior, top_k=4)
    assert_raises(
        ValueError, "threshold: expected a value in [0, 1], got 1.5", can, probs, prior, threshold=1.5
    )
    assert_raises(ValueError, "alpha: expected a positive finite number, got 0", can, probs, prior, alpha=0)
    assert_raises(ValueError, "iterations: expected an int in >= 1, got 0", can, probs, prior, iterations=0)
    assert_raises(
        ValueError,
        "uncertainty: expected one of 'topk', 'any_k', got 'entropy'",
        can,
        probs,
        prior,
        uncertainty="entropy",
    )
    assert_raises(
        ValueError,
        "reference: expected probabilities of shape (M, 3), got (2, 4)",
        can,
        probs,
        prior,
        reference=torch.full((2, 4), 0.25),
    )
    assert math.isfinite(LF.can(probs, prior).sum().item())


@pytest.mark.parametrize("iterations", [1, 3])
def test_a_class_without_mass_stays_zero(iterations):
    probs, prior = _problem(n=40, c=5, seed=3)
    probs[:, 4] = 0.0
    probs = probs / probs.sum(1, keepdim=True)
    out = LF.can(probs, prior, threshold=0.6, iterations=iterations, alpha=0.7)
    expected, _ = ref.can_loop(probs.numpy(), prior.numpy(), threshold=0.6, iterations=iterations, alpha=0.7)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-13)
    assert (out[:, 4] == 0).all()


def test_invariant_to_scaling_the_prior():
    """spec 1.6: rows are renormalised, so a prior given up to a constant gives the same result."""
    import logitkit

    probs, prior = _problem(seed=4)
    expected = LF.can(probs, prior, threshold=0.6, iterations=2)
    logitkit.set_validate_args(False)
    try:
        torch.testing.assert_close(LF.can(probs, prior * 7.5, threshold=0.6, iterations=2), expected)
    finally:
        logitkit.set_validate_args(True)
