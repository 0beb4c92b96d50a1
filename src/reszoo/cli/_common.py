"""What several commands share: help texts, list types, the output-path check, JSON reports, warnings as lines.

Like the command modules, this imports only the standard library and plain-data reszoo modules at
the top (``reszoo --help`` imports no torch); the library is imported inside the functions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reszoo.utils.choices import DEVICE_TYPES

WEIGHTS_HELP = (
    "a weight name (reszoo list --pretrained), hf-hub:owner/repo[@revision], a folder written by save_pretrained, "
    "or a run folder of reszoo train"
)
# What every output option (--json, --csv, --plot) accepts: cli._common.check_output_path.
OUTPUT_HELP = "a new file or an earlier report of this command; never an input, nor in a model or run folder"
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


# The key every JSON report of a command carries first, valued "reszoo COMMAND": an existing file
# that holds it for the same command may be replaced by the next report; any other file may not.
REPORT_KEY = "report"
# A report to replace is read to recognise it; a file larger than this is no report of ours.
_REPORT_MAX_BYTES = 256 * 2**20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report_marker(command: str) -> str:
    """What a report of ``reszoo COMMAND`` holds under :data:`REPORT_KEY` (a PNG: as its ``Software`` text)."""
    return f"reszoo {command}"


def check_output_path(
    option: str, value: str | None, *, command: str, inputs: Iterable[str | os.PathLike[str]] = (), stdout: bool = False
) -> None:
    """The one rule for a file a command writes (``--json``, ``--csv``, ``--plot``): checked before anything
    runs, so a long run cannot end unwritable, and nothing a user has is replaced by a report.

    An output path names a file in an existing folder (or ``-``, standard output, where ``stdout``),
    and is refused when it is (after resolving symbolic links) one of ``inputs`` or inside an input
    folder, inside a model folder (``config.json`` + ``model.safetensors``) or a run folder
    (``run.json`` + ``recipe.json``), or an existing file that is not an earlier report of the
    same command (a JSON object whose :data:`REPORT_KEY` is ``"reszoo COMMAND"``, ``reszoo bench``'s
    CSV or PNG).

    Args:
        option: the option's name without dashes, as in the message (``"json"``, ``"csv"``, ``"plot"``).
        value: what was given; ``None`` (not given) passes.
        command: the command writing it (``"predict"``): whose earlier report may be replaced.
        inputs: the paths the command reads (files or folders; names that are not paths are ignored).
        stdout: whether ``-`` is accepted.

    Raises:
        InvalidArgumentError: the path is refused (the message says why and what to give instead).
    """
    from reszoo.errors import InvalidArgumentError

    if value is None or (stdout and value == "-"):
        return
    path = Path(value)
    given = f"--{option} {value}"
    if path.is_dir():
        takes = "a file path or -" if stdout else "a file path"
        raise InvalidArgumentError(f"--{option} takes {takes}; received {given}, which is a folder.")
    if not path.parent.is_dir():
        raise InvalidArgumentError(
            f"--{option} must name a file in an existing folder; received {given} ({path.parent} is not a folder)."
        )
    instead = "give another file" + (" (or - for standard output)" if stdout else "")
    target = path.resolve()
    holder = _model_or_run_folder(target)
    if holder is not None:
        raise InvalidArgumentError(
            f"{given} is inside the {holder[1]} {holder[0]}, whose files reszoo reads back; {instead}."
        )
    for item in inputs:
        source = Path(item)
        if not source.exists():
            continue  # a weight name, not a path
        source = source.resolve()
        if target == source or source in target.parents:
            where = "is one of the inputs" if target == source else f"is inside the input folder {item}"
            raise InvalidArgumentError(f"{given} {where}; a report never replaces or joins what it reads: {instead}.")
    if (path.exists() or path.is_symlink()) and not _is_report(path, option, command):
        raise InvalidArgumentError(
            f"{given} names an existing file that is not a {report_marker(command)} report, and would replace it; "
            f"{instead}, or remove that file first (it is unchanged)."
        )


def _model_or_run_folder(target: Path) -> tuple[Path, str] | None:
    """The nearest folder above ``target`` that a model or a run lives in, and which of the two."""
    from reszoo.train.runfolder import RECIPE_NAME, RUN_NAME
    from reszoo.weights.hub import CONFIG_NAME, WEIGHTS_NAME

    # A run folder by the two files reszoo writes first (a checkpoint.pt alone may be anyone's).
    for folder in target.parents:
        if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
            return folder, "model folder"
        if (folder / RUN_NAME).is_file() and (folder / RECIPE_NAME).is_file():
            return folder, "run folder"
    return None


def _is_report(path: Path, option: str, command: str) -> bool:
    """Whether the existing file ``path`` is an earlier report of ``reszoo command`` (read, never written)."""
    try:
        if not path.is_file() or path.stat().st_size > _REPORT_MAX_BYTES:
            return False
        raw = path.read_bytes()
    except OSError:
        return False
    if option == "plot":
        return _png_software(raw) == report_marker(command)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if option == "csv":  # reszoo bench's CSV: one column per BenchResult field, model and mode first
        header = text.partition("\n")[0].strip().split(",")
        return command == "bench" and header[:2] == ["model", "mode"] and "images_per_s" in header
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get(REPORT_KEY) == report_marker(command)


def _png_software(raw: bytes) -> str | None:
    """The ``Software`` text of a PNG (its tEXt chunks before the image data), or None."""
    if not raw.startswith(_PNG_SIGNATURE):
        return None
    at = len(_PNG_SIGNATURE)
    while at + 8 <= len(raw):
        size, kind = int.from_bytes(raw[at : at + 4], "big"), raw[at + 4 : at + 8]
        body = raw[at + 8 : at + 8 + size]
        if kind == b"tEXt" and body.startswith(b"Software\x00"):
            return body[len(b"Software\x00") :].decode("latin-1")
        if kind in (b"IDAT", b"IEND"):
            return None
        at += 12 + size  # length, type, data, CRC
    return None


def check_json_path(value: str | None, *, command: str, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """``--json`` names ``-`` (standard output) or a file :func:`check_output_path` allows."""
    check_output_path("json", value, command=command, inputs=inputs, stdout=True)


def emit_json(data: dict[str, Any], value: str, *, command: str) -> None:
    """Print ``data`` as JSON (``-``) or write it to the file ``value``, atomically, marked as a report of
    ``reszoo command`` (its first key, :data:`REPORT_KEY`)."""
    from reszoo.utils.fileio import atomic_path

    text = json.dumps({REPORT_KEY: report_marker(command), **data}, indent=2)
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
