"""``reszoo export``: a model to ONNX, torch.export (.pt2) or TorchScript, checked against eager."""

from __future__ import annotations

import argparse

from reszoo.utils.choices import EXPORT_FORMATS, EXPORT_SUFFIXES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX, .pt2 or TorchScript and check it against eager",
        description=(
            "Write NAME to OUT and prove it: the file is loaded back (ONNX Runtime, torch.export.load, "
            "torch.jit.load), run on a random batch and compared with the eager model; only a file within "
            "the tolerance (max(1e-4, 1e-5 x max |eager output|)) replaces OUT."
        ),
    )
    p.add_argument("name", help="a registered model, e.g. resnet56 (see 'reszoo list')")
    p.add_argument("out", help="the file to write, e.g. resnet56.onnx")
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help=f"default: from OUT's suffix ({', '.join(EXPORT_SUFFIXES)}), else {EXPORT_FORMATS[0]}",
    )
    p.add_argument(
        "--weights",
        metavar="ENTRY_OR_FOLDER",
        default=None,
        help="pretrained weights: a weight name or alias for NAME ('reszoo list --pretrained'), hf-hub:owner/repo, "
        "or a folder written by save_pretrained; default: freshly initialised",
    )
    batch = p.add_mutually_exclusive_group()
    batch.add_argument(
        "--static",
        action="store_true",
        help="fix the batch size at --batch-size (needed with it); default: the file takes any batch size",
    )
    batch.add_argument(
        "--dynamic-batch", action="store_true", help="any batch size: the default (kept for scripts that give it)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="the example batch (default 2; at least 2 unless --static); a file for any batch is also checked at 1 "
        "and 2N+1",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (>= 18); default: torch's choice")
    p.add_argument(
        "--input-size",
        nargs=3,
        type=int,
        metavar=("C", "H", "W"),
        default=None,
        help="the example input; default: the model's (3 32 32 for CIFAR nets, 3 224 224 for ImageNet nets)",
    )
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from reszoo.errors import InvalidArgumentError
    from reszoo.infer.export import export_model

    if args.static and args.batch_size is None:
        raise InvalidArgumentError(
            "--static fixes the batch size of the file: give it with --batch-size N (e.g. --batch-size 1 --static); "
            "without --static the file takes any batch size."
        )
    if not args.static and args.batch_size == 1:
        raise InvalidArgumentError(
            "--batch-size 1 is the example batch of a file that takes any batch size, and torch.export needs at "
            "least 2 there (the file still takes a batch of 1); for a file fixed at batch 1: --batch-size 1 --static."
        )
    result = export_model(
        args.name,
        args.out,
        format=args.format,
        weights=args.weights,
        dynamic_batch=not args.static,
        batch_size=2 if args.batch_size is None else args.batch_size,
        opset=args.opset,
        input_size=tuple(args.input_size) if args.input_size else None,
    )
    print(result.summary())
    return 0
