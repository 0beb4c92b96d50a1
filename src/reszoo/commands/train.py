"""``reszoo train`` and ``reszoo experiment``."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

# Recipe fields the CLI spells differently from the dataclass (short forms people type).
_ALIASES = {"data_root": ["--root"]}
# Field type (as written in reszoo.train.Recipe) -> argparse keyword arguments. Every Recipe field
# becomes an option, so nothing in a recipe is out of reach from the command line.
_BOOL = {"action": argparse.BooleanOptionalAction}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, e.g. 32000,48000; received {text!r}"
        ) from None


def _recipe_kwargs(type_name: str) -> dict[str, Any]:
    return {
        "int": {"type": int},
        "int | None": {"type": int},
        "float": {"type": float},
        "str": {"type": str},
        "str | None": {"type": str},
        "bool": _BOOL,
        "bool | None": _BOOL,
        "tuple[int, ...]": {"type": _int_list},
    }[type_name]


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from reszoo.train import DATASETS, DEVICES, SCHEDULES, Recipe

    g = p.add_argument_group("recipe (defaults: the paper's recipe for the dataset; see docs/training.md)")
    choices = {"data": DATASETS, "schedule": SCHEDULES, "device": DEVICES}
    for f in dataclasses.fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        kwargs = dict(_recipe_kwargs(str(f.type)))
        if f.name in choices:
            kwargs["choices"] = choices[f.name]
        elif "action" not in kwargs:
            kwargs["metavar"] = f.name.upper()
        # None means "not given": only options typed on the command line override the recipe.
        g.add_argument(flag, *_ALIASES.get(f.name, []), dest=f"recipe_{f.name}", default=None, **kwargs)


def _parse_value(text: str) -> Any:
    if "," in text:
        parts = text.split(",")
        if parts[-1].strip() == "":  # "2," is a one-item tuple
            parts.pop()
        return tuple(_parse_value(v) for v in parts)
    text = text.strip()
    if not text:
        raise ValueError("empty value")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _model_overrides(items: list[str] | None) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError("no KEY=")
            out[key.replace("-", "_")] = _parse_value(value)
        except ValueError:
            raise ValueError(
                f"--model-arg takes KEY=VALUE with a value (items separated by commas, e.g. num_classes=100 or "
                f"depths=1,1,1); received {item!r}."
            ) from None
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model with the paper's recipe (resumable; torchrun for several GPUs)")
    p.add_argument("model", help="a registered model name, e.g. resnet110")
    p.add_argument("--out", default=None, help="run folder (history, checkpoints, final model)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue the run in this folder exactly")
    p.add_argument("-M", "--model-arg", action="append", metavar="KEY=VALUE", help="model config override (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_recipe_options(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("experiment", help="reproduce an experiment of the paper (degradation: Fig. 6)")
    p.add_argument("name", choices=("degradation",), help="degradation: plain vs residual nets, training/test error")
    p.add_argument("--out", required=True, help="folder for the runs, curves.csv and degradation.png")
    p.add_argument("--depths", type=_int_list, default=(20, 56), help="comma-separated CIFAR depths (default 20,56)")
    p.add_argument("-M", "--model-arg", action="append", metavar="KEY=VALUE", help="model config override (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_recipe_options(p)
    p.set_defaults(func=run_experiment)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {k[len("recipe_") :]: v for k, v in vars(args).items() if k.startswith("recipe_") and v is not None}


def _recipe(given: dict[str, Any], *, depth: int | None) -> Any:
    from reszoo import train

    if given.get("data", "cifar10") == "imagenet":
        return train.imagenet_recipe(
            **{k: v for k, v in given.items() if k != "schedule"}, schedule=given.get("schedule", "plateau")
        )
    return train.cifar_recipe(depth=depth, **given)


def run_train(args: argparse.Namespace) -> int:
    from reszoo import train
    from reszoo.registry import create_model

    given = _given(args)
    overrides = _model_overrides(args.model_arg)
    out = args.out
    if args.resume is not None:
        if out is not None and Path(out) != Path(args.resume):
            raise ValueError(
                f"--resume continues in its own folder; received --out {out!r} and --resume {args.resume!r}."
            )
        out = args.resume
        run = Path(out) / "run.json"
        if not run.is_file():
            raise FileNotFoundError(f"No run to resume in {out}: {run} is missing.")
        if not (Path(out) / train.CHECKPOINT_NAME).is_file():
            raise FileNotFoundError(
                f"No checkpoint to resume in {out}: the run stopped before its first checkpoint "
                f"(written every checkpoint_every iterations); start it again with --out {out}."
            )
        saved = json.loads(run.read_text(encoding="utf-8"))
        if saved["model"] != args.model:
            raise ValueError(f"{out} holds a {saved['model']} run; received model {args.model!r}.")
        overrides = {**saved["model_overrides"], **overrides}
        # The saved recipe, with anything typed now on top (e.g. --iterations to train longer).
        recipe = train.Recipe.from_dict({**saved["recipe"], **given})
    model = create_model(args.model, **overrides)
    if args.resume is None:
        recipe = _recipe(given, depth=model.config.depth)
    if out is not None and args.resume is None and _rank() == 0:
        if (Path(out) / train.CHECKPOINT_NAME).exists():
            raise ValueError(f"{out} already holds a run; use --resume {out} to continue it or another --out.")
        Path(out).mkdir(parents=True, exist_ok=True)
        # Plain data only, so the run can be resumed (and read) without this process.
        data = {"model": args.model, "model_overrides": _jsonable(overrides), "recipe": recipe.to_dict()}
        (Path(out) / "run.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    result = train.fit(model, recipe, out=out, resume=args.resume is not None, progress=not args.no_progress)
    if _rank() == 0:
        print(f"{args.model}: {result.iterations} iterations, {_errors(result)}")
        if out is not None:
            print(f"run folder: {out} (model/ holds the final weights, history.jsonl the curves)")
    return 0


def _errors(result: Any) -> str:
    # None where nothing was measured (e.g. resuming a finished run from an older checkpoint).
    pairs = (("train error", result.train_error), ("test error", result.test_error))
    return ", ".join(f"{label} {value:.4f}" for label, value in pairs if value is not None) or "no errors recorded"


def _jsonable(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def run_experiment(args: argparse.Namespace) -> int:
    from reszoo import experiment

    recipe = _recipe(_given(args), depth=None)
    result = experiment.degradation(
        recipe,
        out=args.out,
        depths=args.depths,
        model_overrides=_model_overrides(args.model_arg),
        progress=not args.no_progress,
    )
    print(f"curves: {result.csv}")
    print(f"plot: {result.png}" if result.png else "plot: skipped (pip install 'reszoo[plot]' for matplotlib)")
    for name, run in result.runs.items():
        print(f"{name}: {_errors(run)}")
    return 0
