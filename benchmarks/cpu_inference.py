"""CPU inference, every path side by side: reszoo against ONNX Runtime on the same model (issue 14).

    python benchmarks/cpu_inference.py                                # all configs, 2 threads
    python benchmarks/cpu_inference.py --configs resnet56:1 --rounds 5 --paths eager optimized onnxruntime
    python benchmarks/cpu_inference.py --profile                      # where the time goes, per op

For each model and batch size, one process builds every path from the same weights and times them
round-robin (``reszoo.bench.interleaved``; the order alternates each round), so a busy machine
slows all paths alike and the ratios stay fair:

  baseline     torchvision's eager model (ResNet-50) or the reference CIFAR net (ResNet-56), NCHW
  eager        reszoo's model as built, NCHW
  folded       optimize_for_inference(model, compile=False): BatchNorm folded, channels_last input
  optimized    optimize_for_inference(model): the CPU default, inductor with freezing
  onnxruntime  optimize_for_inference(model, backend="onnxruntime"): torch.onnx.export(dynamo=True),
               ONNX Runtime with every graph optimisation and torch's thread count
  auto         optimize_for_inference(model, backend="auto", example_inputs=x): the faster of
               optimized and onnxruntime, timed on this batch when it is prepared
  bf16         optimize_for_inference(model, dtype="bf16"), where the CPU has native bf16
  int8         optimize_for_inference(model, dtype="int8", calibration=4 batches), compiled

Weights are random (speed does not depend on them). Each row records the one-off cost of
preparing the path (export, compilation on the first call: cold, with empty caches, unless
--warm-caches) and its largest difference from the eager fp32 logits. bf16/int8 agreement with
fp32 is measured on a network trained for seconds on a learnable task (--agreement), since the
top-1 of a random network is noise. The JSON (and a markdown table beside it) goes to
benchmarks/results/cpu-inference-<date>.json; --plot draws the ratios to ONNX Runtime.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PATHS = ("baseline", "eager", "folded", "optimized", "onnxruntime", "auto", "bf16", "int8")
CONFIGS = ("resnet50:1", "resnet50:16", "resnet56:1", "resnet56:128")
RESULTS = Path(__file__).resolve().parent / "results"
# Each timed block lasts at least this long, so that the timer's resolution and the first call's
# cache misses do not dominate small batches.
BLOCK_S = 0.1


def parse_config(text: str) -> tuple[str, int]:
    name, _, batch = text.partition(":")
    if not batch.isdigit() or int(batch) < 1:
        raise argparse.ArgumentTypeError(f"a config is NAME:BATCH, e.g. resnet50:16; received {text!r}")
    return name, int(batch)


def build_paths(name: str, batch: int, wanted: list[str]) -> tuple[dict, dict]:
    """{path: (callable, input)} and {path: facts} for one model and batch size."""
    import torch

    import reszoo
    from reszoo.bench.comparing import comparison_models
    from reszoo.utils.cpuinfo import cpu_features

    torch.manual_seed(0)
    model = reszoo.create_model(name).eval()
    size = model.config.input_size
    x = torch.randn(batch, *size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = model(x)

    def baseline():
        label, make = list(comparison_models(name).items())[1]
        net = make().eval()
        if label.startswith("torchvision"):
            net.load_state_dict(model.state_dict())  # same weights: the outputs are comparable
        return net, x, label

    def calibration():
        return [torch.randn(max(batch, 8), *size, generator=torch.Generator().manual_seed(i)) for i in range(4)]

    makers = {
        "baseline": baseline,
        "eager": lambda: (model, x, "reszoo eager"),
        "folded": lambda: (reszoo.optimize_for_inference(model, compile=False), x_cl, "BN folded, channels_last"),
        "optimized": lambda: (reszoo.optimize_for_inference(model), x, "inductor + freezing (default)"),
        "onnxruntime": lambda: (reszoo.optimize_for_inference(model, backend="onnxruntime"), x, "ONNX Runtime"),
        "auto": lambda: (
            reszoo.optimize_for_inference(model, backend="auto", example_inputs=x),
            x,
            "auto (faster of the two on this batch)",
        ),
        "bf16": lambda: (reszoo.optimize_for_inference(model, dtype="bf16"), x, "bf16, compiled"),
        "int8": lambda: (
            reszoo.optimize_for_inference(model, dtype="int8", calibration=calibration()),
            x,
            "int8 PT2E, compiled",
        ),
    }
    if "bf16" in wanted and not cpu_features()["bf16"]:
        print(f"skipping bf16: no native bf16 on this CPU ({cpu_features()['capability']})", flush=True)
        wanted = [p for p in wanted if p != "bf16"]
    steps, facts = {}, {}
    for path in wanted:
        start = time.perf_counter()
        net, inp, label = makers[path]()
        with torch.inference_mode():
            out = net(inp)  # compilation and export happen here
        prepare = time.perf_counter() - start
        diff = float((out.float() - ref).abs().max()) if path != "baseline" or "torchvision" in label else None
        facts[path] = {
            "label": label,
            "prepare_seconds": round(prepare, 2),
            "max_abs_diff_vs_eager": diff,
            "relative_diff": None if diff is None else diff / float(ref.abs().max()),
        }
        if hasattr(net, "selection"):
            facts[path]["chosen"] = net.selection["chosen"]
            facts[path]["label"] = f"chose {net.selection['chosen']}"
        if hasattr(net, "export_seconds"):
            facts[path].update(export_seconds=round(net.export_seconds, 2), export_cached=net.from_cache)
        steps[path] = _step(net, inp)
        print(f"  {path:12s} ready in {prepare:6.1f} s  max|diff| {diff}", flush=True)
    return steps, facts


def _step(net, inp):
    import torch

    def step():
        with torch.inference_mode():
            return net(inp)

    return step


def block_length(steps: dict) -> int:
    """Steps per timed block so that the fastest path's block lasts at least BLOCK_S."""
    fastest = math.inf
    for step in steps.values():
        start = time.perf_counter()
        step()
        fastest = min(fastest, time.perf_counter() - start)
    return max(1, math.ceil(BLOCK_S / fastest))


def measure_config(name: str, batch: int, wanted: list[str], rounds: int) -> dict:
    import torch

    from reszoo.bench.comparing import interleaved
    from reszoo.bench.measuring import median_iqr

    torch._dynamo.reset()  # each config starts with dynamo's caches empty (its recompile limit is 8)
    print(f"{name} batch {batch}:", flush=True)
    steps, facts = build_paths(name, batch, wanted)
    number = block_length(steps)
    # The pause before each block lets ONNX Runtime's spinning intra-op threads go idle, so they do
    # not take the cores of the path timed after it.
    times = interleaved(steps, rounds=rounds, number=number, warmup=1, pause=0.02)
    ort = statistics.median(times["onnxruntime"]) if "onnxruntime" in times else None
    for path, ts in times.items():
        median, iqr = median_iqr(ts)
        facts[path].update(
            images_per_s=batch / median,
            median_ms=1e3 * median,
            iqr_ms=1e3 * iqr,
            ratio_vs_onnxruntime=None if ort is None else ort / median,
            paired_ratio_vs_onnxruntime=None
            if ort is None
            else statistics.median(o / t for o, t in zip(times["onnxruntime"], ts, strict=True)),
            times_ms=[round(1e3 * t, 3) for t in ts],
        )
        print(f"  {path:12s} {batch / median:9.1f} img/s  x{facts[path]['ratio_vs_onnxruntime'] or 0:.2f} of ORT")
    return {"model": name, "batch_size": batch, "steps_per_block": number, "rounds": rounds, "paths": facts}


def agreement(steps: int = 300) -> dict:
    """bf16 and int8 top-1 agreement with fp32 on 2,000 held-out inputs of a trained resnet20."""
    import torch
    import torch.nn.functional as F

    import reszoo
    from reszoo.utils.cpuinfo import cpu_features

    def task(n, seed):  # which quadrant holds a bright square: learnt in a few hundred steps
        g = torch.Generator().manual_seed(seed)
        x, y = 0.5 * torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 4, (n,), generator=g)
        for i, label in enumerate(y.tolist()):
            top, left = (label // 2) * 16 + 2, (label % 2) * 16 + 2
            x[i, :, top : top + 12, left : left + 12] += 1.0 + torch.rand(3, 1, 1, generator=g)
        return x, y

    torch.manual_seed(0)
    model = reszoo.create_model("resnet20", num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    for step in range(steps):
        x, y = task(64, step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = task(2000, 10**6)
    with torch.inference_mode():
        fp32 = model(x).argmax(1)
    out = {"model": "resnet20 (4 classes, trained on a synthetic task)", "held_out": len(y), "train_steps": steps}
    out["fp32_accuracy"] = float((fp32 == y).float().mean())
    paths = {"int8": {"dtype": "int8", "calibration": [task(64, 2 * 10**6 + i) for i in range(4)]}}
    if cpu_features()["bf16"]:
        paths["bf16"] = {"dtype": "bf16"}
    for path, kwargs in paths.items():
        net = reszoo.optimize_for_inference(model, **kwargs)
        with torch.inference_mode():
            got = torch.cat([net(b) for b in x.split(500)]).argmax(1)
        out[f"{path}_agreement_with_fp32"] = float((got == fp32).float().mean())
        print(f"{path}: top-1 agreement with fp32 {out[f'{path}_agreement_with_fp32']:.4f}", flush=True)
    return out


def profile(name: str, batch: int, top: int = 8) -> dict:
    """Per-op self time of the torch paths (torch.profiler) and per-op-type time in ONNX Runtime."""
    import collections

    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    import reszoo

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = reszoo.create_model(name).eval()
    x = torch.randn(batch, *model.config.input_size)
    nets = {
        "eager": (model, x),
        "folded": (
            reszoo.optimize_for_inference(model, compile=False),
            x.contiguous(memory_format=torch.channels_last),
        ),
        "optimized": (reszoo.optimize_for_inference(model), x),
    }
    out = {}
    for path, (net, inp) in nets.items():
        with torch.inference_mode():
            for _ in range(3):
                net(inp)
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    net(inp)
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows)
        out[path] = {e.key: round(e.self_cpu_time_total / 3e3, 2) for e in rows[:top]}  # ms per call
        out[path]["total_ms"] = round(total / 3e3, 2)
    ort = reszoo.optimize_for_inference(model, backend="onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:  # ONNX Runtime writes its profile file; keep it out of the cwd
        options.profile_file_prefix = str(Path(tmp) / "ort_profile")
        session = onnxruntime.InferenceSession(str(ort.path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        for _ in range(6):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op, nodes = collections.Counter(), [e for e in events if e.get("cat") == "Node"]
    for e in nodes[len(nodes) // 2 :]:  # the last 3 of 6 runs
        per_op[e["args"].get("op_name", "?")] += e["dur"]
    out["onnxruntime"] = {op: round(us / 3e3, 2) for op, us in per_op.most_common(top)}
    out["onnxruntime"]["total_ms"] = round(sum(per_op.values()) / 3e3, 2)
    return out


def markdown(doc: dict) -> str:
    env, cpu = doc["environment"], doc["cpu"]
    lines = [
        f"# CPU inference, {doc['date']}",
        "",
        f"`{doc['command']}`",
        "",
        f"CPU: {cpu['name']}, capability {cpu['capability']} (AVX512-BF16 {cpu['avx512_bf16']}, AMX {cpu['amx']}, "
        f"VNNI {cpu['vnni']}), {cpu['cores']} cores, {cpu['threads']} thread(s); torch {env['torch']}, "
        f"onnxruntime {doc.get('onnxruntime')}; load average before the run {env.get('load_average')}.",
        "",
        "| model | batch | path | img/s | x ONNX Runtime (paired) | prepare s | max abs diff (rel.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in doc["runs"]:
        for path, f in run["paths"].items():
            ratio = f.get("ratio_vs_onnxruntime")
            ratio_text = "-" if ratio is None else f"{ratio:.2f} ({f['paired_ratio_vs_onnxruntime']:.2f})"
            diff = f["max_abs_diff_vs_eager"]
            diff_text = "-" if diff is None else f"{diff:.1e} ({f['relative_diff']:.0e})"
            lines.append(
                f"| {run['model']} | {run['batch_size']} | {path}: {f['label']} | {f['images_per_s']:.1f} | "
                f"{ratio_text} | {f['prepare_seconds']:.1f} | {diff_text} |"
            )
    if "agreement" in doc:
        a = doc["agreement"]
        lines += [
            "",
            f"Top-1 agreement with fp32 ({a['model']}, {a['held_out']} held-out inputs, fp32 accuracy "
            f"{a['fp32_accuracy']:.3f}): "
            + ", ".join(f"{k.split('_')[0]} {v:.4f}" for k, v in a.items() if k.endswith("agreement_with_fp32")),
        ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = doc["runs"]
    paths = [p for p in PATHS if any(p in r["paths"] for r in runs)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(paths)
    for i, p in enumerate(paths):
        values = [r["paths"].get(p, {}).get("ratio_vs_onnxruntime") or 0 for r in runs]
        ax.bar([k + i * width for k in range(len(runs))], values, width, label=p)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(runs))])
    ax.set_xticklabels([f"{r['model']}\nbatch {r['batch_size']}" for r in runs])
    cpu = doc["cpu"]
    ax.set_ylabel("images/s relative to ONNX Runtime")
    threads = f"{cpu['threads']} thread{'s' * (cpu['threads'] != 1)}"
    ax.set_title(
        f"CPU inference, {cpu['name']} ({cpu['capability']}), {threads}, fp32 ONNX Runtime = 1 ({doc['date']})"
    )
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", type=parse_config, default=[parse_config(c) for c in CONFIGS])
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warm-caches", action="store_true", help="keep inductor's and reszoo's caches (default: empty)")
    p.add_argument("--agreement", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--profile", action="store_true", help="per-op profiles instead of timings")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/cpu-inference-<date>.json)")
    p.add_argument("--plot", default=None, help="PNG of the ratios to ONNX Runtime (needs matplotlib)")
    args = p.parse_args()
    if args.rounds < 2 or args.threads < 1:
        p.error(f"--rounds must be >= 2 and --threads >= 1; received {args.rounds}, {args.threads}")
    if not args.warm_caches:  # cold: the compile and export times a first deployment pays
        scratch = tempfile.mkdtemp(prefix="reszoo-cpu-inference-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(scratch, "inductor")
        os.environ["RESZOO_CACHE"] = os.path.join(scratch, "reszoo")
    import onnxruntime
    import torch

    from reszoo.bench.machine import environment
    from reszoo.utils.cpuinfo import cpu_features

    torch.set_num_threads(args.threads)
    date = datetime.date.today().isoformat()
    doc = {
        "date": date,
        "command": "python benchmarks/cpu_inference.py " + " ".join(sys.argv[1:]),
        "environment": environment("cpu"),
        "cpu": cpu_features(),
        "onnxruntime": onnxruntime.__version__,
        "caches": "warm" if args.warm_caches else "cold (empty inductor and reszoo caches)",
    }
    if args.profile:
        doc["profiles"] = {f"{n}:{b}": profile(n, b) for n, b in args.configs}
        print(json.dumps(doc["profiles"], indent=1))
    else:
        doc["runs"] = [measure_config(n, b, args.paths, args.rounds) for n, b in args.configs]
        if args.agreement:
            doc["agreement"] = agreement()
    out = Path(args.out or RESULTS / f"cpu-inference{'-profile' if args.profile else ''}-{date}.json")
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.profile:
        out.with_suffix(".md").write_text(markdown(doc))
        print(markdown(doc))
        if args.plot:
            plot(doc, args.plot)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
