"""``reszoo bench``: throughput of registered models (a thin wrapper over ``reszoo.bench``)."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, received {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, received {text!r}")
    return value


def _device(text: str) -> str:
    from reszoo.devices import resolve_device

    try:
        resolve_device(text, check=False)  # the spelling now; availability when the command runs
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


# Options that only apply to a plain measurement; --compare ignores them, so it refuses them.
_NOT_WITH_COMPARE = ("input_size", "compile", "cuda_graphs", "min_run_time", "peak_tflops")


def register(sub: argparse._SubParsersAction) -> None:
    from reszoo.bench import MODES
    from reszoo.devices import DTYPES

    p = sub.add_parser("bench", help="measure images/s of models (inference or training step)")
    p.add_argument("pattern", help="a model name or fnmatch wildcard, e.g. resnet56 or 'resnet*'")
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda, mps (default: the best present)")
    p.add_argument("--mode", choices=(*MODES, "both"), default="infer")
    p.add_argument("--batch-size", type=_positive_int, nargs="+", default=None, help="one or more (a sweep)")
    p.add_argument("--input-size", type=_positive_int, nargs=3, metavar=("C", "H", "W"), default=None)
    p.add_argument("--dtype", choices=DTYPES, default=None)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE")
    p.add_argument("--cuda-graphs", action="store_true")
    p.add_argument("--min-run-time", type=_positive_float, default=None, help="timed seconds per measurement")
    p.add_argument("--peak-tflops", type=_positive_float, default=None, help="override the device's peak")
    p.add_argument("--compare", choices=("torchvision",), default=None, help="side by side with equivalents")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--csv", default=None, metavar="PATH")
    p.add_argument("--plot", default=None, metavar="PATH", help="PNG of images/s (needs matplotlib)")
    p.set_defaults(func=run_bench)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse what cannot work before anything is measured."""
    from reszoo.errors import InvalidArgumentError

    if args.compare:
        given = [f"--{key.replace('_', '-')}" for key in _NOT_WITH_COMPARE if getattr(args, key) not in (None, False)]
        if given:
            raise InvalidArgumentError(f"--compare uses default settings; it does not take {', '.join(given)}.")
        if args.batch_size and len(args.batch_size) > 1:
            raise InvalidArgumentError(
                f"--compare takes one --batch-size, received {len(args.batch_size)}: {args.batch_size}."
            )
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise InvalidArgumentError(
            f"--plot needs matplotlib (pip install 'reszoo[plot]'); received --plot {args.plot}."
        )


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from reszoo.bench import MODES, environment
    from reszoo.devices import preferred_memory_format, resolve_device
    from reszoo.registry import list_models, unknown_name_error

    names = list_models(args.pattern)
    if not names:
        raise unknown_name_error("model", args.pattern, list_models())
    _check_args(args)
    device = resolve_device(args.device)
    # Defaults per device: bf16 autocast on CUDA (tensor cores), fp32 elsewhere; the layout
    # that devices.preferred_memory_format measured faster.
    channels_last = args.channels_last
    if channels_last is None:
        channels_last = preferred_memory_format(device.type) == torch.channels_last
    settings = {"device": device, "dtype": args.dtype or ("bf16" if device.type == "cuda" else "fp32")}
    settings["channels_last"] = channels_last
    modes = MODES if args.mode == "both" else (args.mode,)
    env = environment(device)
    print(f"device: {env['device_name']}  torch {env['torch']}  threads {env['threads']}")
    run = _run_compare if args.compare else _run_sweep
    results = run(args, names, modes, settings)
    _write(results, args, env)
    return 0


def _run_compare(args: argparse.Namespace, names: list[str], modes: tuple[str, ...], settings: dict) -> list:
    """``--compare``: each model beside its equivalents, interleaved; prints the speed ratios."""
    from reszoo.bench import compare

    results = []
    batch = args.batch_size[0] if args.batch_size else None
    for name in names:
        for mode in modes:
            rs = compare(name, mode=mode, batch_size=batch, **settings)
            results += rs
            for r in rs[1:]:
                print(f"{mode}: reszoo / {r.model} = {r.extra['ratio_vs_reszoo']:.3f}")
    return results


def _run_sweep(args: argparse.Namespace, names: list[str], modes: tuple[str, ...], settings: dict) -> list:
    """Each model at each batch size (the device's default when none is given)."""
    from reszoo.bench import sweep
    from reszoo.registry import create_model

    min_run_time = args.min_run_time
    if min_run_time is None:
        min_run_time = 1.0 if settings["device"].type == "cpu" else 2.0
    results = []
    for name in names:
        for mode in modes:
            results += sweep(
                lambda name=name: create_model(name),
                batch_sizes=args.batch_size or [None],
                name=name,
                mode=mode,
                input_size=args.input_size,
                compile=args.compile,
                cuda_graphs=args.cuda_graphs,
                min_run_time=min_run_time,
                peak_tflops=args.peak_tflops,
                **settings,
            )
    return results


def _write(results: list, args: argparse.Namespace, env: dict[str, Any]) -> None:
    from reszoo.bench import plot, to_csv, to_json, to_table

    print(to_table(results))
    if args.json:
        to_json(results, args.json, env=env)
    if args.csv:
        to_csv(results, args.csv)
    if args.plot:
        plot(results, args.plot)
