"""Timing several implementations side by side: round-robin in one process, on ``torch.utils.benchmark``'s timer.

A busy machine slows every variant alike when they take turns, so the ratios stay fair where
absolute times would not. The benchmark package (:mod:`reszoo.bench`) measures with it, and so
does ``optimize_for_inference(backend="auto")`` when it chooses the faster path on the caller's batch.

Example:
    >>> times = interleaved({"a": lambda: None, "b": lambda: None}, rounds=2, number=1, warmup=0)
    >>> sorted(times), len(times["a"])
    (['a', 'b'], 2)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reszoo.utils.checks import check_int, check_number

__all__ = ["check_rounds", "interleaved", "round_robin", "torch_benchmark"]


def torch_benchmark() -> Any:
    """``torch.utils.benchmark``, imported on first use (it pulls in the slow ``torch.utils.cpp_extension``).

    That import logs a "No CUDA runtime is found" warning on CUDA builds of torch without a GPU;
    it says nothing about timing, so it is silenced for the import (and only for it).
    """
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        log.setLevel(level)
    return benchmark


def check_rounds(rounds: int, number: int, warmup: int) -> None:
    check_int("rounds", rounds, minimum=1)
    check_int("number", number, minimum=1)
    check_int("warmup", warmup, minimum=0)


def interleaved(
    steps: dict[str, Callable[[], Any]], *, rounds: int = 10, number: int = 2, warmup: int = 2, pause: float = 0.0
) -> dict[str, list[float]]:
    """Time several step callables round-robin; returns per-step times in seconds for each.

    Each round times every variant for ``number`` steps in turn (with ``torch.utils.benchmark``'s
    synchronising timer), forwards on even rounds and backwards on odd ones, so a disturbance on
    a shared machine falls on all variants, not on one. ``pause`` seconds are slept, untimed,
    before each block: thread pools that spin-wait after their work (ONNX Runtime's intra-op
    threads do) are then idle when the next variant starts, instead of taking its cores.
    """
    check_rounds(rounds, number, warmup)
    check_number("pause", pause, minimum=0)
    return round_robin(steps, rounds=rounds, number=number, warmup=warmup, pause=pause)


def round_robin(
    steps: dict[str, Callable[[], Any]], *, rounds: int, number: int, warmup: int, pause: float = 0.0
) -> dict[str, list[float]]:
    """:func:`interleaved` with its options already checked."""
    # The timer function of torch.utils.benchmark synchronises CUDA before reading the clock;
    # Timer.timeit would add two untimed warm-up steps per call, doubling a round's cost.
    timer = torch_benchmark().utils.timer.timer
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {key: [] for key in steps}
    order = list(steps)
    for i in range(rounds):
        # Alternate the order each round so that neither variant always runs first (right after
        # the other's caches and allocations).
        for key in order if i % 2 == 0 else order[::-1]:
            step = steps[key]
            if pause:
                time.sleep(pause)
            start = timer()
            for _ in range(number):
                step()
            times[key].append((timer() - start) / number)
    return times
