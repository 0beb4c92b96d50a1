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
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (checked at 1, 2 and 5)")
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
    from reszoo.infer.export import export_model

    result = export_model(
        args.name,
        args.out,
        format=args.format,
        weights=args.weights,
        dynamic_batch=args.dynamic_batch,
        opset=args.opset,
        input_size=tuple(args.input_size) if args.input_size else None,
    )
    print(result.summary())
    return 0
