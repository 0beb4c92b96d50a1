"""``reszoo bench``: throughput of registered models (a thin wrapper over ``reszoo.bench``)."""

from __future__ import annotations

import argparse

from reszoo import bench  # loaded by `import reszoo` already; only torch.utils.benchmark is lazy


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
    try:
        bench._resolve_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


# Options that only apply to a plain measurement; --compare ignores them, so it refuses them.
_NOT_WITH_COMPARE = ("input_size", "compile", "cuda_graphs", "min_run_time", "peak_tflops")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure images/s of models (inference or training step)")
    p.add_argument("pattern", help="a model name or fnmatch wildcard, e.g. resnet56 or 'resnet*'")
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda, mps (default: the best present)")
    p.add_argument("--mode", choices=(*bench.MODES, "both"), default="infer")
    p.add_argument("--batch-size", type=_positive_int, nargs="+", default=None, help="one or more (a sweep)")
    p.add_argument("--input-size", type=_positive_int, nargs=3, metavar=("C", "H", "W"), default=None)
    p.add_argument("--dtype", choices=bench.DTYPES, default=None)
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


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from reszoo.registry import create_model, list_models, unknown_name_error

    names = list_models(args.pattern)
    if not names:
        raise unknown_name_error("model", args.pattern, list_models())
    if args.compare:
        given = [f"--{key.replace('_', '-')}" for key in _NOT_WITH_COMPARE if getattr(args, key) not in (None, False)]
        if given:
            raise ValueError(f"--compare uses default settings; it does not take {', '.join(given)}.")
        if args.batch_size and len(args.batch_size) > 1:
            raise ValueError(f"--compare takes one --batch-size, received {len(args.batch_size)}: {args.batch_size}.")
    device = bench._resolve_device(args.device)
    # Defaults per device: bf16 autocast on CUDA (tensor cores), fp32 elsewhere; the layout
    # that bench.preferred_memory_format measured faster.
    dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    channels_last = (
        args.channels_last
        if args.channels_last is not None
        else bench.preferred_memory_format(device.type) == torch.channels_last
    )
    modes = bench.MODES if args.mode == "both" else (args.mode,)
    min_run_time = args.min_run_time if args.min_run_time is not None else (1.0 if device.type == "cpu" else 2.0)
    env = bench.environment(device)
    print(f"device: {env['device_name']}  torch {env['torch']}  threads {env['threads']}")
    results = []
    if args.compare:
        for name in names:
            for mode in modes:
                batch = args.batch_size[0] if args.batch_size else None
                rs = bench.compare(
                    name, mode=mode, device=device, batch_size=batch, dtype=dtype, channels_last=channels_last
                )
                results += rs
                for r in rs[1:]:
                    print(f"{mode}: reszoo / {r.model} = {r.extra['ratio_vs_reszoo']:.3f}")
        try:
            import timm  # noqa: F401
        except ImportError:
            print("timm not installed: compared with torchvision / the reference implementation only")
    else:
        for name in names:
            for mode in modes:
                results += bench.sweep(
                    lambda name=name: create_model(name),
                    batch_sizes=args.batch_size or [None],
                    name=name,
                    mode=mode,
                    device=device,
                    input_size=args.input_size,
                    dtype=dtype,
                    channels_last=channels_last,
                    compile=args.compile,
                    cuda_graphs=args.cuda_graphs,
                    min_run_time=min_run_time,
                    peak_tflops=args.peak_tflops,
                )
    print(bench.to_table(results))
    if args.json:
        bench.to_json(results, args.json, env=env)
    if args.csv:
        bench.to_csv(results, args.csv)
    if args.plot:
        bench.plot(results, args.plot)
    return 0
