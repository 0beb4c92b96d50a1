"""The ``reszoo`` command line: a thin front end over the library.

Each subcommand lives in its own module under ``reszoo.commands`` and exposes
``register(subparsers)``; heavy imports happen inside the handlers so ``reszoo --help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from reszoo import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reszoo", description="ResNets of He et al. 2015, faithful to the paper and fast."
    )
    parser.add_argument("--version", action="version", version=f"reszoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # Errors meant for the user (bad names, bad values, missing files) print as one line,
        # not a traceback; anything else is a bug and keeps its traceback.
        print(f"reszoo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
