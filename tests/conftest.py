"""Shared test setup: hypothesis profiles and deterministic torch."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# torch ops have no fixed time budget on a busy 2-core CI machine, so no deadlines; "ci" runs
# fewer examples than "dev" (HYPOTHESIS_PROFILE=dev) to keep the suite within minutes.
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
