"""``reszoo train`` and ``reszoo experiment``: parse the arguments, call the library, print.

The run folder and its rules (refuse a folder that holds a run, what resuming reads) belong to
:func:`reszoo.train.trainer.train_model`; nothing here writes a file.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from reszoo.cli._common import int_list
from reszoo.cli._recipe_options import add_recipe_options, given_recipe_fields
from reszoo.utils.choices import EXPERIMENTS

_MODEL_ARG_HELP = "model config override, e.g. num_classes=100 or depths=1,1,1 (repeatable)"


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _model_overrides(items: list[str] | None) -> dict[str, Any]:
    """``-M KEY=VALUE`` texts as config overrides, each converted to its field's type.

    Conversion is by the ResNetConfig annotation (``checks.coerce``): ``zero_init_residual=false``
    is False, ``num_classes=100`` an int, ``depths=1,1,1`` a tuple (``depths=2,`` a one-item
    tuple). A key that is not a config field is passed on as text for the config to refuse by name.
    """
    from reszoo.errors import InvalidArgumentError
    from reszoo.models.resnet import ResNetConfig
    from reszoo.utils.checks import coerce

    types = {f.name: f.type if isinstance(f.type, str) else str(f.type) for f in dataclasses.fields(ResNetConfig)}
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        parts = [p.strip() for p in text.split(",")]
        if parts[-1] == "" and len(parts) > 1:  # "2," is a one-item tuple
            parts.pop()
        if not sep or not key or "" in parts:
            raise InvalidArgumentError(
                f"--model-arg takes KEY=VALUE with a value (items separated by commas, e.g. num_classes=100 or "
                f"depths=1,1,1); received {item!r}."
            )
        annotation = types.get(key, "str")
        if annotation.startswith("tuple[") and not (annotation.endswith("None") and text.strip().lower() == "none"):
            item_type = annotation[len("tuple[") :].split(",")[0]
            out[key] = tuple(coerce(key, p, item_type) for p in parts)
        else:
            out[key] = coerce(key, text.strip(), annotation)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model with the paper's recipe, or fine-tune one on an image folder (resumable; torchrun)",
    )
    p.add_argument("model", help="a registered model name, e.g. resnet110")
    p.add_argument(
        "--pretrained",
        default=None,
        metavar="WEIGHTS",
        help="fine-tune from these weights (a weight name, hf-hub:owner/repo or a saved folder) with the "
        "fine-tuning recipe (reszoo.train.recipes.finetune_recipe); e.g. --data folder --root DIR",
    )
    p.add_argument("--out", default=None, help="run folder (history, checkpoints, final model)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue the run in this folder exactly")
    p.add_argument("-M", "--model-arg", action="append", metavar="KEY=VALUE", help=_MODEL_ARG_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_recipe_options(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("experiment", help="reproduce an experiment of the paper (degradation: Fig. 6)")
    p.add_argument("name", choices=EXPERIMENTS, help="degradation: plain vs residual nets, training/test error")
    p.add_argument("--out", required=True, help="folder for the runs, curves.csv and degradation.png")
    p.add_argument("--depths", type=int_list, default=None, help="comma-separated CIFAR depths (default 20,56)")
    p.add_argument(
        "--models",
        type=_name_list,
        default=None,
        help="comma-separated registered models to train instead of plain/resnet pairs, e.g. "
        "plain20,plain56,preresnet20,preresnet56",
    )
    p.add_argument("-M", "--model-arg", action="append", metavar="KEY=VALUE", help=_MODEL_ARG_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_recipe_options(p)
    p.set_defaults(func=run_experiment)


def run_train(args: argparse.Namespace) -> int:
    from reszoo.errors import InvalidArgumentError
    from reszoo.train.trainer import train_model
    from reszoo.utils.devices import distributed

    out = args.out
    if args.resume is not None:
        if out is not None and Path(out) != Path(args.resume):
            raise InvalidArgumentError(
                f"--resume continues in its own folder; received --out {out!r} and --resume {args.resume!r}."
            )
        out = args.resume
    result = train_model(
        args.model,
        pretrained=args.pretrained,
        model_overrides=_model_overrides(args.model_arg),
        recipe_overrides=given_recipe_fields(args),
        out=out,
        resume=args.resume is not None,
        progress=not args.no_progress,
    )
    if distributed()[0] == 0:
        print(f"{args.model}: {result.iterations} iterations, {_errors(result)}")
        if out is not None:
            print(f"run folder: {out} (model/ holds the final weights, history.jsonl the curves)")
        else:
            print(
                f"not saved: without --out nothing is written; add --out DIR (e.g. --out runs/{args.model}) to keep "
                "the model, its history and a checkpoint to resume from"
            )
    return 0


def _errors(result: Any) -> str:
    # None where nothing was measured (e.g. resuming a finished run from an older checkpoint).
    pairs = (("train error", result.train_error), ("test error", result.test_error))
    return ", ".join(f"{label} {value:.4f}" for label, value in pairs if value is not None) or "no errors recorded"


def run_experiment(args: argparse.Namespace) -> int:
    from reszoo.train import experiment
    from reszoo.train.recipes import paper_recipe

    result = experiment.degradation(
        paper_recipe(**given_recipe_fields(args)),
        out=args.out,
        depths=args.depths,
        models=args.models,
        model_overrides=_model_overrides(args.model_arg),
        progress=not args.no_progress,
    )
    print(f"curves: {result.csv}")
    print(f"plot: {result.png}" if result.png else "plot: skipped (pip install 'reszoo[plot]' for matplotlib)")
    for name, run in result.runs.items():
        print(f"{name}: {_errors(run)}")
    return 0
