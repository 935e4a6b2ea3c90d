"""Softmax family and smooth max / min (spec: operators.md §1-2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
import logitkit.nn as LN
from tests.helpers import (
    FLOAT_DTYPES,
    LOW_PRECISION,
    assert_close_to_reference,
    assert_compiles,
    assert_finite,
    assert_gradcheck,
    assert_raises,
)
from tests.reference import softmax as ref

INF = math.inf


# ---------------------------------------------------------------------------------------------
# Spec oracles (operators.md §1.4, §2.4)
# ---------------------------------------------------------------------------------------------


def test_softmax_spec_values():
    x = torch.tensor([10.0, 2.0, 40.0, 4.0], dtype=torch.float64)
    expected = [9.35762297e-14, 3.13913279e-17, 1.0, 2.31952283e-16]
    torch.testing.assert_close(
        LF.softmax(x, 0), torch.tensor(expected, dtype=torch.float64), rtol=1e-8, atol=0
    )
    x = torch.tensor([1000.0, 1001.0, 1002.0])
    torch.testing.assert_close(LF.softmax(x, 0), torch.tensor([0.09003057, 0.24472847, 0.66524096]))


def test_logsumexp_spec_values():
    x = torch.tensor([1000.0, 1001.0, 1002.0], dtype=torch.float64)
    assert LF.logsumexp(x, 0).item() == pytest.approx(1002.4076059644444, abs=1e-12)
    assert LF.logsumexp(-x, 0).item() == pytest.approx(-999.5923940355556, abs=1e-12)


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [
        (1.0, [0.0900306, 1.37e-9, 0.6652410, 0.2447285]),
        (100.0, [0.258697, 0.216082, 0.263923, 0.261297]),
        (0.001, [0.0, 0.0, 1.0, 0.0]),
    ],
)
def test_softmax_temperature_article_example(temperature, expected):
    # Logits of (goes, go, went, comes) in Ogun's article.
    x = torch.tensor([38.0, 20.0, 40.0, 39.0], dtype=torch.float64)
    torch.testing.assert_close(
        LF.softmax(x, 0, temperature=temperature),
        torch.tensor(expected, dtype=torch.float64),
        rtol=1e-4,
        atol=1e-10,
    )


def test_smooth_max_spec_values():
    pair = torch.tensor([1.0, 2.0], dtype=torch.float64)
    # k = 5, i.e. temperature 0.2: (11) gives 2.0013431, (13) gives 2.0001.
    assert LF.smooth_max(pair, 0, temperature=0.2).item() == pytest.approx(2.0013431, abs=1e-7)
    assert LF.smooth_max(pair, 0, temperature=0.2, method="pnorm").item() == pytest.approx(2.0001, abs=5e-5)
    assert LF.smooth_min(pair, 0, temperature=0.2).item() == pytest.approx(1 - 0.0013431, abs=1e-7)


def test_soft_argmax_spec_values():
    x = torch.tensor([2.0, 1.0, 4.0, 5.0, 3.0])
    assert LF.soft_argmax(x, 0, temperature=1e-3).item() == pytest.approx(3.0)
    assert LF.soft_argmax(torch.zeros(5), 0).item() == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------
# Against the float64 oracle (issue #2 acceptance: float32 to 1e-6 incl. +/-1e4 and masks)
# ---------------------------------------------------------------------------------------------


def _random_case(seed: int, shape=(6, 9)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 5
    x[0, 0], x[1, 3], x[2, :2] = 1e4, -1e4, torch.tensor([1e4, -1e4], dtype=torch.float64)
    mask = torch.rand(shape, generator=g) > 0.3
    mask[3] = False  # a fully masked row
    mask[4, :] = True
    return x, mask


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("temperature", [1.0, 0.3, 7.0])
def test_softmax_float32_matches_oracle(seed, temperature):
    x, mask = _random_case(seed)
    actual = LF.softmax(x.float(), dim=-1, temperature=temperature, mask=mask)
    expected = ref.softmax(x.numpy(), -1, temperature, mask.numpy())
    torch.testing.assert_close(actual.double(), torch.from_numpy(expected), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_log_softmax_and_logsumexp_match_oracle(dim):
    x, mask = _random_case(4, shape=(5, 7))
    x = x.clone()
    x[0, 1] = -INF
    expected_lsm = ref.log_softmax(x.numpy(), dim, 0.5, mask.numpy())
    actual_lsm = LF.log_softmax(x, dim, temperature=0.5, mask=mask)
    finite = np.isfinite(expected_lsm)
    assert (torch.isneginf(actual_lsm).numpy() == ~finite).all()
    np.testing.assert_allclose(actual_lsm.numpy()[finite], expected_lsm[finite], rtol=1e-12, atol=1e-9)
    expected_lse = ref.logsumexp(x.numpy(), dim, 0.5, mask.numpy())
    actual_lse = LF.logsumexp(x, dim, temperature=0.5, mask=mask)
    np.testing.assert_allclose(actual_lse.numpy(), expected_lse, rtol=1e-12)


def test_temperature_one_equals_torch():
    x = torch.randn(4, 6, 5)
    for dim in range(3):
        torch.testing.assert_close(LF.softmax(x, dim), torch.softmax(x, dim))
        torch.testing.assert_close(LF.log_softmax(x, dim), torch.log_softmax(x, dim))
        torch.testing.assert_close(LF.logsumexp(x, dim), torch.logsumexp(x, dim))
        torch.testing.assert_close(LF.logsumexp(x, dim, keepdim=True), torch.logsumexp(x, dim, keepdim=True))


# ---------------------------------------------------------------------------------------------
# Dead (fully masked) rows and -inf entries: zeros / -inf, zero gradients, never NaN
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("via", ["mask", "-inf"])
def test_dead_rows_give_zero_and_zero_gradient(dtype, via):
    x = torch.randn(3, 4, dtype=dtype)
    mask = torch.ones(3, 4, dtype=torch.bool)
    if via == "mask":
        mask[1] = False
    else:
        x[1] = -INF
    kwargs = {"mask": mask} if via == "mask" else {}
    for fn, dead_value in [(LF.softmax, 0.0), (LF.log_softmax, -INF), (LF.logsumexp, -INF)]:
        xr = x.clone().requires_grad_()
        out = fn(xr, 1, temperature=0.7, **kwargs)
        assert out.dtype == dtype
        assert_finite(out)
        assert (out[1] == dead_value).all()
        out.masked_fill(torch.isinf(out), 0).sum().backward()
        assert_finite(xr.grad)
        assert (xr.grad[1] == 0).all()
        assert (xr.grad[0] != 0).any() or fn is LF.softmax  # softmax rows sum to 1: zero grad of sum


def test_masked_entries_get_no_mass_and_no_gradient():
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True, False], [True] * 5])
    p = LF.softmax(x, 1, mask=mask)
    assert (p[0, [1, 4]] == 0).all()
    (p * torch.arange(5.0, dtype=torch.float64)).sum().backward()
    assert (x.grad[0, [1, 4]] == 0).all()


def test_neg_inf_input_and_temperature_gradient_has_no_nan():
    x = torch.tensor([[1.0, -INF, 2.0], [-INF, -INF, -INF]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    out = LF.logsumexp(x, 1, temperature=t)
    out[0].backward()
    assert_finite(x.grad, t.grad)
    # d/dtau [tau * LSE(x / tau)] = LSE(x/tau) - sum_i p_i x_i / tau
    p = torch.softmax(torch.tensor([2.0, 4.0], dtype=torch.float64), 0)
    expected = (
        torch.logsumexp(torch.tensor([2.0, 4.0], dtype=torch.float64), 0)
        - (p * torch.tensor([2.0, 4.0])).sum()
    )
    assert t.grad.item() == pytest.approx(expected.item(), rel=1e-10)


def test_empty_inputs():
    assert LF.softmax(torch.empty(0, 5), 1).shape == (0, 5)
    assert LF.softmax(torch.empty(3, 0), 1).shape == (3, 0)
    assert LF.logsumexp(torch.empty(0, 5), 1).shape == (0,)
    out = LF.logsumexp(torch.empty(3, 0), 1)
    assert out.shape == (3,) and torch.isneginf(out).all()


# ---------------------------------------------------------------------------------------------
# Properties (Hypothesis)
# ---------------------------------------------------------------------------------------------

_rows = st.lists(st.floats(-50, 50, allow_nan=False, width=64), min_size=1, max_size=12)


@given(_rows, st.floats(-1e3, 1e3), st.floats(0.05, 20))
def test_shift_invariance(row, shift, temperature):
    x = torch.tensor(row, dtype=torch.float64)
    p = LF.softmax(x, 0, temperature=temperature)
    torch.testing.assert_close(LF.softmax(x + shift, 0, temperature=temperature), p, rtol=1e-9, atol=1e-12)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    lse = LF.logsumexp(x, 0, temperature=temperature)
    assert LF.logsumexp(x + shift, 0, temperature=temperature).item() == pytest.approx(
        lse.item() + shift, abs=1e-9
    )


@given(_rows, st.randoms(use_true_random=False), st.floats(0.05, 20))
def test_permutation_equivariance(row, rnd, temperature):
    x = torch.tensor(row, dtype=torch.float64)
    perm = list(range(len(row)))
    rnd.shuffle(perm)
    perm_t = torch.tensor(perm)
    p = LF.softmax(x, 0, temperature=temperature)
    torch.testing.assert_close(LF.softmax(x[perm_t], 0, temperature=temperature), p[perm_t])
    assert LF.logsumexp(x[perm_t], 0, temperature=temperature).item() == pytest.approx(
        LF.logsumexp(x, 0, temperature=temperature).item(), abs=1e-10
    )


@given(_rows, st.floats(0.01, 10))
def test_logsumexp_bounds_and_monotone_in_temperature(row, temperature):
    x = torch.tensor(row, dtype=torch.float64)
    lse = LF.logsumexp(x, 0, temperature=temperature).item()
    assert x.max().item() - 1e-12 <= lse <= x.max().item() + temperature * math.log(len(row)) + 1e-9
    assert LF.logsumexp(x, 0, temperature=temperature * 1.5).item() >= lse - 1e-12
    smin = LF.smooth_min(x, 0, temperature=temperature).item()
    assert x.min().item() - temperature * math.log(len(row)) - 1e-9 <= smin <= x.min().item() + 1e-12


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=10, unique=True))
def test_temperature_limits(row):
    x = torch.tensor(row, dtype=torch.float64)
    hard = torch.nn.functional.one_hot(x.argmax(), len(row)).double()
    gap = (x.max() - x.topk(2).values[1]).item()
    if gap > 1e-3:
        torch.testing.assert_close(LF.softmax(x, 0, temperature=gap / 100), hard, atol=1e-30, rtol=0)
    uniform = torch.full_like(x, 1 / len(row))
    torch.testing.assert_close(LF.softmax(x, 0, temperature=1e9), uniform, atol=1e-7, rtol=0)


@given(_rows, st.floats(0.05, 5), st.data())
def test_masked_entry_invariance(row, temperature, data):
    x = torch.tensor(row, dtype=torch.float64)
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=len(row), max_size=len(row))))
    garbage = torch.tensor(
        data.draw(st.lists(st.floats(-1e4, 1e4), min_size=len(row), max_size=len(row))),
        dtype=torch.float64,
    )
    y = torch.where(mask, x, garbage)
    for fn in (LF.softmax, LF.log_softmax, LF.logsumexp):
        torch.testing.assert_close(
            fn(x, 0, temperature=temperature, mask=mask),
            fn(y, 0, temperature=temperature, mask=mask),
        )
    # Masked entries behave as if removed.
    if mask.any():
        torch.testing.assert_close(
            LF.softmax(x, 0, temperature=temperature, mask=mask)[mask],
            LF.softmax(x[mask], 0, temperature=temperature),
        )


@given(_rows)
def test_log_softmax_equals_log_of_softmax(row):
    x = torch.tensor(row, dtype=torch.float64)
    p = LF.softmax(x, 0)
    ok = p > 1e-300
    torch.testing.assert_close(LF.log_softmax(x, 0)[ok], p[ok].log(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Smooth max alternatives (post 3290)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pnorm", "loglog"])
@pytest.mark.parametrize("temperature", [0.05, 0.5, 2.0])
def test_smooth_max_alternatives_match_oracle(method, temperature):
    x = torch.rand(4, 6, dtype=torch.float64) * 3
    oracle = ref.pnorm_max if method == "pnorm" else ref.loglog_max
    expected = oracle(x.numpy(), 1, temperature)
    actual = LF.smooth_max(x, 1, temperature=temperature, method=method)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-10)
    assert (actual >= x.amax(1) - 1e-12).all()


@pytest.mark.parametrize("method", ["lse", "pnorm", "loglog"])
def test_smooth_max_converges_to_max(method):
    x = torch.tensor([[0.5, 3.0, 2.9, 0.0]], dtype=torch.float64)
    errors = [
        (LF.smooth_max(x, 1, temperature=t, method=method) - 3.0).abs().item() for t in (1.0, 0.1, 0.01)
    ]
    # (14) converges double-exponentially: its error reaches exactly 0 in float64.
    assert errors[0] > errors[1] >= errors[2]
    assert errors[2] < 0.05


def test_smooth_max_alternatives_do_not_overflow():
    x = torch.tensor([1000.0, 999.0, 0.0])
    # p = 3 at temperature 1: (1000^3 + 999^3)^(1/3), whose cubes overflow nothing after scaling.
    out = LF.smooth_max(x, 0, temperature=1.0, method="pnorm")
    assert out.item() == pytest.approx((1000.0**3 + 999.0**3) ** (1 / 3), rel=1e-6)
    # e^{e^1000} is far beyond any float; the shifted evaluation returns ~1000.
    out = LF.smooth_max(x, 0, temperature=1.0, method="loglog")
    assert torch.isfinite(out) and out.item() == pytest.approx(1000.0, abs=1e-3)


def test_smooth_max_alternatives_masks_and_empty_rows():
    x = torch.tensor([[1.0, 5.0, 2.0], [3.0, 4.0, 1.0]], dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    for method in ("pnorm", "loglog"):
        out = LF.smooth_max(x, 1, temperature=0.1, method=method, mask=mask)
        assert out[0].item() == pytest.approx(2.0, abs=0.1) and out[1].item() == 0.0
    assert torch.isneginf(LF.smooth_max(x, 1, mask=mask)[1])
    assert torch.isposinf(LF.smooth_min(x, 1, mask=mask)[1])


@pytest.mark.parametrize("method", ["pnorm", "loglog"])
def test_smooth_max_alternatives_reject_negative_input(method):
    # (13) tends to the entry of largest |x| and (14) to 0 for negative inputs (spec §2.3).
    assert_raises(
        ValueError,
        "expected non-negative values, got -1",
        LF.smooth_max,
        torch.tensor([-1.0, 2.0]),
        0,
        method=method,
    )
    assert LF.smooth_min(torch.tensor([-1.0, -2.0]), 0, method=method).item() <= -2.0 + 1e-9


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [LF.softmax, LF.log_softmax, LF.logsumexp])
def test_gradcheck_and_gradgradcheck(fn):
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 5) > 0.3
    mask[:, 0] = True
    # Masked outputs of log_softmax are the constant -inf; compare the kept ones.
    assert_gradcheck(
        lambda v: (
            torch.where(mask, fn(v, 1, temperature=0.7, mask=mask), 0.0)
            if fn is not LF.logsumexp
            else fn(v, 1, temperature=0.7, mask=mask)
        ),
        x,
        gradgrad=True,
    )
    t = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(lambda v, tau: fn(v, 0, temperature=tau), x, t, gradgrad=True)


@pytest.mark.parametrize("method", ["lse", "pnorm", "loglog"])
def test_gradcheck_smooth_max_min(method):
    x = (torch.rand(3, 4, dtype=torch.float64) + 0.1).requires_grad_()
    t = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(lambda v, tau: LF.smooth_max(v, 1, temperature=tau, method=method), x, t)
    assert_gradcheck(lambda v: LF.smooth_min(-v, 1, temperature=0.3, method=method), x)


def test_gradcheck_soft_argmax():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(lambda v: LF.soft_argmax(v, 1, temperature=0.5), x, gradgrad=True)


def test_softmax_jacobian_formula():
    # J = diag(p) - p p^T (spec §1.2).
    x = torch.randn(6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: LF.softmax(v, 0), x)
    p = torch.softmax(x, 0)
    torch.testing.assert_close(jac, torch.diag(p) - torch.outer(p, p))


# ---------------------------------------------------------------------------------------------
# dtypes and torch.compile
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_matrix(dtype):
    x64, mask = _random_case(7)
    x64 = x64.clamp(-60, 60)  # representable in float16
    x = x64.to(dtype)
    expected = {
        LF.softmax: ref.softmax(x.double().numpy(), -1, 0.5, mask.numpy()),
        LF.logsumexp: ref.logsumexp(x.double().numpy(), -1, 0.5, mask.numpy()),
    }
    for fn, exp in expected.items():
        out = fn(x, -1, temperature=0.5, mask=mask)
        assert out.dtype == dtype
        assert_close_to_reference(out, exp, dtype)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_computes_in_float32(dtype):
    # Entries whose gap underflows in half precision arithmetic still give exact probabilities.
    x = torch.tensor([[0.0, 8.0, 16.0]], dtype=dtype)
    p = LF.softmax(x, 1, temperature=0.25)
    assert p.dtype == dtype
    expected = torch.softmax(x.float() / 0.25, 1)  # [1.6e-28, 1.3e-14, 1.0]
    torch.testing.assert_close(p.float(), expected, rtol=1e-2, atol=torch.finfo(dtype).tiny)
    if dtype == torch.bfloat16:  # float32 range: the tiny probabilities survive
        assert (p > 0).all()


def test_dtype_argument_upcasts():
    x = torch.randn(2, 3, dtype=torch.float16)
    out = LF.softmax(x, 1, dtype=torch.float64)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.softmax(x.double(), 1))


def test_torch_compile_fullgraph():
    x = torch.randn(4, 7, requires_grad=True)
    mask = torch.rand(4, 7) > 0.2
    mask[2] = False
    t = torch.tensor(0.7, requires_grad=True)
    for fn in (
        LF.softmax,
        LF.log_softmax,
        LF.logsumexp,
        LF.smooth_max,
        LF.smooth_min,
        LF.soft_argmax,
    ):
        assert_compiles(
            lambda v, tau, fn=fn: fn(v, 1, temperature=tau, mask=mask).nan_to_num(0.0, 0.0, 0.0),
            x,
            t,
        )
    for method in ("pnorm", "loglog"):
        xp = torch.rand(4, 7, requires_grad=True)
        assert_compiles(lambda v, m=method: LF.smooth_max(v, 1, temperature=0.5, method=m), xp)


@pytest.mark.slow
def test_torch_compile_inductor():
    x = torch.randn(8, 33, requires_grad=True)
    mask = torch.rand(8, 33) > 0.2
    mask[3] = False
    assert_compiles(lambda v: LF.softmax(v, 1, temperature=0.5, mask=mask), x, backend="inductor")
    assert_compiles(lambda v: LF.log_softmax(v, 1, mask=mask).clamp_min(-1e4), x, backend="inductor")


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_inputs():
    x = torch.randn(2, 3)
    assert_raises(TypeError, "input: expected a torch.Tensor, got list", LF.softmax, [1.0, 2.0], 0)
    assert_raises(
        TypeError,
        "input: expected a floating-point tensor, got dtype torch.int64",
        LF.softmax,
        torch.tensor([1, 2]),
        0,
    )
    assert_raises(IndexError, "dim: expected a dimension in [-2, 1]", LF.softmax, x, 2)
    assert_raises(TypeError, "dim: expected an int", LF.softmax, x, None)
    assert_raises(
        ValueError,
        "temperature: expected a positive finite number, got 0.0",
        LF.softmax,
        x,
        1,
        temperature=0.0,
    )
    assert_raises(
        ValueError,
        "temperature: expected a positive finite number, got nan",
        LF.softmax,
        x,
        1,
        temperature=float("nan"),
    )
    assert_raises(
        ValueError,
        "temperature: expected positive finite values, got -1.0",
        LF.log_softmax,
        x,
        1,
        temperature=torch.tensor(-1.0),
    )
    assert_raises(
        ValueError,
        "temperature: expected a float or a tensor broadcastable",
        LF.softmax,
        x,
        1,
        temperature=torch.ones(3, 1),
    )
    assert_raises(
        ValueError,
        "temperature: a reduction needs a temperature constant along the reduced dim",
        LF.logsumexp,
        x,
        1,
        temperature=torch.ones(3) + 1,
    )
    assert_raises(
        TypeError,
        "mask: expected a bool tensor (True keeps an entry), got torch.float32",
        LF.softmax,
        x,
        1,
        mask=torch.ones(2, 3),
    )
    assert_raises(
        ValueError,
        "mask: expected a shape broadcastable to the input's (2, 3), got (3, 3)",
        LF.softmax,
        x,
        1,
        mask=torch.ones(3, 3, dtype=torch.bool),
    )
    assert_raises(
        ValueError,
        "method: expected one of 'lse', 'pnorm', 'loglog', got 'cubic'",
        LF.smooth_max,
        x,
        1,
        method="cubic",
    )
    assert_raises(TypeError, "dtype: expected a floating dtype", LF.softmax, x, 1, dtype=torch.int32)


def test_value_checks_can_be_disabled():
    import logitkit

    logitkit.set_validate_args(False)
    try:
        LF.smooth_max(torch.tensor([-1.0, 2.0]), 0, method="pnorm")  # no error
    finally:
        logitkit.set_validate_args(True)


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


def test_modules_match_functional():
    x = torch.randn(3, 5)
    mask = torch.rand(3, 5) > 0.3
    torch.testing.assert_close(
        LN.Softmax(1, temperature=0.5)(x, mask), LF.softmax(x, 1, temperature=0.5, mask=mask)
    )
    torch.testing.assert_close(LN.LogSoftmax(0)(x), LF.log_softmax(x, 0))
    torch.testing.assert_close(
        LN.LogSumExp(1, keepdim=True, temperature=2.0)(x), LF.logsumexp(x, 1, True, temperature=2.0)
    )
    torch.testing.assert_close(LN.SmoothMax(1, temperature=0.1)(x), LF.smooth_max(x, 1, temperature=0.1))
    torch.testing.assert_close(LN.SmoothMin(1, temperature=0.1)(x), LF.smooth_min(x, 1, temperature=0.1))
    assert "temperature=0.5" in repr(LN.Softmax(1, temperature=0.5))


def test_module_learnable_temperature():
    module = LN.Softmax(1, temperature=torch.nn.Parameter(torch.tensor(2.0)))
    assert [name for name, _ in module.named_parameters()] == ["temperature"]
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    loss = -module(logits)[0, 0].log()
    loss.backward()
    assert module.temperature.grad is not None and module.temperature.grad.item() > 0  # sharper helps
    buffered = LN.Softmax(1, temperature=torch.tensor(3.0))
    assert "temperature" in buffered.state_dict()
