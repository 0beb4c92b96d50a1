"""``reszoo list`` (models, or pretrained weight entries) and ``reszoo info``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from typing import Any

# How `reszoo list` prints its rows (the command line's own choice: the library returns the rows).
FORMATS = ("table", "markdown", "json", "csv")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered models with parameters and MACs")
    p.add_argument("pattern", nargs="?", default=None, help="fnmatch wildcard, e.g. 'resnet*'")
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="table (default), markdown, json or csv (sizes as AxBxC)"
    )
    p.add_argument("--pretrained", action="store_true", help="list the pretrained weight entries instead")
    p.set_defaults(func=run_list)

    p = sub.add_parser("info", help="show one model's config and layer summary")
    p.add_argument("name", help="a registered model name, e.g. resnet56")
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
    """Print the weight entries (``reszoo list --pretrained``) as a table, markdown, JSON or CSV."""
    from reszoo.errors import InvalidArgumentError
    from reszoo.weights.catalog import pretrained_table

    rows = pretrained_table(pattern)
    if not rows:
        raise InvalidArgumentError(
            f"No weight entry matches pattern {pattern!r}; try 'reszoo list --pretrained' for all."
        )
    keys = ["name", "arch", "dataset", "num_classes", "top1", "license", "source"]
    _emit(
        fmt,
        rows,
        keys=keys,
        headers=["weights", "arch", "dataset", "classes", "top-1 %", "license", "source"],
        cells=lambda r: [str(r[k]) for k in keys],
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    import torch

    from reszoo.models._factory import create_model
    from reszoo.models.registry import default_config
    from reszoo.models.summary import layer_summary, model_row
    from reszoo.utils.text import format_table, human

    row = model_row(args.name)
    config = default_config(args.name)
    print(f"{row.name}: {row.family} ResNet, depth {row.depth}, shortcut {row.shortcut}")
    print(f"parameters {row.params:,}  MACs/image {human(row.macs)} ({row.macs:,})  input {row.input_size}")
    print("\nconfig:")
    for key, value in config.to_dict().items():
        print(f"  {key} = {value!r}")
    print()
    with torch.device("meta"):  # the layer summary runs one forward pass: free on the meta device
        model = create_model(args.name)
    rows = [[name, kind, _size(shape), f"{n:,}"] for name, kind, shape, n in layer_summary(model, config.input_size)]
    print(format_table(["layer", "type", "output", "params"], rows))
    return 0
