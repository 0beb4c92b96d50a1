"""Stopping a long run cleanly: SIGINT (Ctrl-C) and SIGTERM become a request to stop at a safe point.

The training loop (:mod:`reszoo.train.loop`) asks :meth:`StopRequest.agreed` after each step; when it
answers a signal number, the loop writes a checkpoint and raises
:class:`~reszoo.errors.TrainingInterrupted`, which the ``reszoo`` command turns into exit code
130 (SIGINT) or 143 (SIGTERM), as a shell reports a process stopped by those signals.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import torch

__all__ = ["StopRequest"]


class StopRequest:
    """While active, SIGINT and SIGTERM set :attr:`signum` instead of stopping the process at once.

    A second Ctrl-C stops at once (``KeyboardInterrupt``): a user who presses it twice will not
    wait. A SIGTERM after the first signal changes nothing (torchrun sends one to every worker
    after a Ctrl-C). Handlers are installed only in the main thread (the only one Python delivers
    signals to) and only when ``enabled``; the previous handlers come back on exit.

    Args:
        enabled: install the handlers (a run with nowhere to save a checkpoint keeps Ctrl-C's
            usual ``KeyboardInterrupt``).

    Example:
        >>> with StopRequest(enabled=True) as stop:
        ...     signal.raise_signal(signal.SIGTERM)  # doctest: +SKIP
        >>> stop.signum == signal.SIGTERM  # doctest: +SKIP
        True
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if self.enabled:
            self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.signum:
            self.signum = signum
            again = " (Ctrl-C again to stop at once, without it)" if signum == signal.SIGINT else ""
            print(
                f"\nreszoo: {signal.Signals(signum).name}: stopping after this step to save a checkpoint{again}",
                file=sys.stderr,
                flush=True,
            )
        elif signum == signal.SIGINT:
            self.__exit__()
            raise KeyboardInterrupt

    def agreed(self, *, iteration: int, every: int, world: int, device: torch.device) -> int:
        """The signal to stop on, or 0; in a distributed run the same answer on every rank.

        One process answers at once. The processes of a distributed run must stop at the same
        step (or the others wait forever in the next collective), so they compare their requests
        every ``every`` iterations with one small all-reduce, and answer 0 in between.
        """
        if world == 1 or not self.enabled:
            return self.signum
        if iteration % every:
            return 0
        flag = torch.tensor([self.signum], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())
