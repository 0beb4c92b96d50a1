"""The three CPU targets of issue 6, each measured side by side (round-robin) in one process.

    python benchmarks/compare.py [--targets parity fast train56] [--out benchmarks/results/...json]

parity:  our eager ResNet-50 vs torchvision's, inference and training step, batch 16, 224x224.
fast:    optimize_for_inference(resnet50, compile=True) vs torchvision eager fp32 NCHW inference.
train56: ResNet-56 training step with reszoo's defaults (channels_last) vs fp32 NCHW eager.
Ratios are what to quote; absolute times move with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

# torch, torchvision and reszoo are imported where they are used, so that a mistyped argument is
# refused at once.


def ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Speed of a relative to b (>1: a is faster), from median step times."""
    return statistics.median(times[b]) / statistics.median(times[a])


def paired_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of b's time / a's time in the same round (>1: a is faster).

    Both ran back to back in each round, so a slow spell of the machine falls on both and
    cancels in the ratio; this is steadier than the ratio of medians on a shared machine.
    """
    return statistics.median(tb / ta for ta, tb in zip(times[a], times[b], strict=True))


def summarise(times: dict[str, list[float]], batch: int) -> dict[str, dict[str, float]]:
    from reszoo import bench

    out = {}
    for key, ts in times.items():
        median, iqr = bench.median_iqr(ts)
        out[key] = {
            "median_ms": 1e3 * median,
            "iqr_ms": 1e3 * iqr,
            "images_per_s": batch / median,
            "rounds": len(ts),
            "times_ms": [round(1e3 * t, 2) for t in ts],
        }
    return out


def parity(rounds: int) -> dict:
    import torch
    import torchvision

    import reszoo
    from reszoo import bench

    res = {}
    for mode, number in (("infer", 2), ("train", 1)):
        torch.manual_seed(0)
        ours, tv = reszoo.create_model("resnet50"), torchvision.models.resnet50(weights=None)
        tv.load_state_dict(ours.state_dict())
        steps = {
            label: bench.make_step(m, mode=mode, input_size=(3, 224, 224), batch_size=16, device="cpu")
            for label, m in (("reszoo", ours), ("torchvision", tv))
        }
        times = bench.interleaved(steps, rounds=rounds, number=number)
        res[mode] = {
            "ratio_reszoo_over_torchvision": ratio(times, "reszoo", "torchvision"),
            "paired_ratio_reszoo_over_torchvision": paired_ratio(times, "reszoo", "torchvision"),
            "variants": summarise(times, 16),
        }
        print(
            mode,
            "reszoo/torchvision speed:",
            f"{res[mode]['ratio_reszoo_over_torchvision']:.3f}",
            f"(paired {res[mode]['paired_ratio_reszoo_over_torchvision']:.3f})",
            flush=True,
        )
    return res


def fast(rounds: int) -> dict:
    import torch
    import torchvision

    import reszoo
    from reszoo import bench

    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None).eval()
    ours = reszoo.create_model("resnet50").eval()
    x = torch.randn(16, 3, 224, 224)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    variants = {
        "reszoo optimize_for_inference(compile=True)": (reszoo.optimize_for_inference(ours, compile=True), x_cl),
        "reszoo optimize_for_inference(eager)": (reszoo.optimize_for_inference(ours, compile=False), x_cl),
        "torchvision eager fp32 NCHW": (tv, x),
    }

    def make(m, inp):
        def step():
            with torch.inference_mode():
                return m(inp)

        return step

    steps = {k: make(m, inp) for k, (m, inp) in variants.items()}
    with torch.inference_mode():
        t0 = time.perf_counter()
        steps["reszoo optimize_for_inference(compile=True)"]()  # compile outside the timing
        compile_s = time.perf_counter() - t0
        ref = ours(x)
        err = (variants["reszoo optimize_for_inference(compile=True)"][0](x_cl) - ref).abs().max().item()
    times = bench.interleaved(steps, rounds=rounds, number=2)
    out = {
        "compile_seconds": compile_s,
        "max_abs_diff_vs_eager": err,
        "ratio_compiled_over_torchvision": ratio(
            times, "reszoo optimize_for_inference(compile=True)", "torchvision eager fp32 NCHW"
        ),
        "ratio_eager_optimized_over_torchvision": ratio(
            times, "reszoo optimize_for_inference(eager)", "torchvision eager fp32 NCHW"
        ),
        "paired_ratio_compiled_over_torchvision": paired_ratio(
            times, "reszoo optimize_for_inference(compile=True)", "torchvision eager fp32 NCHW"
        ),
        "variants": summarise(times, 16),
    }
    print(
        "optimize_for_inference(compile) / torchvision eager:",
        f"{out['ratio_compiled_over_torchvision']:.3f}",
        flush=True,
    )
    print(
        "optimize_for_inference(eager) / torchvision eager:",
        f"{out['ratio_eager_optimized_over_torchvision']:.3f}",
        flush=True,
    )
    return out


def train56(rounds: int) -> dict:
    import torch

    import reszoo
    from reszoo import bench
    from reszoo.utils.devices import preferred_memory_format

    torch.manual_seed(0)
    cl = preferred_memory_format("cpu") == torch.channels_last
    steps = {
        label: bench.make_step(
            reszoo.create_model("resnet56"),
            mode="train",
            input_size=(3, 32, 32),
            batch_size=128,
            device="cpu",
            channels_last=channels_last,
        )
        for label, channels_last in (("reszoo defaults", cl), ("fp32 NCHW eager", False))
    }
    times = bench.interleaved(steps, rounds=rounds, number=1)
    out = {
        "channels_last": cl,
        "batch_size": 128,
        "ratio_defaults_over_nchw": ratio(times, "reszoo defaults", "fp32 NCHW eager"),
        "paired_ratio_defaults_over_nchw": paired_ratio(times, "reszoo defaults", "fp32 NCHW eager"),
        "variants": summarise(times, 128),
    }
    print("resnet56 train defaults / NCHW:", f"{out['ratio_defaults_over_nchw']:.3f}", flush=True)
    return out


TARGETS = {"parity": parity, "fast": fast, "train56": train56}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", choices=tuple(TARGETS), default=list(TARGETS))
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.rounds < 2:
        p.error(f"--rounds must be at least 2 (a median and an interquartile range need two), received {args.rounds}")
    from reszoo import bench

    doc = {
        "command": "python benchmarks/compare.py "
        + " ".join(
            f"--{k} {v if not isinstance(v, list) else ' '.join(v)}" for k, v in vars(args).items() if v is not None
        ),
        "environment": bench.environment("cpu"),
    }
    for t in args.targets:
        doc[t] = TARGETS[t](args.rounds)
    text = json.dumps(doc, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
