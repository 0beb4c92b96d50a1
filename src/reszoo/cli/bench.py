"""``reszoo bench``: throughput of registered models (a thin wrapper over ``reszoo.bench``)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from reszoo.cli._common import DEVICE_HELP, OUTPUT_HELP, check_output_path
from reszoo.utils.choices import BENCH_COMPARISONS, BENCH_MODES, DTYPES


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
    from reszoo.utils.devices import resolve_device

    try:
        resolve_device(text, check=False)  # the spelling now; availability when the command runs
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


# Options that only apply to a plain measurement; --compare ignores them, so it refuses them.
_NOT_WITH_COMPARE = ("input_size", "compile", "cuda_graphs", "min_run_time", "peak_tflops")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure images/s of models (inference or training step)")
    p.add_argument("pattern", help="a model name or fnmatch wildcard, e.g. resnet56 or 'resnet*'")
    p.add_argument("--device", type=_device, default=None, help=DEVICE_HELP)
    p.add_argument(
        "--mode",
        choices=(*BENCH_MODES, "both"),
        default="infer",
        help="infer: a forward pass; train: forward, backward and an SGD step; both (default: infer)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        nargs="+",
        default=None,
        help="one or more (a sweep); default: one per device and input size (reszoo.bench.default_batch_size)",
    )
    p.add_argument(
        "--input-size",
        type=_positive_int,
        nargs=3,
        metavar=("C", "H", "W"),
        default=None,
        help="the input of one image; default: the model's (3 32 32 for CIFAR nets, 3 224 224 for ImageNet nets)",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="fp32, tf32 (NVIDIA Ampere or newer), or bf16/fp16 autocast; default: bf16 on CUDA, fp32 elsewhere",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory format; default: the layout measured faster on the device type",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        metavar="MODE",
        help="torch.compile the model; MODE is a torch.compile mode (e.g. reduce-overhead), 'default' if omitted",
    )
    p.add_argument(
        "--cuda-graphs", action="store_true", help="capture each step in a CUDA graph (CUDA only; not with --compile)"
    )
    p.add_argument("--min-run-time", type=_positive_float, default=None, help="timed seconds per measurement")
    p.add_argument("--peak-tflops", type=_positive_float, default=None, help="override the device's peak")
    p.add_argument(
        "--compare",
        choices=BENCH_COMPARISONS,
        default=None,
        help="side by side, from the same weights: torchvision (or the reference CIFAR net) or timm (needs timm); "
        "onnxruntime: the same model in ONNX Runtime (CPU inference; needs reszoo[onnx])",
    )
    p.add_argument(
        "--json", default=None, metavar="PATH", help=f"write the results and the environment as JSON ({OUTPUT_HELP})"
    )
    p.add_argument(
        "--csv", default=None, metavar="PATH", help=f"write the results as CSV, one row per measurement ({OUTPUT_HELP})"
    )
    p.add_argument("--plot", default=None, metavar="PATH", help=f"PNG of images/s, needs matplotlib ({OUTPUT_HELP})")
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
    if args.compare == "onnxruntime":
        _check_onnxruntime_compare(args)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise InvalidArgumentError(
            f"--plot needs matplotlib (pip install 'reszoo[plot]'); received --plot {args.plot}."
        )


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from reszoo.bench.machine import environment, environment_warnings
    from reszoo.models.registry import list_models
    from reszoo.utils.checks import unknown_name_error
    from reszoo.utils.devices import preferred_memory_format, resolve_device

    names = list_models(args.pattern)
    if not names:
        raise unknown_name_error("model", args.pattern, list_models())
    _check_args(args)
    _check_outputs(args)
    device = resolve_device(args.device)
    # Defaults per device: bf16 autocast on CUDA (tensor cores), fp32 elsewhere; the layout
    # that devices.preferred_memory_format measured faster.
    channels_last = args.channels_last
    if channels_last is None:
        channels_last = preferred_memory_format(device.type) == torch.channels_last
    settings = {"device": device, "dtype": args.dtype or ("bf16" if device.type == "cuda" else "fp32")}
    settings["channels_last"] = channels_last
    modes = BENCH_MODES if args.mode == "both" else (args.mode,)
    env = environment(device)  # before measuring: the load average says what else the machine does
    print(f"device: {env['device_name']}  torch {env['torch']}  threads {env['threads']}  cores {env['cores']}")
    _warn(environment_warnings(env))
    if args.compare:
        results = _run_compare(args, names, modes, settings)
    else:
        results = _run_sweep(args, names, modes, settings, env=env)
    _write(results, args, env)
    return 0


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def _check_outputs(args: argparse.Namespace) -> None:
    """--json, --csv and --plot name files the output rule allows (``cli._common.check_output_path``), and
    three different ones: refused before anything is measured."""
    from reszoo.errors import InvalidArgumentError

    given = {option: getattr(args, option) for option in ("json", "csv", "plot") if getattr(args, option)}
    for option, value in given.items():
        check_output_path(option, value, command="bench")
    targets = [Path(value).resolve() for value in given.values()]
    if len(set(targets)) < len(targets):
        same = " and ".join(f"--{option} {value}" for option, value in given.items())
        raise InvalidArgumentError(f"--json, --csv and --plot write different files; received {same}.")


def _check_onnxruntime_compare(args: argparse.Namespace) -> None:
    """``--compare onnxruntime`` is fp32 inference on the CPU: refuse anything else, naming it."""
    from reszoo.errors import InvalidArgumentError

    wrong = [
        f"{option} {value}"
        for option, value, allowed in (
            ("--mode", args.mode, ("infer",)),
            ("--device", args.device, (None, "cpu")),
            ("--dtype", args.dtype, (None, "fp32")),
            ("--channels-last", args.channels_last, (None,)),
        )
        if value not in allowed
    ]
    if wrong:
        raise InvalidArgumentError(
            "--compare onnxruntime times fp32 inference on the CPU with each runtime's own layout; it does not "
            f"take {', '.join(wrong)}."
        )


def _run_onnxruntime_compare(names: list[str], batch: int | None) -> list:
    """``--compare onnxruntime``: eager, optimize_for_inference and ONNX Runtime, interleaved, per model."""
    from reszoo.bench.ort_compare import compare_onnxruntime

    results = []
    for name in names:
        rs = compare_onnxruntime(name, batch_size=batch)
        results += rs
        for r in rs:
            extra = r.extra
            print(
                f"infer: {r.model} / onnxruntime = {extra['ratio_vs_onnxruntime']:.3f}  (prepared in "
                f"{extra['prepare_seconds']:.1f} s, max |diff| vs eager {extra['max_abs_diff']:.1e})"
            )
    return results


def _run_compare(args: argparse.Namespace, names: list[str], modes: tuple[str, ...], settings: dict) -> list:
    """``--compare``: each model beside its equivalents, interleaved; prints the speed ratios."""
    from reszoo.bench.comparing import compare

    results = []
    batch = args.batch_size[0] if args.batch_size else None
    if args.compare == "onnxruntime":
        return _run_onnxruntime_compare(names, batch)
    for name in names:
        for mode in modes:
            rs = compare(name, peer=args.compare, mode=mode, batch_size=batch, **settings)
            results += rs
            for r in rs[1:]:
                ratio, gap = r.extra["ratio_vs_reszoo"], r.extra["max_abs_diff"]
                print(f"{mode}: reszoo / {r.model} = {ratio:.3f}  (max |diff| of outputs {gap:.1e})")
    return results


def _run_sweep(
    args: argparse.Namespace, names: list[str], modes: tuple[str, ...], settings: dict, *, env: dict[str, Any]
) -> list:
    """Each model at each batch size (the device's default when none is given).

    A progress bar on stderr counts the measurements, and --json / --csv are rewritten after each
    one, so a long sweep shows where it is and an interrupted one keeps the rows it measured.
    """
    from tqdm.auto import tqdm

    from reszoo.bench.measuring import sweep
    from reszoo.bench.reporting import to_csv, to_json
    from reszoo.models._factory import create_model

    min_run_time = args.min_run_time
    if min_run_time is None:
        min_run_time = 1.0 if settings["device"].type == "cpu" else 2.0
    batch_sizes = args.batch_size or [None]
    results: list = []
    bar = tqdm(total=len(names) * len(modes) * len(batch_sizes), unit="run", disable=None, leave=False)

    def done(result: Any) -> None:
        results.append(result)
        bar.update(1)
        if args.json:
            to_json(results, args.json, env=env)
        if args.csv:
            to_csv(results, args.csv)

    try:
        for name in names:
            for mode in modes:
                bar.set_description(f"{name} {mode}")
                sweep(
                    lambda name=name: create_model(name),
                    batch_sizes=batch_sizes,
                    name=name,
                    mode=mode,
                    input_size=args.input_size,
                    compile=args.compile,
                    cuda_graphs=args.cuda_graphs,
                    min_run_time=min_run_time,
                    peak_tflops=args.peak_tflops,
                    on_result=done,
                    **settings,
                )
    finally:
        bar.close()
    return results


def _write(results: list, args: argparse.Namespace, env: dict[str, Any]) -> None:
    from reszoo.bench.reporting import notes, plot, to_csv, to_json, to_table

    print(to_table(results))
    _warn(notes(results))
    if args.json:
        to_json(results, args.json, env=env)
    if args.csv:
        to_csv(results, args.csv)
    if args.plot:
        plot(results, args.plot)
