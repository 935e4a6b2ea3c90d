"""Perturb-and-argmax distributions (spec: operators.md §6, reproduction_targets.md §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
from logitkit.ops import perturb
from tests.helpers import FLOAT_DTYPES, assert_compiles, assert_finite, assert_gradcheck, assert_raises
from tests.reference import perturb as ref

INF = math.inf
MU = [1.0, 0.3, -0.5, 2.0]


# ---------------------------------------------------------------------------------------------
# Spec oracles (operators.md §6.4)
# ---------------------------------------------------------------------------------------------


def test_spec_normal_values():
    mu = torch.tensor(MU, dtype=torch.float64)
    exact = torch.tensor([0.210869, 0.072416, 0.016057, 0.700659], dtype=torch.float64)
    torch.testing.assert_close(LF.perturb_argmax_probs(mu), exact, atol=1e-6, rtol=0)
    torch.testing.assert_close(LF.perturb_argmax_probs(mu, renormalize=False), exact, atol=1e-6, rtol=0)


def test_spec_post_rule_bias_and_midpoint():
    mu = torch.tensor(MU, dtype=torch.float64)
    for k, total in [(64, 0.98946), (256, 0.99681), (2000, 0.99954)]:
        p = LF.perturb_argmax_probs(mu, nodes="post", num_nodes=k, renormalize=False)
        assert p.sum().item() == pytest.approx(total, abs=1e-5)
    p = LF.perturb_argmax_probs(mu, nodes="post", num_nodes=2000, renormalize=False)
    torch.testing.assert_close(
        p, torch.tensor([0.2107, 0.0722, 0.0158, 0.7008], dtype=torch.float64), atol=6e-5, rtol=0
    )
    renormalised = LF.perturb_argmax_probs(mu, nodes="post", num_nodes=2000)
    exact = torch.from_numpy(ref.probs(MU))
    assert (renormalised - exact).abs().max() > 1e-4  # renormalising does not remove the bias
    mid = LF.perturb_argmax_probs(mu, nodes="midpoint", num_nodes=2000, renormalize=False)
    assert mid.sum().item() == pytest.approx(0.99999, abs=1e-5)
    torch.testing.assert_close(mid, exact, atol=1e-5, rtol=0)
    gumbel = LF.perturb_argmax_probs(mu, noise="gumbel", nodes="post", num_nodes=2000, renormalize=False)
    torch.testing.assert_close(
        gumbel, torch.tensor([0.2253, 0.1119, 0.0503, 0.6125], dtype=torch.float64), atol=3e-4, rtol=0
    )


def test_gumbel_is_softmax():
    mu = torch.randn(5, 7, dtype=torch.float64) * 3
    torch.testing.assert_close(LF.perturb_argmax_probs(mu, noise="gumbel"), torch.softmax(mu, -1))
    torch.testing.assert_close(
        LF.perturb_argmax_probs(mu, noise="gumbel", log=True), torch.log_softmax(mu, -1)
    )
    # The quadrature machinery itself integrates the Gumbel case to softmax.
    keep = torch.ones_like(mu, dtype=torch.bool)
    torch.testing.assert_close(
        perturb._grid_log_probs(mu, keep, "gumbel", None).exp(), torch.softmax(mu, -1), atol=1e-12, rtol=0
    )


def test_two_classes_normal_closed_form():
    delta = torch.linspace(-6, 6, 13, dtype=torch.float64)
    mu = torch.stack([delta, torch.zeros_like(delta)], -1)
    p = LF.perturb_argmax_probs(mu, renormalize=False)
    expected = torch.tensor([ref.two_class_normal(d.item()) for d in delta], dtype=torch.float64)
    torch.testing.assert_close(p[:, 0], expected, atol=1e-13, rtol=0)
    # Noise scale s is the same as dividing the logits by s.
    torch.testing.assert_close(
        LF.perturb_argmax_probs(mu, temperature=2.5), LF.perturb_argmax_probs(mu / 2.5)
    )


# ---------------------------------------------------------------------------------------------
# Against adaptive quadrature and Monte Carlo
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", ["normal", "logistic"])
@pytest.mark.parametrize("scale", [0.3, 2.0, 8.0])
def test_grid_matches_adaptive_quadrature(noise, scale):
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(3, 6, generator=g, dtype=torch.float64) * scale
    p = LF.perturb_argmax_probs(mu, noise=noise, renormalize=False)
    for row in range(3):
        np.testing.assert_allclose(p[row].numpy(), ref.probs(mu[row].numpy(), noise), atol=1e-11, rtol=0)


def test_many_classes():
    # EXACT needs a few hundred classes: equal logits give exactly 1/C, random ones match the
    # adaptive quadrature class by class, and both totals are 1 before renormalisation.
    for c in (300, 1000):
        p = LF.perturb_argmax_probs(torch.zeros(c, dtype=torch.float64), renormalize=False)
        torch.testing.assert_close(p, torch.full_like(p, 1 / c), atol=1e-14, rtol=1e-11)
    g = torch.Generator().manual_seed(5)
    mu = torch.randn(300, generator=g, dtype=torch.float64) * 1.5
    p = LF.perturb_argmax_probs(mu, renormalize=False)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    order = torch.argsort(mu, descending=True)
    for i in order[[0, 1, 10, 100]].tolist():
        assert p[i].item() == pytest.approx(ref.class_prob(mu.numpy(), i), rel=1e-8, abs=1e-15)


@pytest.mark.parametrize("noise", ["normal", "logistic", "gumbel"])
def test_monte_carlo_agreement(noise):
    mu = torch.tensor(MU, dtype=torch.float64)
    p = LF.perturb_argmax_probs(mu, noise=noise)
    mc = ref.monte_carlo(MU, noise, 200_000, seed=1)
    np.testing.assert_allclose(p.numpy(), mc, atol=5e-3)
    # And our sampler draws from the same law.
    g = torch.Generator().manual_seed(2)
    draws = LF.perturb_argmax_sample(mu, noise=noise, sample_shape=(100_000,), generator=g)
    freq = torch.bincount(draws, minlength=4).double() / draws.numel()
    torch.testing.assert_close(freq, p, atol=6e-3, rtol=0)


# ---------------------------------------------------------------------------------------------
# Properties, masks, log-probabilities
# ---------------------------------------------------------------------------------------------

_rows = st.lists(st.floats(-8, 8, allow_nan=False, width=64), min_size=1, max_size=8)


@given(_rows, st.sampled_from(["normal", "logistic"]), st.floats(-50, 50), st.randoms(use_true_random=False))
def test_distribution_properties(row, noise, shift, rnd):
    mu = torch.tensor(row, dtype=torch.float64)
    p = LF.perturb_argmax_probs(mu, noise=noise)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12) and (p >= 0).all()
    torch.testing.assert_close(LF.perturb_argmax_probs(mu + shift, noise=noise), p, atol=1e-12, rtol=1e-9)
    perm = list(range(len(row)))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    torch.testing.assert_close(
        LF.perturb_argmax_probs(mu[perm], noise=noise), p[perm], atol=1e-14, rtol=1e-10
    )
    order = torch.argsort(mu)
    assert (p[order].diff() >= -1e-14).all()  # monotone


def test_log_probabilities_masks_and_dead_rows():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, [2, 5]] = False
    mask[1] = False
    for noise in ("normal", "logistic", "gumbel"):
        for nodes in ("grid", "midpoint"):
            p = LF.perturb_argmax_probs(
                x, noise=noise, nodes=nodes, mask=mask, num_nodes=None if nodes == "grid" else 64
            )
            logp = LF.perturb_argmax_probs(
                x, noise=noise, nodes=nodes, mask=mask, log=True, num_nodes=None if nodes == "grid" else 64
            )
            assert (p[~mask] == 0).all() and torch.isneginf(logp[~mask]).all()
            torch.testing.assert_close(logp[mask].exp(), p[mask])
            torch.testing.assert_close(p.sum(-1), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))
            (grad,) = torch.autograd.grad((p * torch.arange(6.0, dtype=torch.float64)).sum(), x)
            assert_finite(grad)
            assert (grad[~mask] == 0).all()
            # Masked classes behave as if removed; -inf is the same as a mask.
            kept = LF.perturb_argmax_probs(
                x.detach()[0][mask[0]], noise=noise, nodes=nodes, num_nodes=None if nodes == "grid" else 64
            )
            torch.testing.assert_close(p[0][mask[0]], kept)
    torch.testing.assert_close(
        LF.perturb_argmax_probs(x.masked_fill(~mask, -INF)), LF.perturb_argmax_probs(x, mask=mask)
    )
    # Log-probabilities of very unlikely classes stay finite.
    far = torch.tensor([0.0, -30.0], dtype=torch.float64)
    logp = LF.perturb_argmax_probs(far, log=True)
    assert torch.isfinite(logp).all() and logp[1] < -200


def test_any_dim_and_empty():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    p = LF.perturb_argmax_probs(x, dim=1)
    torch.testing.assert_close(p[1, :, 2], LF.perturb_argmax_probs(x[1, :, 2]))
    assert LF.perturb_argmax_probs(torch.empty(0, 4)).shape == (0, 4)
    assert LF.perturb_argmax_sample(torch.empty(0, 4)).shape == (0,)


# ---------------------------------------------------------------------------------------------
# Gradients, dtypes, compile, sampling, bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("noise", "nodes"), [("normal", "grid"), ("logistic", "grid"), ("normal", "midpoint"), ("gumbel", "grid")]
)
def test_gradcheck(noise, nodes):
    x = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    # The grid follows max(mu) (detached): exact only when the rule is accurate, so default nodes.
    kwargs = {"noise": noise, "nodes": nodes, "num_nodes": 32 if nodes == "midpoint" else None}
    assert_gradcheck(lambda v, t: LF.perturb_argmax_probs(v, temperature=t, **kwargs), x, tau, gradgrad=True)
    assert_gradcheck(lambda v: LF.perturb_argmax_probs(v, log=True, **kwargs), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_matrix(dtype):
    x = (torch.randn(4, 10, dtype=torch.float64) * 2).to(dtype)
    p = LF.perturb_argmax_probs(x)
    assert p.dtype == dtype
    tol = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 1e-2, torch.float16: 2e-3}[dtype]
    torch.testing.assert_close(p.double(), LF.perturb_argmax_probs(x.double()), atol=tol, rtol=0)


def test_torch_compile_fullgraph():
    x = torch.randn(3, 6, requires_grad=True)
    mask = torch.rand(3, 6) > 0.2
    t = torch.tensor(0.9, requires_grad=True)
    assert_compiles(
        lambda v, tau: LF.perturb_argmax_probs(v, temperature=tau, mask=mask, log=True).clamp_min(-1e4), x, t
    )
    assert_compiles(lambda v: LF.perturb_argmax_probs(v, noise="logistic", nodes="midpoint", num_nodes=16), x)


def test_sampler_masks_shapes_and_reproducibility():
    x = torch.tensor([[0.0, 5.0, -INF], [-INF, -INF, -INF]])
    draws = LF.perturb_argmax_sample(x, sample_shape=(50, 2))
    assert draws.shape == (50, 2, 2) and draws.dtype == torch.long
    assert (draws[..., 0] != 2).all() and (draws[..., 1] == -1).all()
    a = LF.perturb_argmax_sample(x, generator=torch.Generator().manual_seed(3), sample_shape=(20,))
    b = LF.perturb_argmax_sample(x, generator=torch.Generator().manual_seed(3), sample_shape=(20,))
    assert torch.equal(a, b)
    y = torch.randn(4, 3, 5)
    assert LF.perturb_argmax_sample(y, dim=1).shape == (4, 5)


def test_bad_inputs():
    x = torch.randn(2, 3)
    assert_raises(
        ValueError,
        "noise: expected one of 'normal', 'gumbel', 'logistic', got 'cauchy'",
        LF.perturb_argmax_probs,
        x,
        noise="cauchy",
    )
    assert_raises(
        ValueError,
        "nodes: expected one of 'grid', 'midpoint', 'post', got 'gauss'",
        LF.perturb_argmax_probs,
        x,
        nodes="gauss",
    )
    assert_raises(
        ValueError, "num_nodes: expected a positive int, got 0", LF.perturb_argmax_probs, x, num_nodes=0
    )
    assert_raises(
        ValueError,
        "temperature: expected a positive finite number, got 0.0",
        LF.perturb_argmax_probs,
        x,
        temperature=0.0,
    )
    assert_raises(
        TypeError, "logits: expected a floating-point tensor", LF.perturb_argmax_sample, torch.tensor([1, 2])
    )
    assert_raises(
        ValueError,
        "sample_shape: expected a tuple of non-negative ints, got (-1,)",
        LF.perturb_argmax_sample,
        x,
        sample_shape=(-1,),
    )
