"""``reszoo evaluate``: the accuracy of weights or a run on a test set, beside the published figure.

Also what ``reszoo predict`` shares: the ``--json PATH|-`` output (:func:`check_json_path`,
:func:`emit_json`) and the library's warnings printed as one line each (:func:`warnings_as_lines`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator
from typing import Any

WEIGHTS_HELP = (
    "a weight name (reszoo list --pretrained), hf-hub:owner/repo[@revision], a folder written by save_pretrained, "
    "or a run folder of reszoo train"
)
# Per-class rows shown in the table; more classes show the worst and best few (--json has them all).
_CLASS_ROWS = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="top-1/top-5 and per-class accuracy of weights or a run, beside the published figure"
    )
    p.add_argument("weights", metavar="WEIGHTS_OR_RUN", help=WEIGHTS_HELP)
    p.add_argument("--data", required=True, help="cifar10, cifar100, imagenet (ROOT/val/<wnid>/) or folder")
    p.add_argument("--root", required=True, help="the folder that holds the data")
    p.add_argument(
        "--split", default=None, help="test|train (CIFAR), val|train (imagenet), val|train|all (folder); default first"
    )
    p.add_argument("--ten-crop", action="store_true", help="10-crop test: corners, centre and flips, averaged")
    p.add_argument("--multi-scale", action="store_true", help="the paper's fully-convolutional multi-scale test")
    p.add_argument("--batch-size", type=int, default=100, help="images per batch (default 100)")
    p.add_argument("--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N images only")
    p.add_argument("--num-workers", type=int, default=None, help="data loading processes (default: CPUs, at most 8)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON to PATH ('-': stdout)")
    p.set_defaults(func=run_evaluate)


def check_json_path(value: str | None) -> None:
    """``--json`` names ``-`` or a file in an existing folder: refused before anything runs."""
    from pathlib import Path

    from reszoo.errors import InvalidArgumentError

    if value is None or value == "-":
        return
    path = Path(value)
    if path.is_dir():
        raise InvalidArgumentError(f"--json takes a file path or -; received --json {value}, which is a folder.")
    if not path.parent.is_dir():
        raise InvalidArgumentError(
            f"--json must name a file in an existing folder; received --json {value} ({path.parent} is not a folder)."
        )


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


def run_evaluate(args: argparse.Namespace) -> int:
    from reszoo.infer.evaluation import evaluate
    from reszoo.infer.loading import load_for_evaluation

    check_json_path(args.json)
    with warnings_as_lines():
        model = load_for_evaluation(args.weights)
        result = evaluate(
            model,
            args.data,
            root=args.root,
            split=args.split,
            batch_size=args.batch_size,
            device=args.device,
            ten_crop=args.ten_crop,
            multi_scale=args.multi_scale,
            limit=args.limit,
            num_workers=args.num_workers,
        )
    if args.json is not None:
        emit_json(result.to_dict(), args.json)
    if args.json != "-":
        print(report(result, name=args.weights))
    return 0


def report(result: Any, *, name: str) -> str:
    """The short table: measured beside published, per-class accuracy, throughput."""
    from reszoo.utils.text import format_table

    head = f"{result.weights or name} on {result.data}: {result.images} images, {result.protocol}, {result.device}"
    published = [m for m in result.published if m.name == "top1"] or [None]
    rows = [
        ["top-1 %" if i == 0 else "", f"{result.top1:.2f}" if i == 0 else "", *_published(m)]
        for i, m in enumerate(published)
    ]
    if result.top5 is not None:
        rows.append(["top-5 %", f"{result.top5:.2f}", "", ""])
    lines = [head, format_table(["", "measured", "published", "source"], rows), ""]
    lines += [format_table(["class", "top-1 %", "images"], _class_rows(result.per_class)), ""]
    lines.append(f"{result.images_per_s:.1f} images/s ({result.seconds:.2f} s)")
    return "\n".join(lines)


def _published(metric: Any) -> list[str]:
    return ["-", ""] if metric is None else [f"{metric.value:.2f}", metric.source]


def _class_rows(per_class: Any) -> list[list[str]]:
    classes = list(per_class)
    if len(classes) > _CLASS_ROWS:  # the worst and the best few; the JSON has them all
        ranked = sorted(classes, key=lambda c: c.accuracy)
        half = _CLASS_ROWS // 4
        skipped = ["...", f"({len(classes) - 2 * half} more)", ""]
        rows = [_row(c) for c in ranked[:half]] + [skipped] + [_row(c) for c in ranked[-half:]]
        return rows
    return [_row(c) for c in classes]


def _row(c: Any) -> list[str]:
    return [c.name, f"{c.accuracy:.2f}", str(c.images)]
