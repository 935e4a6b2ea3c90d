"""Entropy and entropy normalization (spec: operators.md §5, reproduction_targets.md §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
import logitkit.nn as LN
from tests.helpers import FLOAT_DTYPES, assert_compiles, assert_finite, assert_gradcheck, assert_raises
from tests.reference import entropy as ref

INF = math.inf


def _spec_distribution() -> np.ndarray:
    p = np.random.default_rng(0).random(100)
    return p / p.sum()


# ---------------------------------------------------------------------------------------------
# Spec oracles (operators.md §5.3)
# ---------------------------------------------------------------------------------------------


def test_spec_reference_run():
    p = _spec_distribution()
    assert LF.entropy(torch.from_numpy(p), input_type="probs").item() == pytest.approx(4.41906, abs=1e-5)
    # The post's Newton iteration (the oracle) reproduces the recomputed trace...
    trace = ref.post_newton(p, math.log(30), 5)
    np.testing.assert_allclose(trace, [3.71118, 3.45243, 3.40305, 3.4012000, 3.40119738], atol=1e-5)
    # ... and the solved exponent is the product of its steps, 9.32988.
    q, gamma = LF.entropy_normalize(torch.from_numpy(p), math.log(30), input_type="probs", return_gamma=True)
    assert gamma.item() == pytest.approx(9.32988, abs=1e-5)
    assert LF.entropy(q, input_type="probs").item() == pytest.approx(math.log(30), abs=1e-12)
    torch.testing.assert_close(q, torch.from_numpy(ref.power(p, gamma.item())), atol=1e-14, rtol=1e-9)


def test_spec_reference_run_post_seed():
    # The post's own `np.random.seed(0); np.random.random(100)`: gamma steps 4.608, 1.278, 1.0147, 1.0001.
    rng = np.random.RandomState(0)
    p = rng.random_sample(100)
    p /= p.sum()
    trace = ref.post_newton(p, math.log(30), 4)
    np.testing.assert_allclose(trace, [3.62170, 3.41436, 3.40126, 3.4011974], atol=1e-5)
    _, gamma = LF.entropy_normalize(torch.from_numpy(p), math.log(30), input_type="probs", return_gamma=True)
    assert gamma.item() == pytest.approx(4.608 * 1.278 * 1.0147 * 1.0001, rel=2e-3)


def test_entropy_values():
    assert LF.entropy(torch.zeros(8, dtype=torch.float64)).item() == pytest.approx(math.log(8))
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(
        LF.entropy(p, input_type="probs"), torch.tensor([math.log(2), 0.0], dtype=torch.float64)
    )
    x = torch.tensor([[1.0, -INF, 2.0], [-INF, -INF, -INF]], dtype=torch.float64, requires_grad=True)
    h = LF.entropy(x)
    assert h[1].item() == 0.0
    h.sum().backward()
    assert_finite(x.grad)
    assert (x.grad[1] == 0).all() and x.grad[0, 1] == 0
    # Against the oracle, any dim, temperature, mask.
    z = torch.randn(3, 5, 4, dtype=torch.float64)
    mask = torch.rand(3, 5, 4) > 0.3
    mask[:, 0] = True
    h = LF.entropy(z, dim=1, temperature=0.7, mask=mask)
    for i in range(3):
        for j in range(4):
            probs = torch.softmax((z[i, :, j] / 0.7).masked_fill(~mask[i, :, j], -INF), 0)
            assert h[i, j].item() == pytest.approx(ref.entropy(probs.numpy()), abs=1e-12)
    assert LF.entropy(z, dim=1, keepdim=True).shape == (3, 1, 4)


# ---------------------------------------------------------------------------------------------
# Normalization: oracles and properties
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0, 20.0])
def test_matches_bisection_oracle(scale):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 50, generator=g, dtype=torch.float64) * scale
    targets = torch.tensor([0.05, 0.8, 2.0, 3.5], dtype=torch.float64)
    q, gamma = LF.entropy_normalize(z, targets, return_gamma=True)
    for row in range(4):
        p = torch.softmax(z[row], 0).numpy()
        expected = ref.solve_gamma(p, targets[row].item())
        assert gamma[row].item() == pytest.approx(expected, rel=1e-9)
        np.testing.assert_allclose(q[row].numpy(), ref.power(p, expected), atol=1e-13, rtol=1e-8)
        assert LF.entropy(q[row], input_type="probs").item() == pytest.approx(targets[row].item(), abs=1e-11)


@given(st.lists(st.integers(-80, 80), min_size=2, max_size=12, unique=True), st.floats(0.02, 0.98))
def test_properties(row, fraction):
    z = torch.tensor(row, dtype=torch.float64) / 4  # distinct scores (ties lower the range)
    n = len(row)
    target = fraction * math.log(n)
    q, gamma = LF.entropy_normalize(z, target, return_gamma=True)
    assert LF.entropy(q, input_type="probs").item() == pytest.approx(target, abs=1e-9)
    assert gamma.item() > 0
    assert (q[torch.argsort(z)].diff() >= 0).all()  # order kept
    torch.testing.assert_close(q, torch.softmax(gamma * z, 0))
    torch.testing.assert_close(LF.entropy_normalize(z + 3.0, target), q)  # shift invariance
    # Idempotent, and the identity at the input's own entropy (gamma = 1).
    torch.testing.assert_close(LF.entropy_normalize(q, target, input_type="probs"), q, atol=1e-12, rtol=0)
    own = LF.entropy(z).item()
    _, g2 = LF.entropy_normalize(z, own, return_gamma=True)
    assert g2.item() == pytest.approx(1.0, abs=1e-9)


def test_range_ends_zeros_ties_and_masks():
    # Target log n: uniform (gamma = 0).
    z = torch.randn(2, 6, dtype=torch.float64)
    q, gamma = LF.entropy_normalize(z, math.log(6), return_gamma=True)
    torch.testing.assert_close(q, torch.full_like(q, 1 / 6))
    assert (gamma == 0).all()
    # Zeros stay zero: the range is (log #maxima, log #support].
    p = torch.tensor([0.5, 0.2, 0.2, 0.1, 0.0, 0.0], dtype=torch.float64)
    q = LF.entropy_normalize(p, math.log(4) - 0.1, input_type="probs")
    assert (q[4:] == 0).all() and LF.entropy(q, input_type="probs").item() == pytest.approx(math.log(4) - 0.1)
    ties = torch.tensor([2.0, 2.0, 0.0, -1.0], dtype=torch.float64)
    q = LF.entropy_normalize(ties, math.log(2) + 1e-3)
    assert q[0] == q[1] and LF.entropy(q, input_type="probs").item() == pytest.approx(
        math.log(2) + 1e-3, abs=1e-10
    )
    # Masks and dead rows.
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False, True, True], [False] * 5, [True] * 5])
    q = LF.entropy_normalize(x, 0.7, mask=mask)
    assert (q[~mask] == 0).all() and (q[1] == 0).all()
    q.sum().backward()
    assert_finite(x.grad)
    assert (x.grad[1] == 0).all()
    torch.testing.assert_close(q[0][mask[0]], LF.entropy_normalize(x.detach()[0][mask[0]], 0.7))


def test_unreachable_targets_raise():
    z = torch.tensor([[1.0, 0.0, -1.0], [2.0, 2.0, 0.0]])
    assert_raises(
        ValueError,
        "target_entropy: expected a value in (0, 1.09861] (log #maxima, log #support along dim 1), got 1.5",
        LF.entropy_normalize,
        z,
        1.5,
    )
    assert_raises(
        ValueError, "target_entropy: expected a value in (0.693147, 1.09861]", LF.entropy_normalize, z, 0.5
    )
    uniform = torch.tensor([0.25, 0.25, 0.5, 0.0])
    assert_raises(
        ValueError,
        "target_entropy: expected a value in (0, 1.09861]",
        LF.entropy_normalize,
        uniform,
        1.2,
        input_type="probs",
    )
    flat = torch.tensor([0.5, 0.5, 0.0])
    assert_raises(
        ValueError,
        "expected a value exactly 0.693147 (this row is uniform on its support)",
        LF.entropy_normalize,
        flat,
        0.3,
        input_type="probs",
    )
    assert_raises(
        ValueError,
        "target_entropy: expected a finite non-negative number, got -1.0",
        LF.entropy_normalize,
        z,
        -1.0,
    )
    assert_raises(ValueError, "steps: expected a positive int, got 0", LF.entropy_normalize, z, 0.5, steps=0)
    assert_raises(
        ValueError,
        "input_type: expected one of 'logits', 'probs', got 'log'",
        LF.entropy,
        z,
        input_type="log",
    )
    assert_raises(
        ValueError,
        "input: expected values in [0, 1], got values in [-1, 1]",
        LF.entropy,
        torch.tensor([1.0, -1.0]),
        input_type="probs",
    )
    assert_raises(
        ValueError,
        "target_entropy: expected a number or a tensor broadcastable to the input's shape without dim (2,)",
        LF.entropy_normalize,
        z,
        torch.ones(3),
    )


# ---------------------------------------------------------------------------------------------
# Gradients, dtypes, compile, Module
# ---------------------------------------------------------------------------------------------


def test_gradcheck():
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.4, 0.9], dtype=torch.float64, requires_grad=True)
    # Double backward too: two Newton steps from the detached root carry exact second derivatives.
    assert_gradcheck(lambda v, t: LF.entropy_normalize(v, t, steps=12), x, target, gradgrad=True)
    assert_gradcheck(lambda v: LF.entropy_normalize(v, 0.8, steps=12, return_gamma=True)[1], x, gradgrad=True)
    assert_gradcheck(lambda v: LF.entropy(v, temperature=0.7), x, gradgrad=True)
    p = torch.softmax(torch.randn(3, 5, dtype=torch.float64), 1).requires_grad_()
    assert_gradcheck(lambda v: LF.entropy(v, input_type="probs"), p, gradgrad=True)
    assert_gradcheck(lambda v: LF.entropy_normalize(v, 1.0, input_type="probs"), p, gradgrad=True)
    keep = torch.tensor([True, True, False, True])
    assert_gradcheck(lambda v: LF.entropy_normalize(v, 0.7, mask=keep), x, gradgrad=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_matrix(dtype):
    x = (torch.randn(4, 20, dtype=torch.float64) * 2).to(dtype)
    q = LF.entropy_normalize(x, 1.5)
    assert q.dtype == dtype
    expected = LF.entropy_normalize(x.double(), 1.5)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]
    torch.testing.assert_close(q.double(), expected, atol=tol, rtol=0)
    h = LF.entropy(x)
    assert h.dtype == dtype
    torch.testing.assert_close(h.double(), LF.entropy(x.double()), atol=tol * 10, rtol=tol)


def test_torch_compile_fullgraph():
    x = torch.randn(4, 9, requires_grad=True)
    target = torch.tensor([0.5, 1.0, 1.5, 2.0])
    assert_compiles(lambda v: LF.entropy_normalize(v, target, steps=12), x, rtol=1e-4, atol=1e-5)
    assert_compiles(lambda v: LF.entropy(v, temperature=0.5), x)


def test_module():
    x = torch.randn(2, 7)
    module = LN.EntropyNormalize(1.2, input_type="logits")
    torch.testing.assert_close(module(x), LF.entropy_normalize(x, 1.2))
    assert "target_entropy=1.2" in repr(module)
