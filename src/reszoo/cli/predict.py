"""``reszoo predict``: the top-k classes of image files, with names and probabilities."""

from __future__ import annotations

import argparse
from typing import Any

from reszoo.cli._common import DEVICE_HELP, OUTPUT_HELP, WEIGHTS_HELP, check_json_path, emit_json, warnings_as_lines


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="the top-k classes of images (files, folders, globs), with probabilities")
    p.add_argument("weights", metavar="WEIGHTS", help=WEIGHTS_HELP)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files, folders (recursive) or glob patterns")
    p.add_argument("--top-k", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help=f"write the predictions as JSON to PATH ('-': stdout; {OUTPUT_HELP})",
    )
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from reszoo.data.imagefiles import find_images
    from reszoo.infer.loading import load_for_evaluation
    from reszoo.infer.prediction import predict
    from reszoo.utils.accelerator import batch_fits

    files = find_images(args.images)  # a path that names nothing is refused before the model is loaded
    check_json_path(args.json, command="predict", inputs=[args.weights, *args.images, *files])
    model = load_for_evaluation(args.weights)
    fits = batch_fits(doing="while predicting", field="batch_size", batch_size=args.batch_size, device=args.device)
    with warnings_as_lines(), fits:
        predictions = predict(model, files, topk=args.top_k, batch_size=args.batch_size, device=args.device)
    done = {p.source for p in predictions}
    if args.json is not None:
        data = {
            "weights": getattr(getattr(model, "pretrained_weights", None), "name", None) or args.weights,
            "predictions": [p.to_dict() for p in predictions],
            "skipped": [f for f in files if f not in done],
        }
        emit_json(data, args.json, command="predict")
    if args.json != "-":
        print(_text(predictions))
    return 0


def _text(predictions: list[Any]) -> str:
    lines = []
    for p in predictions:
        lines.append(str(p.source))
        lines += [f"  {100 * prob:6.2f} %  {name}" for name, prob in p.classes]
    return "\n".join(lines)
