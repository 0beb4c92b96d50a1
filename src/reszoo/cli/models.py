"""``reszoo list`` (models, or pretrained weight entries) and ``reszoo info`` (one model, or one entry in full)."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from collections.abc import Callable
from typing import Any

# How `reszoo list` prints its rows (the command line's own choice: the library returns the rows).
FORMATS = ("table", "markdown", "json", "csv")
# A terminal's width where it cannot be asked (output piped into a file or a pager).
_COLUMNS = 100
# The narrowest a shortened table column gets; past that the line is simply longer.
_MIN_CELL = 12


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered models with parameters and MACs")
    p.add_argument("pattern", nargs="?", default=None, help="fnmatch wildcard, e.g. 'resnet*'")
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="table (default), markdown, json or csv (sizes as AxBxC)"
    )
    p.add_argument("--pretrained", action="store_true", help="list the pretrained weight entries instead")
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "info", help="one model's config and layer summary, or one weight entry in full (source, checksum, ...)"
    )
    p.add_argument(
        "name", help="a registered model (e.g. resnet56, see 'reszoo list') or a weight entry (e.g. resnet56-cifar10)"
    )
    p.set_defaults(func=run_info)


def _size(value: Any) -> str:
    return "x".join(map(str, value))


def _emit(fmt: str, rows: list[dict[str, Any]], *, keys: list[str], headers: list[str], cells: Callable) -> None:
    """Print JSON-ready ``rows`` as JSON, CSV (``keys``; sequences as AxBxC) or a table (``cells`` per row)."""
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _size(r[k]) if isinstance(r[k], (list, tuple)) else r[k] for k in keys} for r in rows)
    else:
        from reszoo.utils.text import format_table

        print(format_table(headers, [cells(r) for r in rows], markdown=fmt == "markdown"))


def run_list(args: argparse.Namespace) -> int:
    if args.pretrained:
        return list_pretrained(args.pattern, args.format)
    from reszoo.errors import InvalidArgumentError
    from reszoo.models.summary import model_table
    from reszoo.utils.text import human

    rows = [r.as_dict() for r in model_table(args.pattern)]
    if not rows:
        raise InvalidArgumentError(f"No model matches pattern {args.pattern!r}; try 'reszoo list' for all names.")
    _emit(
        args.format,
        rows,
        keys=["name", "family", "depth", "shortcut", "params", "macs", "input_size"],
        headers=["model", "family", "depth", "shortcut", "params", "MACs", "input"],
        cells=lambda r: (
            [r["name"], r["family"], str(r["depth"]), r["shortcut"], f"{r['params']:,}"]
            + [human(r["macs"]), _size(r["input_size"])]
        ),
    )
    return 0


def list_pretrained(pattern: str | None, fmt: str) -> int:
    """Print the weight entries (``reszoo list --pretrained``) as a table, markdown, JSON or CSV.

    The table fits the terminal (``shutil.get_terminal_size``, else 100 columns): a source is its
    repository (``hf-hub:owner/name``, ``owner/repo`` on GitHub), shortened further where the terminal
    is narrow; ``reszoo info NAME`` shows an entry in full, as markdown, JSON and CSV do.
    """
    from reszoo.errors import InvalidArgumentError
    from reszoo.utils.text import format_table
    from reszoo.weights.catalog import pretrained_table

    rows = pretrained_table(pattern)
    if not rows:
        raise InvalidArgumentError(
            f"No weight entry matches pattern {pattern!r}; try 'reszoo list --pretrained' for all."
        )
    if fmt == "table":
        headers = ["weights", "arch", "dataset", "top-1 %", "license", "source"]
        cells = [
            [r["name"], r["arch"], r["dataset"], str(r["top1"]), str(r["license"]), _short(r["source"])] for r in rows
        ]
        print(format_table(headers, _fit(headers, cells, shutil.get_terminal_size((_COLUMNS, 24)).columns)))
        print("\nfull detail (source URL, checksum, pre-processing): reszoo info NAME")
        return 0
    keys = ["name", "arch", "dataset", "num_classes", "top1", "license", "source"]
    _emit(
        fmt,
        rows,
        keys=keys,
        headers=["weights", "arch", "dataset", "classes", "top-1 %", "license", "source"],
        cells=lambda r: [str(r[k]) for k in keys],
    )
    return 0


def _short(source: str) -> str:
    """A source as its repository: ``hf-hub:owner/name`` as it is, a GitHub URL as ``owner/repo``."""
    from urllib.parse import urlsplit

    parts = urlsplit(source)
    path = [p for p in parts.path.split("/") if p]
    if parts.netloc == "github.com" and len(path) >= 2:
        return "/".join(path[:2])
    return source if not parts.netloc else f"{parts.netloc}/{'/'.join(path[:2])}"


def _fit(headers: list[str], rows: list[list[str]], columns: int) -> list[list[str]]:
    """``rows`` with the last column cut (ending in "...") so that each line fits in ``columns``."""
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]
    room = max(_MIN_CELL, columns - sum(widths[:-1]) - 2 * (len(widths) - 1))
    return [[*r[:-1], r[-1] if len(r[-1]) <= room else r[-1][: room - 3] + "..."] for r in rows]


def run_info(args: argparse.Namespace) -> int:
    from reszoo.models.registry import list_models
    from reszoo.utils.checks import unknown_name_error
    from reszoo.weights.catalog import WEIGHTS, get_weights

    if args.name in list_models():
        return _model_info(args.name)
    names = {alias: w.name for w in WEIGHTS.values() for alias in (w.name, *w.aliases)}
    if args.name in names:
        return _weights_info(get_weights(args.name))
    raise unknown_name_error("model or weight entry", args.name, [*list_models(), *names])


def _weights_info(w: Any) -> int:
    """One weight entry in full: what it is, where it comes from, how it was checked, what it expects."""
    from reszoo.weights.records import HubSource

    src = w.source
    if isinstance(src, HubSource):
        where = [("source", f"hf-hub:{src.repo_id} (file {src.filename}, revision {src.revision})")]
        check = src.sha256 or "the Hub's own sha256 of the file (its ETag)"
    else:
        where = [("source", src.url)]
        check = src.sha256 or (f"{src.sha256_prefix}... (the file name's prefix)" if src.sha256_prefix else "none")
        if src.size is not None:
            where.append(("size", f"{src.size:,} bytes"))
    classes = f"{w.num_classes} classes"
    print(f"{w.name}: weights for {w.arch} trained on {w.dataset}, {classes}")
    overrides = ", ".join(f"{k}={v!r}" for k, v in w.config_overrides) or f"none ({w.arch} as registered)"
    pre = w.preprocessing()
    resize = f"resize {pre['resize_size']} ({pre['interpolation']}), " if pre["resize_size"] else ""
    fields = [
        ("aliases", ", ".join(w.aliases) or "none"),
        *where,
        ("sha256", check),
        ("converter", w.converter),
        ("config overrides", overrides),
        ("pre-processing", f"{resize}centre crop {pre['crop_size']}, mean {pre['mean']}, std {pre['std']}"),
        *(
            (("accuracy" if i == 0 else ""), f"{m.name} {m.value} % on {m.dataset} ({m.source})")
            for i, m in enumerate(w.metrics)
        ),
        ("license", w.license or "unknown"),
        ("origin", w.origin or "unknown"),
        ("notes", w.notes or "none"),
        ("load", f"reszoo.load_pretrained({w.name!r}), or reszoo download {w.name} ahead of going offline"),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"  {key:<{width}}  {value}")
    return 0


def _model_info(name: str) -> int:
    import torch

    from reszoo.models._factory import create_model
    from reszoo.models.registry import default_config
    from reszoo.models.summary import layer_summary, model_row
    from reszoo.utils.text import format_table, human

    row = model_row(name)
    config = default_config(name)
    print(f"{row.name}: {row.family} ResNet, depth {row.depth}, shortcut {row.shortcut}")
    print(f"parameters {row.params:,}  MACs/image {human(row.macs)} ({row.macs:,})  input {row.input_size}")
    print("\nconfig:")
    for key, value in config.to_dict().items():
        print(f"  {key} = {value!r}")
    print()
    with torch.device("meta"):  # the layer summary runs one forward pass: free on the meta device
        model = create_model(name)
    rows = [[name, kind, _size(shape), f"{n:,}"] for name, kind, shape, n in layer_summary(model, config.input_size)]
    print(format_table(["layer", "type", "output", "params"], rows))
    return 0
