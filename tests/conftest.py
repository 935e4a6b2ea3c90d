"""Suite-wide settings: deterministic Hypothesis profile, fixed seeds, few threads."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Deterministic and bounded: the whole suite must stay well under 15 minutes on 2 cores.
settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist runs one worker per core; more intra-op threads would oversubscribe them.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
