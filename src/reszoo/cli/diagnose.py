"""``reszoo diagnose``: why does my ResNet do worse than the paper's? And ``--compare A B``."""

from __future__ import annotations

import argparse
import sys

from reszoo.cli._common import OUTPUT_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="check your ResNet, recipe and pre-processing against the paper's, and name the differences",
        description=(
            "Run MODEL (FILE.py:FACTORY, or a registered name) once, read it as a ResNet and compare it, its "
            "optimizer, schedule and transforms with --reference. Exit 0 without error findings, 1 with, "
            "2 for bad arguments. With --compare A B: two networks side by side, block by block (exit 0 when "
            "they are the same, 1 when they differ)."
        ),
    )
    p.add_argument(
        "model", nargs="?", help="FILE.py:FACTORY (a class, a function or a module object), or a registered name"
    )
    p.add_argument("--reference", "-r", metavar="NAME", help="a registered model, e.g. resnet56 or resnet50")
    p.add_argument("--optimizer", metavar="FILE.py:FN", help="FN(model) returns your optimizer")
    p.add_argument("--scheduler", metavar="FILE.py:FN", help="FN(optimizer) returns your learning-rate scheduler")
    p.add_argument(
        "--scheduler-steps",
        choices=("epoch", "iteration"),
        default="epoch",
        help="how often your loop calls scheduler.step() (default: epoch)",
    )
    p.add_argument("--train-transform", metavar="FILE.py:NAME", help="your training transform (or a factory of it)")
    p.add_argument("--eval-transform", metavar="FILE.py:NAME", help="your evaluation transform (or a factory of it)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, metavar="N", help="training length in epochs")
    length.add_argument("--iterations", type=int, metavar="N", help="training length in iterations")
    p.add_argument("--batch-size", type=int, metavar="N", help="training batch size (default: the paper's)")
    p.add_argument("--train-size", type=int, metavar="N", help="training images (default: the dataset's, e.g. 50000)")
    p.add_argument(
        "--input-size",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="the input your pipeline feeds the model, if not the reference's (with --compare: the size both run at)",
    )
    p.add_argument(
        "--json", metavar="PATH", help=f"also write the result as JSON to PATH ({OUTPUT_HELP}); '-' prints only JSON"
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="compare two models (FILE.py:FACTORY or registered names) block by block instead",
    )
    p.set_defaults(func=run_diagnose)


def _model(spec: str):
    """A model from FILE.py:FACTORY, or a registered name (freshly built)."""
    from torch import nn

    from reszoo.diagnosis.specs import load_object, split_spec
    from reszoo.models._factory import create_model
    from reszoo.utils.checks import type_error

    if split_spec(spec) is None:
        return create_model(spec)
    model = load_object(spec)
    if not isinstance(model, nn.Module):
        raise type_error(spec, model, "an nn.Module, or a class or function with no required arguments returning one")
    return model


def _spec_file(spec: str) -> object:
    """The file a FILE.py:NAME spec reads (a registered name is no file)."""
    from reszoo.diagnosis.specs import split_spec

    parts = split_spec(spec)
    return parts[0] if parts else spec


def _emit(result, path: str | None) -> None:
    import json

    from reszoo.cli._common import emit_json

    if path != "-":
        print(result.report())
    if path:
        emit_json(
            json.loads(result.to_json()), path, command="diagnose"
        )  # to_json renders what evidence holds (numbers, shapes)


def _compare(args: argparse.Namespace) -> int:
    from reszoo.diagnosis.comparison import compare
    from reszoo.diagnosis.specs import split_spec

    a, b = (_model(s) if split_spec(s) else s for s in args.compare)
    result = compare(a, b, input_size=tuple(args.input_size) if args.input_size else None)
    _emit(result, args.json)
    return 0 if result.same else 1


def run_diagnose(args: argparse.Namespace) -> int:
    from reszoo.cli._common import check_json_path
    from reszoo.errors import InvalidArgumentError

    specs = [
        args.model,
        args.optimizer,
        args.scheduler,
        args.train_transform,
        args.eval_transform,
        *(args.compare or ()),
    ]
    check_json_path(args.json, command="diagnose", inputs=[_spec_file(s) for s in specs if s])

    if args.compare:
        if args.model or args.reference:
            raise InvalidArgumentError("--compare A B takes no MODEL or --reference; give one or the other.")
        return _compare(args)
    if not args.model or not args.reference:
        raise InvalidArgumentError(
            "reszoo diagnose needs MODEL (FILE.py:FACTORY) and --reference NAME, or --compare A B."
        )
    if args.scheduler and not args.optimizer:
        raise InvalidArgumentError("--scheduler FILE.py:FN is called with your optimizer: give --optimizer too.")
    from reszoo.diagnosis.api import diagnose
    from reszoo.diagnosis.specs import load_object
    from reszoo.models.registry import get_model_fn

    get_model_fn(args.reference)  # an unknown reference fails before the user's code runs
    model = _model(args.model)
    optimizer = load_object(args.optimizer, model, build="call") if args.optimizer else None
    scheduler = load_object(args.scheduler, optimizer, build="call") if args.scheduler else None
    result = diagnose(
        model,
        args.reference,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_steps=args.scheduler_steps,
        epochs=args.epochs,
        iterations=args.iterations,
        batch_size=args.batch_size,
        train_size=args.train_size,
        train_transform=load_object(args.train_transform) if args.train_transform else None,
        eval_transform=load_object(args.eval_transform) if args.eval_transform else None,
        input_size=tuple(args.input_size) if args.input_size else None,
    )
    _emit(result, args.json)
    sys.stdout.flush()
    return 1 if result.errors else 0
