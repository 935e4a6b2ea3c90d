"""VAE density estimation by importance sampling (spec: models_and_posthoc.md §3; targets §19)."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

import logitkit.functional as LF
import logitkit.nn as LN
from tests.helpers import FLOAT_DTYPES, assert_gradcheck, assert_raises
from tests.reference import vae as ref


class PPCA(nn.Module):
    """Linear-Gaussian decoder with a known exact marginal likelihood and posterior."""

    def __init__(self, dim=4, latent=2, noise=0.5, proposal="exact", seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(dim, latent, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(dim, generator=g, dtype=torch.float64))
        self.noise, self.proposal = noise, proposal

    def posterior(self, x):
        w = self.weight
        m = w.T @ w + self.noise**2 * torch.eye(w.shape[1], dtype=w.dtype)
        m_inv = torch.linalg.inv(m)
        return (x - self.bias) @ w @ m_inv.T, self.noise**2 * m_inv

    def encode(self, x):
        mean, cov = self.posterior(x)
        if self.proposal == "exact":
            return MultivariateNormal(mean, covariance_matrix=cov.expand(x.shape[0], -1, -1))
        # A deliberately mismatched proposal: shifted and too wide.
        return Independent(Normal(mean + 0.3, 1.5 * cov.diagonal().sqrt().expand_as(mean)), 1)

    def decode(self, z):
        mean = z @ self.weight.T + self.bias
        return Independent(Normal(mean, torch.full_like(mean, self.noise)), 1)

    def prior(self):
        zeros = torch.zeros(self.weight.shape[1], dtype=self.weight.dtype)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def _data(model, n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.weight.shape[0], generator=g, dtype=torch.float64) * 1.5


def _exact(model, x):
    return torch.from_numpy(
        ref.ppca_log_likelihood(
            x.numpy(), model.weight.detach().numpy(), model.bias.detach().numpy(), model.noise
        )
    )


# ---------------------------------------------------------------------------------------------
# PPCA oracle
# ---------------------------------------------------------------------------------------------


def test_exact_posterior_proposal_gives_the_exact_log_density_for_any_m():
    model = PPCA()
    x = _data(model)
    exact = _exact(model, x)
    with torch.no_grad():
        for m in (1, 2, 17):
            torch.testing.assert_close(
                LF.importance_log_likelihood(x, model, m), exact, rtol=1e-10, atol=1e-10
            )


def test_test_model_posterior_matches_the_oracle():
    model = PPCA()
    x = _data(model)
    mean, cov = model.posterior(x)
    e_mean, e_cov = ref.ppca_posterior(
        x.numpy(), model.weight.detach().numpy(), model.bias.detach().numpy(), 0.5
    )
    np.testing.assert_allclose(mean.detach().numpy(), e_mean, rtol=1e-12)
    np.testing.assert_allclose(cov.detach().numpy(), e_cov, rtol=1e-12)


def test_estimate_converges_to_the_exact_log_density():
    model = PPCA(proposal="shifted")
    x = _data(model, n=4)
    exact = _exact(model, x)
    errors = []
    with torch.no_grad():
        for m in (1, 100, 20000):
            estimates = torch.stack(
                [LF.importance_log_likelihood(x, model, m, chunk_size=5000) for _ in range(3)]
            )
            errors.append(float((estimates - exact).abs().mean()))
    assert errors[0] > 1.0 and errors[2] < 0.03 and errors[0] > errors[1] > errors[2]


def test_bound_is_non_decreasing_in_m_and_below_the_exact_value():
    model = PPCA(dim=3, latent=2, proposal="shifted")
    x = _data(model, n=1)
    exact = float(_exact(model, x))
    replicas = x.expand(20000, -1)  # independent estimates in one batch
    with torch.no_grad():
        means = [float(LF.importance_log_likelihood(replicas, model, m).mean()) for m in (1, 2, 4, 16, 64)]
    assert all(a < b for a, b in itertools.pairwise(means)), means
    assert means[-1] < exact + 1e-3 and exact - means[-1] < 0.05


def test_chunking_does_not_change_the_estimate():
    # A proposal that hands out a fixed bank of samples in order: any chunking sees the same z.
    model = PPCA(proposal="shifted")
    x = _data(model, n=3)
    bank = torch.randn(12, 3, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    class Bank:
        def __init__(self, inner):
            self.inner, self.used, self.has_rsample = inner, 0, True

        def rsample(self, shape):
            out = bank[self.used : self.used + shape[0]]
            self.used += shape[0]
            return out

        def log_prob(self, z):
            return self.inner.log_prob(z)

    class Banked:
        def encode(self, x):
            return Bank(model.encode(x))

        decode, prior = model.decode, model.prior

    with torch.no_grad():
        results = [LF.importance_log_likelihood(x, Banked(), 12, chunk_size=c) for c in (None, 1, 5, 12)]
        q = model.encode(x)
        log_w = model.decode(bank).log_prob(x) + model.prior().log_prob(bank) - q.log_prob(bank)
    manual = torch.logsumexp(log_w, 0) - math.log(12)
    for r in results:
        torch.testing.assert_close(r, manual, rtol=1e-12, atol=1e-12)


def test_one_sample_is_the_usual_vae_loss():
    torch.manual_seed(3)
    vae = LN.VAE(6, 2, hidden_features=(8,)).double()
    x = torch.bernoulli(torch.full((4, 6), 0.4, dtype=torch.float64))
    torch.manual_seed(7)
    loss = LF.iwae_loss(x, vae, 1, reduction="none")
    torch.manual_seed(7)
    q = vae.encode(x)
    z = q.rsample()
    logits = vae.decoder(z)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    expected = reconstruction - vae.prior().log_prob(z) + q.log_prob(z)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    torch.manual_seed(7)
    torch.testing.assert_close(vae(x), expected.mean())
    torch.manual_seed(7)
    torch.testing.assert_close(LF.iwae_loss(x, vae, 1, reduction="sum"), expected.sum())


@settings(max_examples=10)
@given(st.integers(1, 40), st.integers(0, 1000))
def test_property_log_mean_exp_bounds(m, seed):
    # The estimate is a log-mean of weights: between the smallest and the largest log-weight.
    model = PPCA(proposal="shifted", seed=seed % 7)
    x = _data(model, n=2, seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        est = LF.importance_log_likelihood(x, model, m)
        torch.manual_seed(seed)
        q = model.encode(x)
        z = q.rsample((m,))
        log_w = model.decode(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    assert (est >= log_w.min(0).values - 1e-9).all() and (est <= log_w.max(0).values + 1e-9).all()


# ---------------------------------------------------------------------------------------------
# The VAE module
# ---------------------------------------------------------------------------------------------


def test_vae_distributions():
    torch.manual_seed(0)
    vae = LN.VAE(5, 3, hidden_features=(7, 6))
    x = torch.rand(4, 5).round()
    q = vae.encode(x)
    assert q.batch_shape == (4,) and q.event_shape == (3,)
    mean, log_var = vae.encoder(x).chunk(2, -1)
    torch.testing.assert_close(q.mean, mean)
    torch.testing.assert_close(q.variance, log_var.exp())
    z = torch.randn(2, 4, 3)
    p = vae.decode(z)
    logits = vae.decoder(z)
    expected = (x * logits - F.softplus(logits)).sum(-1)
    torch.testing.assert_close(p.log_prob(x), expected)
    prior = vae.prior()
    torch.testing.assert_close(prior.log_prob(z), (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1))
    assert [m.out_features for m in vae.encoder if isinstance(m, nn.Linear)] == [7, 6, 6]
    assert "latent_dim=3" in repr(vae)


def test_gaussian_likelihood():
    torch.manual_seed(1)
    vae = LN.VAE(3, 2, hidden_features=(4,), likelihood="gaussian")
    with torch.no_grad():
        vae.log_scale.fill_(math.log(0.5))
    z, x = torch.randn(6, 2), torch.randn(6, 3)
    mean = vae.decoder(z)
    expected = (-0.5 * ((x - mean) / 0.5) ** 2 - math.log(0.5) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(vae.decode(z).log_prob(x), expected)


@pytest.fixture
def one_thread():
    # Tiny training loops are dominated by per-op overhead; a second OpenMP thread only adds
    # synchronisation (40x slower per step when the other core is busy).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_training_with_more_samples_gives_a_tighter_bound():
    # IWAE objective with M = 8 evaluated on the same model is below the M = 1 loss on average.
    torch.manual_seed(2)
    vae = LN.VAE(8, 2, hidden_features=(16,)).double()
    x = torch.bernoulli(torch.full((256, 8), 0.3, dtype=torch.float64))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = vae(x, num_samples=4)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first
    with torch.no_grad():
        one = float(LF.iwae_loss(x.repeat(8, 1), vae, 1))
        eight = float(LF.iwae_loss(x.repeat(8, 1), vae, 8))
    assert eight < one


# ---------------------------------------------------------------------------------------------
# Autograd, compile, dtypes, bad input
# ---------------------------------------------------------------------------------------------


def test_gradcheck():
    torch.manual_seed(4)
    vae = LN.VAE(3, 2, hidden_features=(4,), likelihood="gaussian").double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    weight = vae.decoder[0].weight

    def fn(x, w):
        torch.manual_seed(0)  # the same samples at every evaluation
        params = {"decoder.0.weight": w}
        return torch.func.functional_call(vae, params, (x,), {"num_samples": 3})

    assert_gradcheck(fn, x, weight.detach().clone().requires_grad_())
    assert_gradcheck(
        lambda x: (torch.manual_seed(0), LF.importance_log_likelihood(x, vae, 4, chunk_size=3))[1], x
    )


def test_compiles_with_exact_posterior():
    model = PPCA()
    x = _data(model)
    exact = _exact(model, x)
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda x: LF.importance_log_likelihood(x, model, 8, chunk_size=4), backend="aot_eager"
    )
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), exact, rtol=1e-10, atol=1e-10)


class _FixedNoise:
    """Reparameterised samples mean + std * eps from a fixed float64 bank (the same in every dtype)."""

    has_rsample = True

    def __init__(self, base, bank):
        self.base, self.bank, self.used = base, bank, 0

    def rsample(self, shape):
        eps = self.bank[self.used : self.used + shape[0]].to(self.base.mean.dtype)
        self.used += shape[0]
        return self.base.mean + self.base.stddev * eps

    def log_prob(self, z):
        return self.base.log_prob(z)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtypes(dtype):
    torch.manual_seed(5)
    vae = LN.VAE(6, 2, hidden_features=(8,)).double()
    x = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.float64))
    bank = torch.randn(50, 5, 2, dtype=torch.float64)

    class Fixed:
        def __init__(self, model):
            self.model = model

        def encode(self, x):
            return _FixedNoise(self.model.encode(x), bank)

        def decode(self, z):
            return self.model.decode(z)

        def prior(self):
            return self.model.prior()

    with torch.no_grad():
        expected = LF.importance_log_likelihood(x, Fixed(vae), 50, chunk_size=20)
        low = copy.deepcopy(vae).to(dtype)
        out = LF.importance_log_likelihood(x.to(dtype), Fixed(low), 50, chunk_size=20)
    assert out.dtype == dtype
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 0.05, torch.bfloat16: 0.3}[dtype]
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=tol * float(expected.abs().max()))


def test_bad_input():
    vae = LN.VAE(4, 2, hidden_features=(4,))
    x = torch.rand(3, 4).round()
    f = LF.importance_log_likelihood
    assert_raises(ValueError, "num_samples: expected a positive int, got 0", f, x, vae, 0)
    assert_raises(ValueError, "chunk_size: expected a positive int, got 0", f, x, vae, 4, chunk_size=0)
    assert_raises(TypeError, "x: expected a floating-point tensor", f, x.long(), vae, 4)
    assert_raises(
        TypeError, "model: expected an object with encode(x), decode(z) and prior()", f, x, nn.Linear(4, 2), 4
    )
    assert_raises(
        ValueError,
        "reduction: expected one of 'mean', 'sum', 'none', got 'avg'",
        LF.iwae_loss,
        x,
        vae,
        reduction="avg",
    )

    class NoEvent(PPCA):
        def decode(self, z):
            return Normal(z @ self.weight.T + self.bias, self.noise)  # event dim not declared

    model = NoEvent()
    assert_raises(
        ValueError,
        "model: expected model.decode(z).log_prob(x) of shape (samples, N) = (2, 5), got (2, 5, 4)",
        f,
        _data(model),
        model,
        2,
    )
    assert_raises(
        ValueError,
        "likelihood: expected one of 'bernoulli', 'gaussian', got 'poisson'",
        LN.VAE,
        4,
        2,
        likelihood="poisson",
    )
    assert_raises(ValueError, "latent_dim: expected a positive int, got 0", LN.VAE, 4, 0)
    assert_raises(
        ValueError, "hidden_features: expected a positive int, got -3", LN.VAE, 4, 2, hidden_features=(-3,)
    )
