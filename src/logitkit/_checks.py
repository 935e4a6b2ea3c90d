"""Argument validation shared by every public function.

Every check raises with a message that names the argument, what was expected and what was
received, e.g. ``ValueError: target: expected class indices in [0, 10) or ignore_index=-100,
got values in [-3, 12]``.

Two kinds of checks exist:

* *static* checks look only at types, dtypes and shapes; they always run (they cost nothing and
  ``torch.compile`` evaluates them at trace time);
* *value* checks read tensor data (ranges, NaN). They synchronise with the device and would break a
  ``torch.compile(fullgraph=True)`` graph, so they are skipped while compiling and can be switched
  off globally with :func:`set_validate_args` (as ``torch.distributions`` does), e.g. in a
  production training loop on GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_class_weight",
    "check_dim",
    "check_finite",
    "check_floating",
    "check_in_unit_interval",
    "check_index_target",
    "check_label_smoothing",
    "check_mask",
    "check_nonnegative_values",
    "check_number",
    "check_one_of",
    "check_positive",
    "check_reduction",
    "check_same_shape",
    "check_temperature",
    "check_tensor",
    "set_validate_args",
    "validate_args_enabled",
]

_VALIDATE_ARGS = True

REDUCTIONS = ("mean", "sum", "none")


def set_validate_args(value: bool) -> None:
    """Turn the data-dependent argument checks of all logitkit functions on or off.

    Value checks (class indices in range, targets in [0, 1], positive priors, ...) read tensor
    data, which synchronises with an accelerator. They are on by default; turn them off once a
    training loop is known to be correct. Static checks (types, shapes, dtypes) always run.
    """
    global _VALIDATE_ARGS
    _VALIDATE_ARGS = bool(value)


def validate_args_enabled() -> bool:
    """Whether value checks run now: enabled globally and not inside ``torch.compile`` tracing."""
    return _VALIDATE_ARGS and not torch.compiler.is_compiling()


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"Tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    return repr(value)


def check_tensor(value: object, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(value: object, name: str) -> Tensor:
    tensor = check_tensor(value, name)
    if not tensor.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def check_dim(input: Tensor, dim: int, name: str = "dim") -> int:
    """Normalise ``dim`` against ``input.dim()`` (negative counts from the end)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{name}: expected an int, got {_describe(dim)}")
    ndim = max(input.dim(), 1)
    if not -ndim <= dim < ndim:
        raise IndexError(
            f"{name}: expected a dimension in [{-ndim}, {ndim - 1}] for an input of shape "
            f"{tuple(input.shape)}, got {dim}"
        )
    return dim % ndim


def check_one_of(value: object, name: str, choices: Sequence[object]) -> None:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")


def check_reduction(reduction: str) -> None:
    check_one_of(reduction, "reduction", REDUCTIONS)


def check_positive(value: float | Tensor, name: str, *, allow_zero: bool = False) -> None:
    """A positive finite number or a tensor of them (e.g. a temperature)."""
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name}: expected a float or a floating-point tensor, got {value.dtype}")
        if validate_args_enabled() and value.numel():
            bad = ~torch.isfinite(value) | (value < 0 if allow_zero else value <= 0)
            if bool(bad.any()):
                sign = "non-negative" if allow_zero else "positive"
                got = value.detach().flatten()[bad.flatten()][0].item()
                raise ValueError(f"{name}: expected {sign} finite values, got {got}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float or a tensor, got {_describe(value)}")
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        sign = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name}: expected a {sign} finite number, got {value!r}")


def check_temperature(temperature: float | Tensor, input: Tensor, name: str = "temperature") -> None:
    """A positive finite float, or a tensor of them broadcastable to ``input``."""
    check_positive(temperature, name)
    if isinstance(temperature, Tensor):
        try:
            torch.broadcast_shapes(temperature.shape, input.shape)
        except RuntimeError:
            raise ValueError(
                f"{name}: expected a float or a tensor broadcastable to the input's "
                f"{tuple(input.shape)}, got shape {tuple(temperature.shape)}"
            ) from None


def check_number(
    value: object,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """A Python number (an int when ``integer``) in the interval from ``low`` to ``high``.

    The message spells the interval, e.g. ``gamma: expected a number in [0, 1), got 1.0``.
    """
    kind = "an integer" if integer else "a number"
    allowed = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise TypeError(f"{name}: expected {kind}, got {_describe(value)}")
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below and math.isfinite(value)):
        raise ValueError(f"{name}: expected {kind} in {interval}, got {value!r}")


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}")


def check_mask(mask: object, input: Tensor, name: str = "mask") -> Tensor:
    """A boolean mask (True keeps an entry) broadcastable to ``input``."""
    tensor = check_tensor(mask, name)
    if tensor.dtype != torch.bool:
        raise TypeError(f"{name}: expected a bool tensor (True keeps an entry), got {tensor.dtype}")
    try:
        shape = torch.broadcast_shapes(tensor.shape, input.shape)
    except RuntimeError:
        shape = None
    if shape != input.shape:
        raise ValueError(
            f"{name}: expected a shape broadcastable to the input's {tuple(input.shape)}, "
            f"got {tuple(tensor.shape)}"
        )
    return tensor


def check_in_unit_interval(value: Tensor, name: str) -> None:
    """Values in [0, 1] and not NaN (probability targets, soft labels)."""
    if not validate_args_enabled() or value.numel() == 0:
        return
    # One pass: NaN propagates into both extremes.
    lo, hi = (v.item() for v in torch.aminmax(value.detach()))
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{name}: expected values in [0, 1], got NaN")
    if lo < 0 or hi > 1:
        raise ValueError(f"{name}: expected values in [0, 1], got values in [{lo:g}, {hi:g}]")


def check_finite(value: Tensor, name: str) -> None:
    """No NaN and no infinity (features, sample values)."""
    if not validate_args_enabled() or value.numel() == 0:
        return
    detached = value.detach()
    if bool(torch.isnan(detached).any()):
        raise ValueError(f"{name}: expected finite values, got NaN")
    if bool(torch.isinf(detached).any()):
        raise ValueError(f"{name}: expected finite values, got infinity")


def check_nonnegative_values(value: Tensor, name: str) -> None:
    if not validate_args_enabled() or value.numel() == 0:
        return
    detached = value.detach()
    bad = torch.isnan(detached) | (detached < 0)
    if bool(bad.any()):
        got = detached.flatten()[bad.flatten()][0].item()
        raise ValueError(f"{name}: expected non-negative values, got {got:g}")


def check_index_target(
    target: Tensor,
    num_classes: int,
    ignore_index: int | None,
    *,
    name: str = "target",
    ignore_name: str = "ignore_index",
) -> None:
    """Class indices in ``[0, num_classes)``, or equal to ``ignore_index`` (called ``ignore_name``
    in the message, e.g. ``pad_index``)."""
    if not validate_args_enabled() or target.numel() == 0:
        return
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bool(bad.any()):
        lo, hi = target.min().item(), target.max().item()
        allowed = f"[0, {num_classes})"
        if ignore_index is not None:
            allowed += f" or {ignore_name}={ignore_index}"
        raise ValueError(f"{name}: expected class indices in {allowed}, got values in [{lo}, {hi}]")


def check_class_weight(weight: object, num_classes: int, name: str = "weight") -> Tensor:
    """A 1-D floating tensor of ``num_classes`` non-negative per-class weights."""
    tensor = check_floating(weight, name)
    if tensor.dim() != 1 or tensor.shape[0] != num_classes:
        raise ValueError(
            f"{name}: expected a 1-D tensor of {num_classes} per-class values, "
            f"got shape {tuple(tensor.shape)}"
        )
    if tensor.requires_grad:
        raise ValueError(
            f"{name}: class weights are treated as constants; pass {name}.detach() "
            "(gradients with respect to them are not computed)"
        )
    check_nonnegative_values(tensor, name)
    return tensor


def check_label_smoothing(label_smoothing: float) -> None:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)):
        raise TypeError(f"label_smoothing: expected a float, got {_describe(label_smoothing)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: expected a value in [0, 1], got {label_smoothing!r}")
