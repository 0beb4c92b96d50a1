"""The standard suite: every registered model, inference and training, on CPU and (if present) CUDA.

    python benchmarks/run_suite.py                    # CPU, and CUDA when present
    python benchmarks/run_suite.py --devices cuda     # e.g. on an H100: bf16, channels_last, batch 256

Writes benchmarks/results/<device>-<date>.json (environment + one row per measurement) and a
markdown summary next to it (.md), both rewritten after every row, so an interrupted suite keeps
what it measured. Out-of-memory batch sizes are recorded as "oom", other failures as "error".
On a GPU, run `python benchmarks/gpu_check.py` first: it checks that the timings can be trusted.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import pathlib
import re
from typing import Any

# torch and reszoo are imported where they are used, so that a mistyped argument is refused at once.

HERE = pathlib.Path(__file__).parent

# Per device: batch sizes (CIFAR, ImageNet), dtype, seconds per measurement. CPU settings keep the
# whole suite to minutes on 2 cores; CUDA settings follow the aims (batch 256, bf16).
SETTINGS = {
    "cpu": {"batch": (32, 8), "dtype": "fp32", "min_run_time": 0.5, "warmup": 1},
    "cuda": {"batch": (256, 256), "dtype": "bf16", "min_run_time": 2.0, "warmup": 10},
}


def run(
    device: str, pattern: str | None, compile_mode: str | None, cuda_graphs: bool, on_result: Any = None
) -> list[Any]:
    """Measure the suite on ``device``; ``on_result(results)`` is called after every row."""
    import torch

    from reszoo import bench
    from reszoo.bench import reporting as report
    from reszoo.models._factory import create_model
    from reszoo.models.registry import default_config, list_models
    from reszoo.utils.devices import preferred_memory_format

    s = SETTINGS[device]
    channels_last = preferred_memory_format(device) == torch.channels_last
    results = []
    for name in list_models(pattern):
        batch = s["batch"][0 if default_config(name).stem == "cifar" else 1]
        for mode in ("infer", "train"):
            r = bench.measure(
                create_model(name),
                batch_size=batch,
                mode=mode,
                device=device,
                dtype=s["dtype"],
                channels_last=channels_last,
                compile=compile_mode,
                cuda_graphs=cuda_graphs,
                warmup=s["warmup"],
                min_run_time=s["min_run_time"],
                name=name,
            )
            print(report.summary_line(r) if r.status == "ok" else f"{name} {mode}: {r.status}", flush=True)
            results.append(r)
            if on_result is not None:
                on_result(results)
    return results


def _write(results: list[Any], *, out: pathlib.Path, env: dict[str, Any], command: str, date: str) -> None:
    """The JSON rows and the markdown table so far (both replaced whole: a reader never sees half a file)."""
    from reszoo.bench import reporting as report
    from reszoo.utils.fileio import atomic_path

    report.to_json(results, str(out.with_suffix(".json")), env=env)
    md = [
        f"# {env['device_name']} ({env['device_type']}), {date}",
        "",
        f"Command: `{command}`; torch {env['torch']}, torchvision {env.get('torchvision')}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, driver {env.get('driver')}, {env['threads']} threads.",
        "",
        report.to_table(results, markdown=True),
        "",
    ]
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(md), encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--devices", nargs="+", choices=tuple(SETTINGS), default=None, help="default: cpu, plus cuda when present"
    )
    p.add_argument("--pattern", default=None, help="fnmatch filter on model names")
    p.add_argument(
        "--compile", default=None, metavar="MODE", help="torch.compile mode, for the --devices named (required with it)"
    )
    p.add_argument("--cuda-graphs", action="store_true")
    p.add_argument("--out-dir", default=str(HERE / "results"))
    args = p.parse_args()
    # Check everything before the first measurement, not after a device's suite has run.
    if args.cuda_graphs and args.devices != ["cuda"]:
        p.error(f"--cuda-graphs needs --devices cuda alone, received devices {args.devices or 'the default'}")
    if args.compile is not None and not args.devices:
        # Compiling the whole CPU suite takes hours: compile only on the devices asked for.
        p.error(f"--compile {args.compile} needs --devices (the devices to compile on), e.g. --devices cuda")
    import torch

    from reszoo import bench
    from reszoo.models.registry import list_models
    from reszoo.utils.devices import compile_modes

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        p.error("--devices cuda needs a CUDA GPU; received --devices cuda on a machine without one")
    if args.compile is not None and args.compile not in compile_modes():
        p.error(f"unknown --compile {args.compile!r}; valid choices: {', '.join(compile_modes())}")
    if not list_models(args.pattern):
        p.error(f"--pattern {args.pattern!r} matches no model; valid names: {', '.join(list_models())}")
    date = datetime.date.today().isoformat()
    pathlib.Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    for device in devices:
        env = bench.environment(device)
        tag = re.sub(r"[^a-z0-9]+", "-", f"{device}-{env['device_name']}".lower()).strip("-")
        out = pathlib.Path(args.out_dir) / f"{tag}-{date}"
        command = "python benchmarks/run_suite.py --devices " + device
        if args.pattern:
            command += f" --pattern '{args.pattern}'"
        if args.compile:
            command += f" --compile {args.compile}"
        if args.cuda_graphs:
            command += " --cuda-graphs"
        write = functools.partial(_write, out=out, env=env, command=command, date=date)
        run(device, args.pattern, args.compile, args.cuda_graphs, on_result=write)
        print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
