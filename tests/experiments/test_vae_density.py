"""``logitkit run vae_density --quick``: records, claim checks and the report (needs Fashion-MNIST)."""

from __future__ import annotations

import math

import pytest
import torch

from logitkit import experiments
from logitkit.experiments import vae_density
from logitkit.experiments.report import render
from logitkit.experiments.runner import read_results, run
from logitkit.models.vae import VAE, importance_log_likelihood
from tests.data.test_loaders import need


def test_prior_proposal_matches_exact_density_of_linear_gaussian():
    # The naive Monte-Carlo proposal used by the oracle: with many samples the estimate reaches
    # the closed-form marginal of a factor-analysis VAE.
    torch.manual_seed(0)
    model = VAE(4, 2, hidden_features=(), likelihood="gaussian").double()
    x = torch.randn(6, 4, dtype=torch.float64)
    dec = model.decoder[0]
    with torch.no_grad():
        cov = dec.weight @ dec.weight.T + torch.diag(torch.exp(2 * model.log_scale))
        exact = torch.distributions.MultivariateNormal(dec.bias, covariance_matrix=cov).log_prob(x)
        est = importance_log_likelihood(x, vae_density._PriorProposal(model), 50_000, chunk_size=10_000)
    torch.testing.assert_close(est, exact, atol=0.05, rtol=0)


def test_quick_run_records_and_report(tmp_path):
    need("fashion-mnist")
    exp = experiments.get("vae_density")
    out = run(exp, seeds=1, quick=True, threads=1, out=tmp_path / "run", progress=False)
    records = read_results(out / "results.jsonl")
    assert {r["method"] for r in records} == {"vae", "iwae5"}
    for r in records:
        m = r["metrics"]
        ll = [m[f"ll_M{k}"] for k in (1, 10, 100, 1000)]
        # Binarised 784-pixel images: a few hundred nats, below 784 log 2 (a fair coin per pixel).
        assert all(-784 * math.log(2) < v < -100 for v in ll)
        assert ll == sorted(ll)  # non-decreasing in M (same images, same sampling seed)
        assert "ll_M5000" not in m  # quick stops at M = 1000
        assert 0.5 < m["probe_accuracy"] < 0.9
        assert m["ppca_gap_M1"] > m["ppca_gap_M1000"] and m["ppca_abs_gap_M1000"] < 0.5
        assert len(r["history"]["val"]) == exp.quick["epochs"]
    by = {r["method"]: r["metrics"] for r in records}
    assert by["iwae5"]["ll_M1000"] > by["vae"]["ll_M1000"]
    markdown, _ = render(out)
    assert "log-lik. M=1000 (nats)" in markdown and "probe accuracy" in markdown
    assert "IWAE M=5 log-likelihood (M=1000) > VAE" in markdown
    assert (out / "ll_vs_m.png").is_file() and "ll_vs_m.png" in markdown


def test_registered():
    assert "vae_density" in experiments.names()
    with pytest.raises(KeyError):
        vae_density.EXPERIMENT.method("nope")
