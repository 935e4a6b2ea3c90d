"""The ASL comparison baseline against its float64 oracle; its BCE special case; gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from logitkit.experiments.asl import asymmetric_loss
from tests.reference.asl import asl_mean


@given(
    st.lists(st.floats(-12, 12), min_size=6, max_size=6),
    st.lists(st.integers(0, 1), min_size=6, max_size=6),
    st.sampled_from([(4.0, 0.0, 0.05), (2.0, 1.0, 0.0), (1.0, 0.5, 0.2)]),
)
def test_matches_oracle(scores, labels, hyper):
    s = torch.tensor(scores, dtype=torch.float64).view(2, 3)
    y = torch.tensor(labels, dtype=torch.float64).view(2, 3)
    gn, gp, clip = hyper
    got = asymmetric_loss(s, y, gamma_neg=gn, gamma_pos=gp, clip=clip).item()
    assert got == pytest.approx(asl_mean(s.tolist(), y.tolist(), gn, gp, clip), rel=1e-9, abs=1e-12)


def test_reduces_to_bce():
    s, y = torch.randn(5, 7, dtype=torch.float64), torch.randint(0, 2, (5, 7)).double()
    got = asymmetric_loss(s, y, gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(s, y))


def test_gradcheck_and_extreme_logits():
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 2, (3, 4)).double()
    assert torch.autograd.gradcheck(lambda x: asymmetric_loss(x, y, reduction="sum"), (s,))
    big = torch.tensor([[1e4, -1e4, 30.0, -30.0]], requires_grad=True)
    loss = asymmetric_loss(big, torch.tensor([[0.0, 1.0, 0.0, 1.0]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()


def test_bad_input():
    with pytest.raises(ValueError, match="target: expected the shape of input"):
        asymmetric_loss(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="clip in \\[0, 1\\)"):
        asymmetric_loss(torch.zeros(2, 3), torch.zeros(2, 3), clip=1.5)
