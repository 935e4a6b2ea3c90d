"""Shared bits of the claim-experiment tests: skip (or fail under LOGITKIT_REQUIRE_DATA=1) without data."""

from __future__ import annotations

import pytest

from logitkit import data
from logitkit.data._paths import require_data


def need(*names: str) -> None:
    for name in names:
        info = data.get(name)
        if not info.available():
            message = f"dataset {name} missing; obtain with: {info.obtain[0]}"
            if require_data():
                pytest.fail(message)
            pytest.skip(message)
