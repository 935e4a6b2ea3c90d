"""Helpers shared by every test module: tolerances, gradcheck, compile and bad-input checks."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

# The dtype matrix: tolerances against a float64 reference.
TOLERANCE: dict[torch.dtype, dict[str, float]] = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
    torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2},
}
FLOAT_DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
LOW_PRECISION = [torch.bfloat16, torch.float16]


def assert_close_to_reference(actual: Tensor, expected: Any, dtype: torch.dtype | None = None) -> None:
    """Compare ``actual`` with a float64 reference at the tolerance of ``dtype``."""
    dtype = dtype or actual.dtype
    expected_t = torch.as_tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(actual.double(), expected_t, **TOLERANCE[dtype], equal_nan=False)


def assert_finite(*tensors: Tensor | None) -> None:
    for t in tensors:
        if t is not None:
            assert not torch.isnan(t).any(), f"NaN in {t}"


def assert_gradcheck(
    fn: Callable[..., Tensor], *inputs: Tensor, gradgrad: bool = False, **kwargs: Any
) -> None:
    """float64 gradcheck (and gradgradcheck) of ``fn`` at ``inputs``."""
    for t in inputs:
        if isinstance(t, Tensor) and t.requires_grad:
            assert t.dtype == torch.float64, "gradcheck needs float64 inputs"
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, **kwargs)
    if gradgrad:
        assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def _grads(out: Tensor, inputs: Sequence[Tensor]) -> list[Tensor | None]:
    wanted = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not wanted:
        return []
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    return list(torch.autograd.grad((out * weights).sum(), wanted, allow_unused=True))


def assert_compiles(
    fn: Callable[..., Tensor],
    *args: Any,
    backend: str = "aot_eager",
    rtol: float = 1e-5,
    atol: float = 1e-6,
    **kwargs: Any,
) -> None:
    """``torch.compile(fn, fullgraph=True)`` traces without graph breaks and agrees with eager,
    in value and in the gradients of any input that requires grad.

    ``aot_eager`` checks tracing and the autograd graph without code generation (seconds);
    pass ``backend="inductor"`` to also generate and run code.
    """
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    tensors = [a for a in args if isinstance(a, Tensor)]
    expected = fn(*args, **kwargs)
    expected_grads = _grads(expected, tensors)
    actual = compiled(*args, **kwargs)
    actual_grads = _grads(actual, tensors)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)
    for a, e in zip(actual_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, e, rtol=rtol, atol=atol)


def assert_raises(
    exception: type[BaseException], fragment: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """``fn`` raises ``exception`` with ``fragment`` (a literal substring) in its message."""
    with pytest.raises(exception, match=re.escape(fragment)):
        fn(*args, **kwargs)
