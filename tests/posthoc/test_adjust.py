"""Post-hoc logit adjustment: identities, the balanced-error claim on synthetic data, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import logitkit.functional as LF
from tests.helpers import FLOAT_DTYPES, assert_compiles, assert_raises

PRIOR = torch.tensor([0.6, 0.25, 0.1, 0.05], dtype=torch.float64)


def test_formula_tau_zero_identity_and_negative_tau():
    logits = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(LF.adjust_logits(logits, PRIOR, 0.0), logits)
    for tau in (0.5, 1.0, 2.0):
        expected = logits - tau * torch.log(PRIOR)
        torch.testing.assert_close(LF.adjust_logits(logits, PRIOR, tau), expected)
    torch.testing.assert_close(LF.adjust_logits(LF.adjust_logits(logits, PRIOR, 1.0), PRIOR, -1.0), logits)


def test_uniform_prior_changes_no_probability_and_class_dims():
    logits = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    torch.testing.assert_close(torch.softmax(LF.adjust_logits(logits, uniform), 1), torch.softmax(logits, 1))
    adjusted = LF.adjust_logits(logits, PRIOR, 1.0)
    torch.testing.assert_close(adjusted, logits - torch.log(PRIOR).view(1, 4, 1, 1))
    last = LF.adjust_logits(logits.movedim(1, -1), PRIOR, 1.0, dim=-1)
    torch.testing.assert_close(last, adjusted.movedim(1, -1))
    torch.testing.assert_close(LF.adjust_logits(logits[0, :, 0, 0], PRIOR), adjusted[0, :, 0, 0])


def test_posthoc_adjustment_lowers_balanced_error_of_bayes_logits():
    """The claim (Menon et al. 2021): on prior-skewed data, f - log p(y) targets the balanced error.

    Gaussian classes with a skewed prior; the Bayes logits log p(x|y) + log p(y) stand in for a
    CE-trained model. Balanced accuracy must rise after adjustment, overall accuracy must fall.
    """
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5], [1.5, 1.5]], dtype=torch.float64)
    n = 20000
    y = torch.multinomial(PRIOR, n, replacement=True, generator=g)
    x = means[y] + torch.randn(n, 2, generator=g, dtype=torch.float64)
    log_lik = -0.5 * ((x.unsqueeze(1) - means.unsqueeze(0)) ** 2).sum(-1)
    logits = log_lik + torch.log(PRIOR)

    def balanced(pred):
        return torch.stack([(pred[y == c] == c).double().mean() for c in range(4)]).mean().item()

    raw, adjusted = logits.argmax(1), LF.adjust_logits(logits, PRIOR).argmax(1)
    assert balanced(adjusted) > balanced(raw) + 0.05
    assert (adjusted == y).double().mean() < (raw == y).double().mean()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtypes(dtype):
    logits = torch.randn(6, 4).to(dtype)
    out = LF.adjust_logits(logits, PRIOR.float())
    assert out.dtype == dtype
    expected = logits.double() - torch.log(PRIOR)
    torch.testing.assert_close(
        out.double(), expected, rtol=1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6, atol=2e-2
    )


def test_compile_and_gradient():
    logits = torch.randn(6, 4, requires_grad=True)
    assert_compiles(lambda v: LF.adjust_logits(v, PRIOR.float(), 0.7), logits)
    (grad,) = torch.autograd.grad(LF.adjust_logits(logits, PRIOR.float()).sum(), logits)
    torch.testing.assert_close(grad, torch.ones_like(logits))


def test_bad_inputs():
    logits = torch.randn(3, 4)
    assert_raises(
        ValueError,
        "prior: expected a 1-D tensor of 4 class probabilities, got shape (3,)",
        LF.adjust_logits,
        logits,
        torch.full((3,), 1 / 3),
    )
    assert_raises(
        ValueError,
        "prior: expected positive finite probabilities, got 0 at class 0",
        LF.adjust_logits,
        logits,
        torch.tensor([0.0, 0.5, 0.25, 0.25]),
    )
    assert_raises(
        ValueError, "tau: expected a finite number, got inf", LF.adjust_logits, logits, PRIOR, math.inf
    )
    assert_raises(
        TypeError,
        "logits: expected a floating-point tensor, got dtype torch.int64",
        LF.adjust_logits,
        torch.ones(3, 4, dtype=torch.long),
        PRIOR,
    )
    assert_raises(IndexError, "dim: expected a dimension in [-2, 1]", LF.adjust_logits, logits, PRIOR, dim=2)
