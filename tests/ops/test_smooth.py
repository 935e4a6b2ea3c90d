"""Approximate-identity smoothing (spec: operators.md §4, reproduction_targets.md §3)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import logitkit.functional as LF
import logitkit.nn as LN
from tests.helpers import FLOAT_DTYPES, TOLERANCE, assert_compiles, assert_gradcheck, assert_raises
from tests.reference import smooth as ref

KERNELS = ["logistic", "gaussian", "cauchy"]
INF = math.inf


# ---------------------------------------------------------------------------------------------
# Spec oracles (operators.md §4.4)
# ---------------------------------------------------------------------------------------------


def test_spec_relu_values():
    x = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64)
    gaussian = LF.smooth_relu(x, temperature=0.7, kernel="gaussian")
    torch.testing.assert_close(
        gaussian, torch.tensor([0.0240948, 0.454520, 2.000439], dtype=torch.float64), atol=1e-6, rtol=0
    )
    softplus = LF.smooth_relu(x, temperature=1 / 3)
    torch.testing.assert_close(
        softplus, torch.tensor([0.0161958, 0.413718, 2.000825], dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_spec_floor_values():
    # t = 10 (temperature 0.1), the post's M = 5, N = 10 window: values inside it.
    x = torch.tensor([-2.7, -0.5, 0.0, 0.5, 1.2, 3.99, 4.5], dtype=torch.float64)
    expected = [-3.0465, -1.0, -0.5, 0.0, 0.8811, 3.475, 4.0]
    torch.testing.assert_close(
        LF.smooth_floor(x, temperature=0.1), torch.tensor(expected, dtype=torch.float64), atol=6e-5, rtol=0
    )
    # Equal to the post's truncated sum -M - 1 + sum_{n=-M}^{N} sigma(t (x - n)) inside (-M, N).
    post = -6.0 + sum(torch.sigmoid(10.0 * (x - n)) for n in range(-5, 11))
    torch.testing.assert_close(LF.smooth_floor(x, temperature=0.1), post, atol=1e-12, rtol=0)


def test_named_special_cases():
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    torch.testing.assert_close(LF.smooth_relu(x), F.softplus(x))
    torch.testing.assert_close(LF.smooth_relu(x, form="step"), F.silu(x))
    torch.testing.assert_close(
        LF.smooth_relu(x, kernel="gaussian", form="step"), F.gelu(x, approximate="none")
    )
    torch.testing.assert_close(LF.smooth_sign(x, temperature=0.5), torch.tanh(x))
    torch.testing.assert_close(LF.smooth_step(x), torch.sigmoid(x))
    # Post 3290 eq. 6: (1/k) log(2 + e^{kx} + e^{-kx}), k = 1 / temperature.
    k = 4.0
    eq6 = torch.log(2 + torch.exp(k * x) + torch.exp(-k * x)) / k
    torch.testing.assert_close(LF.smooth_abs(x, temperature=1 / k), eq6)
    assert LF.smooth_abs(torch.zeros(1, dtype=torch.float64), temperature=0.25).item() == pytest.approx(
        math.log(4) / 4
    )


# ---------------------------------------------------------------------------------------------
# Closed forms against numerical convolution (float64 oracle)
# ---------------------------------------------------------------------------------------------

POINTS = [-2.3, -0.4, 0.0, 0.15, 1.7]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("tau", [0.3, 1.2])
def test_closed_forms_equal_convolution(kernel, tau):
    x = torch.tensor(POINTS, dtype=torch.float64)
    checks = [
        (LF.smooth_step(x, temperature=tau, kernel=kernel), ref.step, (0.0,)),
        (LF.smooth_sign(x, temperature=tau, kernel=kernel), lambda v: 2 * ref.step(v) - 1, (0.0,)),
        (LF.smooth_clip(x, -0.5, 1.0, temperature=tau, kernel=kernel), ref.clip(-0.5, 1.0), (-0.5, 1.0)),
    ]
    if kernel != "cauchy":  # the Cauchy convolution of [x]_+ and |x| diverges
        checks += [
            (LF.smooth_relu(x, temperature=tau, kernel=kernel), ref.relu, (0.0,)),
            (LF.smooth_abs(x, temperature=tau, kernel=kernel), abs, (0.0,)),
        ]
    for actual, f, breaks in checks:
        expected = [ref.convolve(f, v, tau, kernel, breaks) for v in POINTS]
        torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), atol=1e-9, rtol=0)


@pytest.mark.parametrize("kernel", ["logistic", "gaussian"])
@pytest.mark.parametrize("tau", [0.05, 0.3, 1.5])
def test_floor_and_round_equal_convolution(kernel, tau):
    points = [-3.7, -0.5, 0.0, 0.49, 2.0, 6.25]
    x = torch.tensor(points, dtype=torch.float64)
    expected = torch.tensor([ref.floor_conv(v, tau, kernel) for v in points], dtype=torch.float64)
    torch.testing.assert_close(
        LF.smooth_floor(x, temperature=tau, kernel=kernel), expected, atol=1e-12, rtol=0
    )
    expected = torch.tensor([ref.floor_conv(v + 0.5, tau, kernel) for v in points], dtype=torch.float64)
    torch.testing.assert_close(
        LF.smooth_round(x, temperature=tau, kernel=kernel), expected, atol=1e-12, rtol=0
    )


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

_xs = st.lists(st.floats(-40, 40, allow_nan=False, width=64), min_size=1, max_size=12)


@given(_xs, st.floats(0.01, 5.0), st.sampled_from(["logistic", "gaussian"]))
def test_bounds_and_limits(values, tau, kernel):
    x = torch.tensor(values, dtype=torch.float64)
    relu, absx = x.clamp_min(0), x.abs()
    # Convolving a convex function gives an upper bound; smoothing only the step a lower one.
    assert (LF.smooth_relu(x, temperature=tau, kernel=kernel) >= relu - 1e-12).all()
    assert (LF.smooth_relu(x, temperature=tau, kernel=kernel, form="step") <= relu + 1e-12).all()
    assert (LF.smooth_abs(x, temperature=tau, kernel=kernel) >= absx - 1e-12).all()
    assert (LF.smooth_abs(x, temperature=tau, kernel=kernel, form="step") <= absx + 1e-12).all()
    clip = LF.smooth_clip(x, -1.0, 2.0, temperature=tau, kernel=kernel)
    assert ((clip >= -1.0) & (clip <= 2.0)).all()
    # tau -> 0 recovers the hard functions (away from the kinks).
    small = 1e-4
    far = (x.abs() > 0.01) & ((x - x.round()).abs() > 0.01) & ((x + 1).abs() > 0.01) & ((x - 2).abs() > 0.01)
    if far.any():
        xf = x[far]
        torch.testing.assert_close(
            LF.smooth_relu(xf, temperature=small, kernel=kernel), xf.clamp_min(0), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            LF.smooth_sign(xf, temperature=small, kernel=kernel), torch.sign(xf), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            LF.smooth_clip(xf, -1.0, 2.0, temperature=small, kernel=kernel),
            xf.clamp(-1, 2),
            atol=1e-6,
            rtol=0,
        )
        torch.testing.assert_close(
            LF.smooth_floor(xf, temperature=small, kernel=kernel), torch.floor(xf), atol=1e-6, rtol=0
        )


@given(_xs, st.floats(0.02, 2.0), st.sampled_from(KERNELS))
def test_symmetries(values, tau, kernel):
    x = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(
        LF.smooth_sign(-x, temperature=tau, kernel=kernel), -LF.smooth_sign(x, temperature=tau, kernel=kernel)
    )
    step = LF.smooth_step(x, temperature=tau, kernel=kernel)
    torch.testing.assert_close(
        LF.smooth_step(-x, temperature=tau, kernel=kernel), 1 - step, atol=1e-12, rtol=0
    )
    # clip is symmetric about the middle of [a, b].
    a, b = -1.0, 3.0
    clip = LF.smooth_clip(x, a, b, temperature=tau, kernel=kernel)
    torch.testing.assert_close(
        LF.smooth_clip(a + b - x, a, b, temperature=tau, kernel=kernel), a + b - clip, atol=1e-9, rtol=0
    )


@given(_xs, st.floats(0.02, 1.0), st.sampled_from(["logistic", "gaussian"]))
def test_floor_periodicity_and_monotonicity(values, tau, kernel):
    x = torch.tensor(values, dtype=torch.float64)
    f = LF.smooth_floor(x, temperature=tau, kernel=kernel)
    torch.testing.assert_close(
        LF.smooth_floor(x + 1, temperature=tau, kernel=kernel), f + 1, atol=1e-9, rtol=0
    )
    integers = torch.arange(-3, 4, dtype=torch.float64)
    torch.testing.assert_close(
        LF.smooth_floor(integers, temperature=tau, kernel=kernel), integers - 0.5, atol=1e-12, rtol=0
    )
    grid = torch.linspace(-2, 2, 201, dtype=torch.float64)
    assert (
        LF.smooth_floor(grid, temperature=tau, kernel=kernel).diff() >= 0
    ).all()  # flat to rounding between steps


# ---------------------------------------------------------------------------------------------
# Gradients, dtypes, compile
# ---------------------------------------------------------------------------------------------

FUNCTIONS = [
    ("step", lambda x, t, k: LF.smooth_step(x, temperature=t, kernel=k), KERNELS),
    ("sign", lambda x, t, k: LF.smooth_sign(x, temperature=t, kernel=k), KERNELS),
    ("relu", lambda x, t, k: LF.smooth_relu(x, temperature=t, kernel=k), ["logistic", "gaussian"]),
    ("relu-step", lambda x, t, k: LF.smooth_relu(x, temperature=t, kernel=k, form="step"), KERNELS),
    ("abs", lambda x, t, k: LF.smooth_abs(x, temperature=t, kernel=k), ["logistic", "gaussian"]),
    ("abs-step", lambda x, t, k: LF.smooth_abs(x, temperature=t, kernel=k, form="step"), KERNELS),
    ("clip", lambda x, t, k: LF.smooth_clip(x, -0.5, 1.5, temperature=t, kernel=k), KERNELS),
    (
        "floor",
        lambda x, t, k: LF.smooth_floor(x, temperature=t, kernel=k, window=8),
        ["logistic", "gaussian"],
    ),
    (
        "round",
        lambda x, t, k: LF.smooth_round(x, temperature=t, kernel=k, window=8),
        ["logistic", "gaussian"],
    ),
]
CASES = [(name, fn, kernel) for name, fn, kernels in FUNCTIONS for kernel in kernels]


@pytest.mark.parametrize(("name", "fn", "kernel"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_gradcheck(name, fn, kernel):
    x = (torch.randn(7, dtype=torch.float64) * 2).requires_grad_()
    tau = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    assert_gradcheck(lambda v, t: fn(v, t, kernel), x, tau, gradgrad=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize(("name", "fn", "kernel"), CASES[::2], ids=[f"{c[0]}-{c[2]}" for c in CASES[::2]])
def test_dtype_matrix(dtype, name, fn, kernel):
    x = (torch.randn(33, dtype=torch.float64) * 3).to(dtype)
    out = fn(x, 0.4, kernel)
    assert out.dtype == dtype
    expected = fn(x.double(), 0.4, kernel)
    torch.testing.assert_close(out.double(), expected, **TOLERANCE[dtype])


def test_extreme_inputs_are_finite():
    x = torch.tensor([-1e4, -30.0, 0.0, 30.0, 1e4])
    for name, fn, kernels in FUNCTIONS:
        for kernel in kernels:
            x_req = x.clone().requires_grad_()
            out = fn(x_req, 0.01, kernel)
            out.sum().backward()
            assert torch.isfinite(out).all() and torch.isfinite(x_req.grad).all(), (name, kernel)


def test_infinite_and_huge_inputs_give_the_limits():
    # +-inf: the hard function's limits with zero gradient; 1e30: no cancellation (clip = max).
    x = torch.tensor([INF, -INF, 1e30, -1e30, 0.3], dtype=torch.float64)
    hard = {
        "step": [1.0, 0.0, 1.0, 0.0],
        "sign": [1.0, -1.0, 1.0, -1.0],
        "relu": [INF, 0.0, 1e30, 0.0],
        "relu-step": [INF, 0.0, 1e30, 0.0],
        "abs": [INF, INF, 1e30, 1e30],
        "abs-step": [INF, INF, 1e30, 1e30],
        "clip": [1.5, -0.5, 1.5, -0.5],
        "floor": [INF, -INF, 1e30, -1e30],
        "round": [INF, -INF, 1e30, -1e30],
    }
    for name, fn, kernel in CASES:
        x_req = x.clone().requires_grad_()
        out = fn(x_req, 0.5, kernel)
        expected = torch.tensor(hard[name], dtype=torch.float64)
        if name == "relu-step" and kernel == "cauchy":
            expected[1] = -0.5 / math.pi  # x Phi(x / tau) -> -tau / pi
        torch.testing.assert_close(out[:4], expected, rtol=1e-12, atol=0, msg=f"{name}-{kernel}")
        torch.testing.assert_close(out[4:], fn(x[4:], 0.5, kernel))
        (grad,) = torch.autograd.grad(out.nan_to_num(posinf=0.0, neginf=0.0).sum(), x_req)
        assert torch.isfinite(grad).all() and (grad[:2] == 0).all(), (name, kernel)


def test_torch_compile_fullgraph():
    x = torch.randn(16, requires_grad=True)
    t = torch.tensor(0.5, requires_grad=True)

    def all_of_them(v, tau):
        return (
            LF.smooth_relu(v, temperature=tau, kernel="gaussian")
            + LF.smooth_abs(v, temperature=tau)
            + LF.smooth_sign(v, temperature=tau, kernel="cauchy")
            + LF.smooth_clip(v, 0.0, 1.0, temperature=tau)
            + LF.smooth_floor(v, temperature=tau, window=20)
            + LF.smooth_round(v, temperature=0.2)
        )

    assert_compiles(all_of_them, x, t)


# ---------------------------------------------------------------------------------------------
# Bad input, Modules
# ---------------------------------------------------------------------------------------------


def test_bad_inputs():
    x = torch.randn(4)
    assert_raises(
        ValueError,
        "kernel: expected one of 'logistic', 'gaussian', 'cauchy', got 'box'",
        LF.smooth_step,
        x,
        kernel="box",
    )
    assert_raises(
        ValueError,
        "kernel: expected one of 'logistic', 'gaussian', got 'cauchy'",
        LF.smooth_relu,
        x,
        kernel="cauchy",
    )
    assert_raises(
        ValueError,
        "kernel: expected one of 'logistic', 'gaussian', got 'cauchy'",
        LF.smooth_floor,
        x,
        kernel="cauchy",
    )
    assert_raises(ValueError, "form: expected one of 'convolve', 'step', got 'x'", LF.smooth_abs, x, form="x")
    assert_raises(
        ValueError,
        "temperature: expected a positive finite number, got -1.0",
        LF.smooth_sign,
        x,
        temperature=-1.0,
    )
    assert_raises(
        ValueError, "max: expected a value greater than min=1.0, got 0.0", LF.smooth_clip, x, 1.0, 0.0
    )
    assert_raises(TypeError, "min: expected a finite number, got inf", LF.smooth_clip, x, math.inf, 1.0)
    assert_raises(ValueError, "window: expected a positive int, got 0", LF.smooth_floor, x, window=0)
    assert_raises(TypeError, "input: expected a floating-point tensor", LF.smooth_round, torch.tensor([1, 2]))


def test_modules_match_functional():
    x = torch.randn(3, 5)
    pairs = [
        (
            LN.SmoothStep(temperature=0.3, kernel="gaussian"),
            LF.smooth_step(x, temperature=0.3, kernel="gaussian"),
        ),
        (LN.SmoothSign(temperature=0.3), LF.smooth_sign(x, temperature=0.3)),
        (LN.SmoothReLU(form="step"), LF.smooth_relu(x, form="step")),
        (LN.SmoothAbs(temperature=0.2), LF.smooth_abs(x, temperature=0.2)),
        (LN.SmoothClip(-1.0, 1.0, temperature=0.1), LF.smooth_clip(x, -1.0, 1.0, temperature=0.1)),
        (LN.SmoothFloor(), LF.smooth_floor(x)),
        (LN.SmoothRound(temperature=0.05), LF.smooth_round(x, temperature=0.05)),
    ]
    for module, expected in pairs:
        torch.testing.assert_close(module(x), expected)
    assert "min=-1.0, max=1.0" in repr(LN.SmoothClip(-1.0, 1.0))
    learn = LN.SmoothReLU(temperature=torch.nn.Parameter(torch.tensor(0.5)))
    learn(x).sum().backward()
    assert learn.temperature.grad is not None
