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

# `pytest -n 2` runs two workers on a 2-core machine; two torch threads each would oversubscribe
# the cores (measured: small tests 10-40x slower under load). One thread per worker keeps every
# core busy without contention. Tests that need more threads set them themselves.
torch.set_num_threads(1)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session):
    """An xdist worker collects its garbage before it reports finished, then freezes what is left.

    Once the last worker reports finished, execnet gives each worker 5 s to return, then sends it a
    SIGINT. After that report pytest still walks the worker's whole heap twice (gc.collect() at
    unconfigure and at cleanup, for unraisable exceptions): about a million objects after the suite,
    1 to 6 s a walk on a busy 2-core machine (measured). The SIGINT then lands in a finaliser and
    prints a PytestUnraisableExceptionWarning with a KeyboardInterrupt after a green run. Here,
    before the report, one collection frees the garbage (its finalisers run, and anything they raise is
    still reported), and gc.freeze() leaves the survivors out of pytest's two later collections."""
    import gc

    if hasattr(session.config, "workerinput"):  # an xdist worker
        gc.collect()
        gc.freeze()


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


# The one tiny network of the test suite: a resnet20-shaped CIFAR net (one block per stage, widths
# 4/8/16) that builds and runs in milliseconds. Tests take it as a fixture; module-level code (a
# parametrize list, a subprocess script) imports TINY_OVERRIDES from here (tests/ is on sys.path).
TINY_OVERRIDES: dict = {"depths": (1, 1, 1), "widths": (4, 8, 16), "stem_width": 4}
# The same overrides on the command line (`reszoo train resnet20 ...`).
TINY_ARGS: tuple[str, ...] = ("-M", "depths=1,1,1", "-M", "widths=4,8,16", "-M", "stem_width=4")


@pytest.fixture
def tiny_overrides() -> dict:
    """Config overrides that turn resnet20 into the tiny test network."""
    return dict(TINY_OVERRIDES)


@pytest.fixture
def tiny_config():
    """The tiny test network's ResNetConfig."""
    from reszoo import ResNetConfig

    return ResNetConfig(**TINY_OVERRIDES)


@pytest.fixture
def tiny_model(tiny_config):
    """A factory of fresh tiny networks: ``tiny_model()`` or ``tiny_model(num_classes=100)``."""
    from reszoo import ResNet

    return lambda **overrides: ResNet(tiny_config, **overrides)


@pytest.fixture
def hub_server(tmp_path, monkeypatch):
    """Empty reszoo and Hugging Face caches, and a fake Hugging Face Hub on 127.0.0.1 (tests/_http.py)."""
    import sys
    from pathlib import Path

    import huggingface_hub.constants as hf_constants

    sys.path.insert(0, str(Path(__file__).parent))
    from _http import FileServer

    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path / "reszoo"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with FileServer() as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        yield srv


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test: a shell that starts a job in the background (as a
    CI runner may) leaves SIGINT ignored, and then no Ctrl-C would reach the process at all."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
