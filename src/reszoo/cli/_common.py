"""What several commands share: help texts, list types, the output-path check, JSON output, warnings as lines.

Like the command modules, this imports only the standard library and plain-data reszoo modules at
the top (``reszoo --help`` imports no torch); the library is imported inside the functions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reszoo.utils.choices import DEVICE_TYPES

WEIGHTS_HELP = (
    "a weight name (reszoo list --pretrained), hf-hub:owner/repo[@revision], a folder written by save_pretrained, "
    "or a run folder of reszoo train"
)
DEVICE_HELP = (
    f"auto (default: cuda, then mps, then cpu), {', '.join(DEVICE_TYPES)} or cuda:N, e.g. cuda:1 for the second GPU"
)


def int_list(text: str) -> tuple[int, ...]:
    """An argparse ``type``: comma-separated integers (``32000,48000``; an empty text is the empty tuple)."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, e.g. 32000,48000; received {text!r}"
        ) from None


def float_list(text: str) -> tuple[float, ...]:
    """An argparse ``type``: comma-separated numbers (``0.485,0.456,0.406``)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, e.g. 0.485,0.456,0.406; received {text!r}"
        ) from None


def check_output_path(option: str, value: str | None, *, stdout: bool = False) -> None:
    """An output option (``--json``, ``--csv``, ``--plot``) names a file in an existing folder (or ``-``,
    standard output, where ``stdout``): refused before anything runs, so a long run cannot end unwritable.

    Args:
        option: the option's name without dashes, as in the message (``"json"``).
        value: what was given; ``None`` (not given) passes.
        stdout: whether ``-`` is accepted.

    Raises:
        InvalidArgumentError: a folder, or a file whose folder does not exist.
    """
    from reszoo.errors import InvalidArgumentError

    if value is None or (stdout and value == "-"):
        return
    path = Path(value)
    if path.is_dir():
        takes = "a file path or -" if stdout else "a file path"
        raise InvalidArgumentError(f"--{option} takes {takes}; received --{option} {value}, which is a folder.")
    if not path.parent.is_dir():
        raise InvalidArgumentError(
            f"--{option} must name a file in an existing folder; received --{option} {value} ({path.parent} is not "
            "a folder)."
        )


def check_json_path(value: str | None) -> None:
    """``--json`` names ``-`` (standard output) or a file in an existing folder: refused before anything runs."""
    check_output_path("json", value, stdout=True)


def emit_json(data: Any, value: str) -> None:
    """Print ``data`` as JSON (``-``) or write it to the file ``value``, atomically."""
    from reszoo.utils.fileio import atomic_path

    text = json.dumps(data, indent=2)
    if value == "-":
        print(text)
        return
    with atomic_path(value) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """The library's warnings (skipped image files, a replaced head) as ``warning: ...`` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                print(f"warning: {w.message}", file=sys.stderr)
