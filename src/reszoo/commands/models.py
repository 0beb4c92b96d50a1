"""``reszoo list`` and ``reszoo info``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered models with parameters and MACs")
    p.add_argument("pattern", nargs="?", default=None, help="fnmatch wildcard, e.g. 'resnet*'")
    p.add_argument("--format", choices=("table", "markdown", "json", "csv"), default="table")
    p.add_argument("--pretrained", action="store_true", help="list the pretrained weight entries instead")
    p.set_defaults(func=run_list)

    p = sub.add_parser("info", help="show one model's config and layer summary")
    p.add_argument("name", help="a registered model name, e.g. resnet56")
    p.set_defaults(func=run_info)


def run_list(args: argparse.Namespace) -> int:
    if args.pretrained:
        from reszoo.commands.weights import list_pretrained_table

        return list_pretrained_table(args.pattern, args.format)
    from reszoo.summary import format_table, human, model_table

    rows = model_table(args.pattern)
    if not rows:
        raise ValueError(f"No model matches pattern {args.pattern!r}; try 'reszoo list' for all names.")
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return 0
    if args.format == "csv":
        print("name,family,depth,shortcut,params,macs,input_size")
        for r in rows:
            print(f"{r.name},{r.family},{r.depth},{r.shortcut},{r.params},{r.macs},{'x'.join(map(str, r.input_size))}")
        return 0
    headers = ["model", "family", "depth", "shortcut", "params", "MACs", "input"]
    body = [
        [r.name, r.family, str(r.depth), r.shortcut, f"{r.params:,}", human(r.macs), "x".join(map(str, r.input_size))]
        for r in rows
    ]
    print(format_table(headers, body, markdown=args.format == "markdown"))
    return 0


def run_info(args: argparse.Namespace) -> int:
    import torch

    from reszoo.registry import create_model
    from reszoo.summary import format_table, human, layer_summary, model_row

    row = model_row(args.name)
    with torch.device("meta"):
        model = create_model(args.name)
    print(f"{row.name}: {row.family} ResNet, depth {row.depth}, shortcut {row.shortcut}")
    print(f"parameters {row.params:,}  MACs/image {human(row.macs)} ({row.macs:,})  input {row.input_size}")
    print("\nconfig:")
    for key, value in model.config.to_dict().items():
        print(f"  {key} = {value!r}")
    print()
    rows = [
        [name, kind, "x".join(map(str, shape)), f"{n:,}"]
        for name, kind, shape, n in layer_summary(model, model.config.input_size)
    ]
    print(format_table(["layer", "type", "output", "params"], rows))
    return 0
