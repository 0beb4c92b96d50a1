"""The ``reszoo`` command line: a thin front end over the library.

Each group of subcommands lives in its own module under ``reszoo.cli`` and exposes
``register(subparsers)``; what several share is in ``_common`` (and the recipe options of
``train`` and ``experiment`` in ``_recipe_options``), and no command module imports another. At
the top they import only the standard library and plain data (the named choices of
:mod:`reszoo.utils.choices`, the :class:`~reszoo.train.recipes.Recipe`), and the library inside
their handlers, so ``reszoo --help`` and ``reszoo COMMAND --help`` import no torch and cost little
more than Python.

Error policy: the library's own errors (:class:`reszoo.errors.ReszooError`) and the operating
system's (a missing file, a permission, a full disk) print as one line on stderr; a wrong
argument exits with 2, a failure at run time with 1. Anything else is a bug and keeps its
traceback. Output piped into ``head`` ends quietly. A run stopped by Ctrl-C or SIGTERM
(:class:`reszoo.errors.TrainingInterrupted`, after its checkpoint) says how to resume and exits
with 130 or 143, as a shell reports those signals; Ctrl-C anywhere else exits with 130 quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from reszoo._version import __version__

# The modules of this package that register subcommands (models: list and info; train: train and
# experiment; weights: download and convert), in the order `reszoo --help` lists their commands.
COMMANDS = ("bench", "diagnose", "evaluate", "export", "models", "predict", "train", "weights")
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reszoo", description="ResNets of He et al. 2015, faithful to the paper and fast."
    )
    parser.add_argument("--version", action="version", version=f"reszoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def exit_code(err: BaseException) -> int | None:
    """The exit code for an expected failure, or ``None`` for a bug (which keeps its traceback)."""
    from reszoo.errors import ReszooError, TrainingInterrupted, UsageError

    if isinstance(err, TrainingInterrupted):
        return err.exit_code
    if isinstance(err, UsageError):
        return EXIT_USAGE
    if isinstance(err, (ReszooError, OSError)):
        return EXIT_RUNTIME
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`reszoo list | head`): stop quietly, as cat and grep do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print(f"\nreszoo {args.command}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as err:
        code = exit_code(err)
        if code is None:
            raise
        label = "stopped" if code > EXIT_USAGE else "error"
        print(f"reszoo {args.command}: {label}: {one_line(err)}", file=sys.stderr)
        return code


def one_line(err: BaseException) -> str:
    """The error's own message: an error raised in a DataLoader worker arrives wrapped in the worker's
    traceback ("Caught X in DataLoader worker process 0. Original Traceback ..."), whose last line is it."""
    text = str(err)
    if "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


if __name__ == "__main__":
    sys.exit(main())
