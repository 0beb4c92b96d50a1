"""One measurement in isolation: nothing it does leaks into the next, and its row says how it ran.

:func:`run_isolated` runs a measurement (build, warm-up, timing) and, in order:

1. resets torch.compile for a compiled row (:mod:`reszoo.bench.compiling`) and frees cached
   device memory, so earlier rows' graphs and memory pools are gone;
2. makes the row's device current (``torch.cuda.device``): the timer synchronises the current
   device, and streams and graphs are made on it, so ``cuda:1`` is timed on GPU 1;
3. switches cuDNN's autotuner on for CUDA and sets the fp32 precision of the row's dtype (IEEE, or
   TF32 for a tf32 row), both put back afterwards;
4. after warm-up (:meth:`Row.after_warmup`), synchronises and restarts the peak-memory counter, so
   "peak MB" is what the timed steps need, not cuDNN's autotuning or compile buffers (kept as
   ``warmup_peak_bytes``);
5. turns an out-of-memory or other ``RuntimeError`` into the row's status instead of ending a
   sweep (a fatal device error still propagates: the CUDA context is gone);
6. frees memory again once the failure handler is left (its traceback pinned the step's
   tensors), and resets torch.compile after a compiled row.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from reszoo.bench.compiling import CompileReport, CompileWatch, reset_compiler
from reszoo.utils.accelerator import Accelerator, accelerator, cudnn_benchmark, failure_kind, fp32_math, tf32_enabled

__all__ = ["Row", "run_isolated"]

T = TypeVar("T")


@dataclass
class Row:
    """What one isolated measurement found out about itself; :meth:`fill` copies it onto a result."""

    device: torch.device
    acc: Accelerator
    watch: CompileWatch | None = None
    status: str = "ok"
    error: str | None = None
    warmup_peak_bytes: int | None = None
    peak_bytes: int | None = None
    fp32_flags: dict[str, str] = field(default_factory=dict)
    cudnn_benchmark: bool | None = None
    compile_report: CompileReport | None = None

    def after_first_step(self) -> None:
        """The first step compiled what it had to: later compilations are recompiles."""
        if self.watch is not None:
            self.watch.mark_first_step()

    def after_warmup(self) -> None:
        """Wait for the warm-up to finish, keep its peak memory, and count the timed steps' peak afresh."""
        self.acc.synchronize(self.device)
        self.warmup_peak_bytes = self.acc.peak_memory_bytes(self.device)
        self.acc.reset_peak_memory(self.device)

    def after_timing(self) -> None:
        self.acc.synchronize(self.device)
        self.peak_bytes = self.acc.peak_memory_bytes(self.device)

    def fill(self, result: Any, *, memory: bool = True) -> None:
        """Copy status, memory (unless ``memory=False``), precision, autotuner and compile facts onto
        ``result`` (a ``BenchResult``)."""
        result.status, result.error = self.status, self.error
        if memory and self.status == "ok" and self.peak_bytes is not None:
            result.peak_memory_mb = self.peak_bytes / 2**20
        if memory and self.warmup_peak_bytes is not None:
            result.extra["warmup_peak_memory_mb"] = self.warmup_peak_bytes / 2**20
        result.extra["fp32_precision"] = dict(self.fp32_flags)
        result.tf32 = tf32_enabled(self.fp32_flags) if self.device.type == "cuda" else None
        result.cudnn_benchmark = self.cudnn_benchmark
        report = self.compile_report
        if report is not None:
            result.compiled, result.recompiles = report.compiled, report.recompiles
            result.graph_breaks = report.graph_breaks
            warning = report.warning() if self.status == "ok" else None
            if warning:
                result.warnings.append(warning)


def _free(acc: Accelerator, device: torch.device) -> None:
    gc.collect()
    acc.empty_cache(device)


def run_isolated(body: Callable[[Row], T], device: torch.device, *, dtype: str, compiled: bool) -> tuple[Row, T | None]:
    """Run ``body(row)`` as one isolated measurement on ``device``; returns the :class:`Row` and
    what ``body`` returned (None when it failed: the row's ``status`` says how).

    Args:
        body: the measurement (build, warm-up, timing), told of its progress through ``row``.
        device: the row's device.
        dtype: the row's dtype (``"tf32"`` enables TF32; any other means IEEE fp32 for fp32 math).
        compiled: the row uses torch.compile (reset before and after, counters watched).

    Raises:
        RuntimeError: a fatal device error (see :func:`reszoo.utils.accelerator.failure_kind`).
    """
    acc = accelerator(device)
    if compiled:
        reset_compiler()
    _free(acc, device)
    row = Row(device, acc)
    value: T | None = None
    with (
        acc.scope(device),
        cudnn_benchmark(device) as autotune,
        fp32_math("tf32" if dtype == "tf32" else "ieee") as flags,
    ):
        row.fp32_flags, row.cudnn_benchmark = flags, autotune
        row.watch = CompileWatch() if compiled else None
        acc.reset_peak_memory(device)
        try:
            value = body(row)
        except RuntimeError as err:  # torch.OutOfMemoryError and dynamo's errors are RuntimeErrors
            kind = failure_kind(err)
            if kind == "fatal":
                raise
            row.status = kind
            row.error = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if row.watch is not None:
            row.compile_report = row.watch.report()
    # Past the except block Python has dropped the error and its traceback, which pinned the
    # failed step's tensors: only now can they be freed and their memory handed back.
    if compiled:
        reset_compiler()
    _free(acc, device)
    return row, value
