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


# Registered networks whose code a cheaper registered name already runs in the quick suite: the same
# blocks and parts at another depth or width (preresnet20 and preresnet164 for the pre-activation CIFAR
# nets and WRNs, resnext29_32x4d for grouped and wide bottlenecks, resnetv2_50, resnet50d, seresnet50).
# Their rows of the registry-wide tests (a test parametrised over every registered model, or over the
# registry's architectures as test_tracing's dynamo cases are) run with the slow tests; tests that name
# them on purpose (the exact oracles of tests/test_family.py and test_models.py) are not affected.
REGISTRY_SLOW = frozenset(
    {
        "preresnet56", "preresnet110", "preresnet1001", "wrn16_10", "wrn28_10", "wrn40_8",
        "resnext29_16x64d", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
        "wide_resnet50_2", "wide_resnet101_2", "resnetv2_101", "resnet101d",
    }
)  # fmt: skip


def _registry_rows(item: pytest.Item) -> set[str]:
    """The model names a test row runs: its ``name`` parameter, or the names a test_tracing
    architecture case stands for (its id: ``a+b@2blocks``)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return set()
    if isinstance(callspec.params.get("name"), str):
        return {callspec.params["name"]}
    if "@" in callspec.id:
        return set(callspec.id.split("@")[0].split("-")[-1].split("+"))
    return set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import reszoo

    registry = set(reszoo.list_models())
    rows: dict[tuple[str, str], list[tuple[pytest.Item, set[str]]]] = {}
    for item in items:
        names = _registry_rows(item)
        if names:
            rows.setdefault((str(item.path), item.originalname), []).append((item, names))
    for test_rows in rows.values():
        if set().union(*(names for _, names in test_rows)) >= registry:  # a registry-wide test
            for item, names in test_rows:
                if names <= REGISTRY_SLOW:
                    item.add_marker(pytest.mark.slow)


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
