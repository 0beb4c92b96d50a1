"""torch.compile for a measurement: a fresh compiler per row, static shapes, and a record of what ran.

Every reszoo model shares one code object (``ResNet.forward``), and dynamo keeps at most
``torch._dynamo.config.recompile_limit`` (8) compiled versions of a code object per process.
Without a reset, the ninth model, mode or input shape of a sweep runs eager while its row still
says "compiled"; and from the second batch size on, automatic dynamic shapes compile a
symbolic-shape graph, so the rows of a sweep measure different things. So each compiled
measurement starts with :func:`reset_compiler` (which also frees the memory pools of CUDA-graph
trees), compiles with ``dynamic=False``, and watches dynamo's counters (:class:`CompileWatch`)
to report whether it really ran compiled, how many graphs and graph breaks it had, and how many
times it recompiled after its first step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["CompileReport", "CompileWatch", "compile_model", "reset_compiler"]


def reset_compiler() -> None:
    """Forget every compiled graph of this process (and free CUDA-graph-tree memory pools)."""
    torch._dynamo.reset()


def compile_model(model: nn.Module, *, mode: str | None, backend: str = "inductor") -> Callable[..., Any]:
    """``torch.compile(model, mode=mode, dynamic=False)``; another ``backend`` (e.g. ``"eager"``) takes no mode."""
    if backend == "inductor":
        return torch.compile(model, mode=mode, dynamic=False)
    return torch.compile(model, backend=backend, dynamic=False)


@dataclass(frozen=True)
class CompileReport:
    """What dynamo did during one measurement.

    Attributes:
        graphs: graphs compiled (1 for a reszoo model without graph breaks).
        graph_breaks: graph breaks met (each splits the model into more graphs).
        recompiles: frames compiled after the first step (guards failed; the timing may include them).
        eager_frames: frames dynamo gave up on and ran eager (its recompile limit, an error).
        limit_hit: dynamo's recompile limit was reached.
    """

    graphs: int
    graph_breaks: int
    recompiles: int
    eager_frames: int
    limit_hit: bool

    @property
    def compiled(self) -> bool:
        """True when the model ran as compiled graphs: at least one graph and no frame left eager."""
        return self.graphs > 0 and self.eager_frames == 0 and not self.limit_hit

    def warning(self) -> str | None:
        """A row warning when the row did not run as asked (not compiled, or recompiled), else None."""
        if not self.compiled:
            why = "dynamo's recompile limit was hit" if self.limit_hit else f"{self.graphs} graphs compiled"
            return (
                f"not compiled: {why}, {self.eager_frames} frames ran eager; this row times eager "
                "execution (see TORCH_LOGS=recompiles)"
            )
        if self.recompiles:
            return (
                f"recompiled: {self.recompiles} recompiles after the first step; the timing may include "
                "compilation (see TORCH_LOGS=recompiles)"
            )
        return None


def _snapshot() -> dict[str, int]:
    counters = torch._dynamo.utils.counters
    unimplemented = counters.get("unimplemented", {})
    return {
        "total": counters["frames"].get("total", 0),
        "ok": counters["frames"].get("ok", 0),
        "graphs": counters["stats"].get("unique_graphs", 0),
        "breaks": sum(counters.get("graph_break", {}).values()),
        "limit": sum(n for reason, n in unimplemented.items() if "recompile limit" in reason.lower()),
    }


class CompileWatch:
    """Dynamo's counters at the start, after the first step and at the end of a measurement.

    Example:
        >>> watch = CompileWatch()          # before the model is compiled
        >>> # ... first step ...
        >>> watch.mark_first_step()
        >>> # ... warm-up and timed steps ...
        >>> watch.report().recompiles
        0
    """

    def __init__(self) -> None:
        self._start = _snapshot()
        self._first: dict[str, int] | None = None

    def mark_first_step(self) -> None:
        """Call after the first step: later compiled frames count as recompiles."""
        self._first = _snapshot()

    def report(self) -> CompileReport:
        end = _snapshot()
        first = self._first or end
        return CompileReport(
            graphs=end["graphs"] - self._start["graphs"],
            graph_breaks=end["breaks"] - self._start["breaks"],
            recompiles=end["total"] - first["total"],
            eager_frames=(end["total"] - end["ok"]) - (self._start["total"] - self._start["ok"]),
            limit_hit=end["limit"] > self._start["limit"],
        )
