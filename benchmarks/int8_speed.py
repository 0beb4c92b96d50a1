"""int8 speed against fp32 and bf16, side by side in one process (issue 24).

    python benchmarks/int8_speed.py                                  # resnet56:128 resnet50:16 resnet20:128
    python benchmarks/int8_speed.py --configs resnet56:128 --rounds 12 --threads 2

For each model and batch size, every path is built from the same weights and timed round-robin
(``reszoo.bench.interleaved``, the order alternating each round, blocks of at least 0.1 s), so a
busy machine slows all alike and the ratios stay fair:

  fp32           optimize_for_inference(model): BN folded, inductor with freezing (the CPU default)
  bf16           optimize_for_inference(model, dtype="bf16"), where the CPU has native bf16
  int8 torchao   torchao's X86InductorQuantizer recipe as it comes, compiled the same way
  int8           optimize_for_inference(model, dtype="int8", calibration=...): reszoo's recipe
                 (stem and head in fp32, shared padding scale, bias correction)

The CIFAR nets use the original weights and 500 real calibration images where ``../shared/data``
(or ``$RESZOO_SHARED_DATA``) holds them; ResNet-50 uses random weights and random calibration
images (speed does not depend on the values). Results go to
``benchmarks/results/int8-speed-<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import int8_accuracy as acc  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BLOCK_S = 0.1


def build(name: str, batch: int) -> tuple[dict, dict, torch.Tensor]:
    import reszoo
    from reszoo.infer.freezing import FrozenCompiled
    from reszoo.utils.cpuinfo import cpu_features

    real = name in acc.CHECKPOINTS and (acc.shared_data() / acc.IMAGES).exists()
    if real:
        model, cal, held, _ = acc.setup(name, 0, 50)
        x = held[:batch].contiguous()
    else:
        torch.manual_seed(0)
        model = reszoo.create_model(name).eval()
        cal = torch.randn(64, *model.config.input_size)
        x = torch.randn(batch, *model.config.input_size)
    makers = {
        "fp32": lambda: reszoo.optimize_for_inference(model),
        "bf16": lambda: reszoo.optimize_for_inference(model, dtype="bf16"),
        "int8 torchao": lambda: FrozenCompiled(acc.build(model, cal, acc.Variant())[1]),
        "int8": lambda: reszoo.optimize_for_inference(model, dtype="int8", calibration=cal),
    }
    if not cpu_features()["bf16"]:
        del makers["bf16"]
    nets, facts = {}, {"weights": "original, real calibration images" if real else "random"}
    for path, make in makers.items():
        start = time.perf_counter()
        net = make()
        with torch.no_grad():
            net(x)
        facts[path] = {"prepare_s": round(time.perf_counter() - start, 1)}
        nets[path] = net
        print(f"  {path:13s} ready in {facts[path]['prepare_s']} s", flush=True)
    return nets, facts, x


def measure(name: str, batch: int, rounds: int) -> dict:
    from reszoo.utils.timing import interleaved

    torch._dynamo.reset()
    print(f"{name} batch {batch}:", flush=True)
    nets, facts, x = build(name, batch)

    def step(net):
        def run():
            with torch.no_grad():
                return net(x)

        return run

    steps = {path: step(net) for path, net in nets.items()}
    fastest = math.inf
    for s in steps.values():
        start = time.perf_counter()
        s()
        fastest = min(fastest, time.perf_counter() - start)
    number = max(1, math.ceil(BLOCK_S / fastest))
    times = interleaved(steps, rounds=rounds, number=number, warmup=1)
    base = times["fp32"]
    for path, ts in times.items():
        median = statistics.median(ts)
        facts[path].update(
            images_per_s=round(batch / median, 1),
            ratio_vs_fp32=round(statistics.median(base) / median, 2),
            paired_ratio_vs_fp32=round(statistics.median(b / t for b, t in zip(base, ts, strict=True)), 2),
            times_ms=[round(1e3 * t, 2) for t in ts],
        )
        print(f"  {path:13s} {batch / median:9.1f} img/s  {facts[path]['ratio_vs_fp32']:.2f}x fp32", flush=True)
    return {"model": name, "batch_size": batch, "steps_per_block": number, "rounds": rounds, "paths": facts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["resnet56:128", "resnet50:16", "resnet20:128"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]
    rows = [measure(c.split(":")[0], int(c.split(":")[1]), args.rounds) for c in args.configs]
    import torchao

    env = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "torchao": torchao.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "note": "shared machine: other work ran on the same cores; ratios are interleaved, absolute img/s are not",
    }
    out = args.out or RESULTS / f"int8-speed-{env['date']}.json"
    out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
