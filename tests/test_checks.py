"""Argument validation helpers (_checks.py)."""

from __future__ import annotations

import pytest
import torch

import logitkit
from logitkit import _checks
from tests.helpers import assert_raises


def test_messages_name_argument_expected_and_received():
    assert_raises(TypeError, "weight: expected a torch.Tensor, got int", _checks.check_tensor, 3, "weight")
    assert_raises(ValueError, "k: expected one of 1, 2, got 3", _checks.check_one_of, 3, "k", (1, 2))
    assert_raises(
        ValueError,
        "tau: expected a non-negative finite number, got -1",
        _checks.check_positive,
        -1,
        "tau",
        allow_zero=True,
    )
    _checks.check_positive(0.0, "tau", allow_zero=True)
    assert_raises(
        TypeError,
        "tau: expected a float or a tensor, got True",
        _checks.check_positive,
        True,
        "tau",
    )
    assert_raises(
        ValueError,
        "b: expected the shape of a (2,), got (3,)",
        _checks.check_same_shape,
        torch.zeros(2),
        torch.zeros(3),
        "a",
        "b",
    )
    assert_raises(
        ValueError,
        "t: expected values in [0, 1], got values in [0, 2]",
        _checks.check_in_unit_interval,
        torch.tensor([0.0, 2.0]),
        "t",
    )
    assert_raises(
        ValueError,
        "p: expected non-negative values, got nan",
        _checks.check_nonnegative_values,
        torch.tensor([1.0, float("nan")]),
        "p",
    )
    assert_raises(
        TypeError,
        "label_smoothing: expected a float, got None",
        _checks.check_label_smoothing,
        None,
    )


def test_check_dim_normalises():
    x = torch.zeros(2, 3, 4)
    assert _checks.check_dim(x, -1) == 2
    assert _checks.check_dim(torch.tensor(1.0), 0) == 0
    assert_raises(
        IndexError,
        "dim: expected a dimension in [-3, 2] for an input of shape (2, 3, 4), got 3",
        _checks.check_dim,
        x,
        3,
    )


def test_value_checks_skipped_when_disabled_static_checks_kept():
    logitkit.set_validate_args(False)
    try:
        assert not _checks.validate_args_enabled()
        _checks.check_in_unit_interval(torch.tensor([5.0]), "t")
        with pytest.raises(TypeError):
            _checks.check_tensor(1, "x")
    finally:
        logitkit.set_validate_args(True)
    assert _checks.validate_args_enabled()


def test_index_target_check():
    _checks.check_index_target(torch.tensor([0, 2, -100]), 3, -100)
    assert_raises(
        ValueError,
        "target: expected class indices in [0, 3), got values in [0, 3]",
        _checks.check_index_target,
        torch.tensor([0, 3]),
        3,
        None,
    )


def test_check_finite():
    _checks.check_finite(torch.tensor([1.0, -2.0]), "x")
    _checks.check_finite(torch.empty(0), "x")
    assert_raises(
        ValueError,
        "x: expected finite values, got NaN",
        _checks.check_finite,
        torch.tensor([float("nan")]),
        "x",
    )
    assert_raises(
        ValueError,
        "x: expected finite values, got infinity",
        _checks.check_finite,
        torch.tensor([1.0, -float("inf")]),
        "x",
    )
    logitkit.set_validate_args(False)
    try:
        _checks.check_finite(torch.tensor([float("nan")]), "x")
    finally:
        logitkit.set_validate_args(True)


def test_check_number_spells_the_interval():
    _checks.check_number(0.0, "gamma", low=0.0, high=1.0, high_open=True)
    _checks.check_number(3, "nodes", low=1, integer=True)
    assert_raises(
        ValueError,
        "gamma: expected a number in [0, 1), got 1.0",
        _checks.check_number,
        1.0,
        "gamma",
        low=0.0,
        high=1.0,
        high_open=True,
    )
    assert_raises(
        ValueError,
        "scale: expected a number in (0, inf], got 0",
        _checks.check_number,
        0,
        "scale",
        low=0.0,
        low_open=True,
    )
    assert_raises(
        ValueError,
        "level: expected a number in [0, inf], got inf",
        _checks.check_number,
        float("inf"),
        "level",
        low=0.0,
    )
    assert_raises(TypeError, "m: expected an integer, got 4.0", _checks.check_number, 4.0, "m", integer=True)
    assert_raises(TypeError, "b: expected a number, got True", _checks.check_number, True, "b")
