"""Peak memory of one training step without and with gradient checkpointing, on the CPU.

    python benchmarks/grad_checkpointing_memory.py [--model resnet1202] [--batch-size 128]
        [--threads 2] [--out benchmarks/results/grad_checkpointing_memory.json]
    python benchmarks/grad_checkpointing_memory.py --timing [--batch-size 32] [--rounds 3] [--steps 2]

Three settings: off, ``set_grad_checkpointing(every="stage")`` (the default) and
``every="block"``. Each measurement runs in a fresh Python process that builds the model and a
batch and runs one training step (forward, cross-entropy, backward; an optimiser step adds the
same memory in every setting), so no run's freed memory can hide in another's peak:

- ``rss``: the kernel's high-water mark of resident memory (``ru_maxrss``) less what was resident
  before the step: the operating system's view, what runs a machine out of memory, including
  what the C allocator has freed but not returned. ``torch._dynamo``, which the first
  checkpointed call imports (about 150 MiB of code), is imported before the baseline in every
  setting. The step's wall time comes from these runs (one step, no warm-up, since a warm-up
  would lift the baseline to the peak: indicative only).
- ``rss`` with ``MALLOC_MMAP_THRESHOLD_=131072``: the same, with glibc's mmap threshold fixed at
  its default 128 KiB. Left dynamic, glibc raises the threshold to the size of each large block
  freed (up to 32 MiB), so later activations come from the heap, which returns freed memory to
  the system only from its top: the RSS can then stay near the no-checkpointing peak whatever
  checkpointing saves (docs/ecosystem.md has the figures). Fixed, every tensor of 128 KiB or more
  is its own mapping, returned to the system when it is freed.
- ``tensors``: the step under ``torch.profiler.profile(profile_memory=True)``, and the peak of its
  memory timeline: the bytes of all tensors alive at once (parameters, gradients, activations
  kept for backward, temporaries), exact and free of allocator effects. This is what
  checkpointing acts on.

The single steps above are timed too, but a first step's time is mostly the kernel mapping fresh
memory in (on the VM of docs/ecosystem.md the same step took 34 s in one run and 89 s in
another). ``--timing`` measures the cost of recomputation instead: one process, one model, the
three settings interleaved for ``--rounds`` rounds of ``--steps`` steps after an untimed one, so
memory is mapped, drift hits every setting alike, and the median step per setting is compared.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

CHILD = """
import json, resource, sys, tempfile, time, warnings
import torch, reszoo
from torch.profiler import ProfilerActivity, profile
torch.set_num_threads({threads})
torch.manual_seed(0)
model = reszoo.create_model({model!r}).train()
if {every!r}:
    model.set_grad_checkpointing(every={every!r})
x = torch.randn({batch}, 3, model.config.image_size, model.config.image_size)
y = torch.randint(0, model.num_classes, ({batch},))
def step():
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.item()
if {what!r} == "rss":
    import torch._dynamo  # checkpointing's first call imports it (about 150 MiB of code): not the step's memory
    with open("/proc/self/statm") as f:
        before_kib = int(f.read().split()[1]) * resource.getpagesize() // 1024
    start = time.perf_counter()
    loss = step()
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {{"rss_step_mib": (peak_kib - before_kib) / 1024, "rss_peak_mib": peak_kib / 1024, "step_s": seconds}}
else:
    activities = [ProfilerActivity.CPU]
    with profile(activities=activities, profile_memory=True, record_shapes=True, with_stack=True) as prof:
        loss = step()
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        # Deprecated in favour of CUDA's memory snapshots, which do not cover the CPU: still the CPU tool.
        warnings.simplefilter("ignore", FutureWarning)
        prof.export_memory_timeline(tmp + "/timeline.json", device="cpu")
        with open(tmp + "/timeline.json") as f:
            _, sizes = json.load(f)
    result = {{"tensor_peak_mib": max(sum(s) for s in sizes) / 2**20}}
print(json.dumps({{**result, "loss": loss}}))
"""

SETTINGS = {"off": None, "stage": "stage", "block": "block"}

TIMING_CHILD = """
import json, statistics, time
import torch, torch._dynamo, reszoo
torch.set_num_threads({threads})
model = reszoo.create_model({model!r}).train()
x = torch.randn({batch}, 3, model.config.image_size, model.config.image_size)
y = torch.randint(0, model.num_classes, ({batch},))
def step():
    start = time.perf_counter()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return time.perf_counter() - start
step()  # untimed: memory mapped, kernels chosen
times = {{label: [] for label in {settings!r}}}
for _ in range({rounds}):
    for label, every in {settings!r}.items():
        model.set_grad_checkpointing(every is not None, every or "stage")
        times[label] += [step() for _ in range({steps})]
print(json.dumps({{label: statistics.median(t) for label, t in times.items()}}))
"""


MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def measure(model: str, batch: int, threads: int, every: str | None, what: str, env: dict | None = None) -> dict:
    code = CHILD.format(model=model, batch=batch, threads=threads, every=every, what=what)
    environ = {**os.environ, **(env or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=7200, env=environ)
    if out.returncode != 0:  # -9: killed, most likely for memory
        sys.exit(f"the {every or 'off'} {what} run failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment(threads: int) -> dict:
    import torch

    return {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": len(os.sched_getaffinity(0)),
        "threads": threads,
        "platform": platform.platform(),
    }


def report(model: str, batch: int, threads: int, rows: dict[str, dict]) -> str:
    off = rows["off"]
    lines = [
        f"{model}, batch {batch}, one training step on the CPU ({threads} threads)",
        "",
        "| checkpointing | tensor peak (MiB) | RSS growth in the step (MiB) | same, mmap threshold fixed | step (s) |",
        "|---|---:|---:|---:|---:|",
    ]

    def cell(r: dict, key: str) -> str:
        change = "" if r is off else f" ({r[key] / off[key] - 1:+.0%})"
        return f"{r[key]:,.0f}{change}"

    for label, r in rows.items():
        lines.append(
            f"| {label} | {cell(r, 'tensor_peak_mib')} | {cell(r, 'rss_step_mib')} | {cell(r, 'mmap_rss_step_mib')} "
            f"| {r['step_s']:.0f} / {r['mmap_step_s']:.0f} |"
        )
    return "\n".join(lines)


def timing(args: argparse.Namespace) -> None:
    code = TIMING_CHILD.format(
        model=args.model, batch=args.batch_size, threads=args.threads, settings=SETTINGS,
        rounds=args.rounds, steps=args.steps,
    )  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=7200, check=True)
    medians = json.loads(out.stdout.strip().splitlines()[-1])
    runs = args.rounds * args.steps
    print(f"{args.model}, batch {args.batch_size}, median of {runs} warm training steps ({args.threads} threads)")
    print("| checkpointing | step (s) | vs off |\n|---|---:|---:|")
    for label, seconds in medians.items():
        print(f"| {label} | {seconds:.2f} | {seconds / medians['off'] - 1:+.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet1202")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--timing", action="store_true", help="median warm step time instead of memory")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the settings with --timing")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per setting and round with --timing")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        sys.exit("This measurement reads /proc and ru_maxrss in KiB: Linux only.")
    if args.timing:
        timing(args)
        return
    rows, losses = {}, set()
    for label, every in SETTINGS.items():
        rss = measure(args.model, args.batch_size, args.threads, every, "rss")
        fixed = measure(args.model, args.batch_size, args.threads, every, "rss", MMAP_ENV)
        tensors = measure(args.model, args.batch_size, args.threads, every, "tensors")
        losses |= {round(r.pop("loss"), 5) for r in (rss, fixed, tensors)}
        fixed = {"mmap_" + key: value for key, value in fixed.items()}
        rows[label] = {**rss, **fixed, **tensors}
        print(f"{label}: {rows[label]}", file=sys.stderr, flush=True)
    assert len(losses) == 1, f"the runs computed different losses: {losses}"
    rows_loss = losses.pop()
    print(report(args.model, args.batch_size, args.threads, rows))
    if args.out:
        result = {"model": args.model, "batch_size": args.batch_size, "environment": environment(args.threads)}
        with open(args.out, "w") as f:
            json.dump({**result, "loss": rows_loss, "rows": rows}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
