"""``reszoo evaluate``: the accuracy of weights or a run on a test set, beside the published figure."""

from __future__ import annotations

import argparse
from typing import Any

from reszoo.cli._common import DEVICE_HELP, OUTPUT_HELP, WEIGHTS_HELP, check_json_path, emit_json, warnings_as_lines
from reszoo.utils.choices import EVAL_DATASETS, EVAL_SPLITS

# Per-class rows shown in the table; more classes show the worst and best few (--json has them all).
_CLASS_ROWS = 20
# Where a dataset's images are under --root, where the id alone does not say.
_LAYOUT = {"imagenet": "ROOT/val/<wnid>/", "folder": "ROOT/train|val/<class>/ or ROOT/<class>/"}
_DATA = [f"{d} ({_LAYOUT[d]})" if d in _LAYOUT else d for d in EVAL_DATASETS]
# "test|train (cifar10, cifar100), val|train (imagenet), ...": the datasets that share splits together.
_SPLITS = ", ".join(
    f"{'|'.join(splits)} ({', '.join(d for d in EVAL_DATASETS if EVAL_SPLITS[d] == splits)})"
    for splits in dict.fromkeys(EVAL_SPLITS[d] for d in EVAL_DATASETS)
)


def _or(items: list[str]) -> str:
    return f"{', '.join(items[:-1])} or {items[-1]}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="top-1/top-5 and per-class accuracy of weights or a run, beside the published figure"
    )
    p.add_argument("weights", metavar="WEIGHTS_OR_RUN", help=WEIGHTS_HELP)
    p.add_argument("--data", required=True, help=f"the test set: {_or(_DATA)}")
    p.add_argument("--root", required=True, help="the folder that holds the data")
    p.add_argument("--split", default=None, help=f"{_SPLITS}; default: the first")
    p.add_argument("--ten-crop", action="store_true", help="10-crop test: corners, centre and flips, averaged")
    p.add_argument("--multi-scale", action="store_true", help="the paper's fully-convolutional multi-scale test")
    p.add_argument("--batch-size", type=int, default=100, help="images per batch (default 100)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N images only")
    p.add_argument("--num-workers", type=int, default=None, help="data loading processes (default: CPUs, at most 8)")
    p.add_argument(
        "--json", default=None, metavar="PATH", help=f"write the figures as JSON to PATH ('-': stdout; {OUTPUT_HELP})"
    )
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from reszoo.infer.evaluation import evaluate
    from reszoo.infer.loading import load_for_evaluation
    from reszoo.utils.accelerator import batch_fits

    check_json_path(args.json, command="evaluate", inputs=[args.weights, args.root])
    with warnings_as_lines():
        model = load_for_evaluation(args.weights)
        fits = batch_fits(doing="while evaluating", field="batch_size", batch_size=args.batch_size, device=args.device)
        with fits:
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
        emit_json(result.to_dict(), args.json, command="evaluate")
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
