"""Can this machine's benchmark numbers be trusted? A few seconds of checks to run before any suite.

:func:`self_check` runs each check on a device and says what it found:

- ``fp32 is fp32``: an fp32 matmul and convolution agree with float64 to IEEE fp32 accuracy (not
  TF32's), and on a TF32 GPU a tf32 one does not (so tf32 rows are TF32); flags are put back.
- ``matmul peak (dtype)``: a large matmul reaches a plausible fraction of the device's peak in
  :data:`reszoo.bench.PEAK_TFLOPS`. Above 105 % the timing is wrong (not synchronised, or TF32
  in an fp32 row); below 25 % the GPU is throttled, shared, or its peak entry is wrong.
- ``synchronisation``: queued GPU work timed without waiting returns far sooner than when
  synchronised (the device runs asynchronously and synchronising waits for it), and
  ``torch.utils.benchmark``'s timer, run as :func:`reszoo.bench.measure` runs it, agrees with a
  synchronised clock.
- ``device scope`` (several GPUs): the same on the last GPU while GPU 0 is current.
- ``compiled rows compile``: a compiled measurement of a tiny ResNet reports ``compiled=True``
  with no recompiles.
- ``CUDA graphs``: graphed training under bf16 autocast runs (it needs autocast's cache off).
- ``peak memory``: a CUDA row reports its peak memory, counted after warm-up.

On a CPU the CUDA-only checks are skipped, each with its reason. ``benchmarks/gpu_check.py`` is
the command line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from reszoo.bench.machine import has_tf32, peak_tflops_for
from reszoo.bench.measuring import measure
from reszoo.models.resnet import ResNet, ResNetConfig
from reszoo.utils.accelerator import Accelerator, accelerator, fp32_flags
from reszoo.utils.devices import device_name, pin_device, precision

__all__ = ["Check", "format_checks", "judge_fp32", "judge_peak", "judge_sync", "judge_timer", "self_check"]

# Relative (Frobenius) error against float64: IEEE fp32 gives ~1e-7..1e-6 on these sizes, TF32
# (10-bit mantissa) ~1e-4..1e-3.
FP32_TOLERANCE = 2e-5
PLAUSIBLE_PEAK = (0.25, 1.05)
# Synchronised time over unsynchronised time for work queued on a GPU: launching takes
# microseconds, running it milliseconds.
MIN_SYNC_RATIO = 3.0
TIMER_AGREEMENT = (0.7, 1.5)


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` is ``"pass"``, ``"warn"``, ``"fail"``, ``"skip"`` or ``"info"``."""

    name: str
    status: str
    detail: str


def judge_peak(name: str, tflops: float, peak: float | None) -> Check:
    if peak is None:
        return Check(name, "info", f"{tflops:.3f} TFLOP/s (no peak known for this device)")
    frac = tflops / peak
    text = f"{tflops:.1f} TFLOP/s = {frac:.0%} of the {peak:g} TFLOP/s peak"
    if frac > PLAUSIBLE_PEAK[1]:
        why = "the timer does not wait for the device, TF32 ran in an fp32 row, or the peak entry is wrong"
        return Check(name, "fail", f"{text}: faster than the hardware can be; {why}")
    if frac < PLAUSIBLE_PEAK[0]:
        why = "low clocks or power limit, another process on the GPU, a MIG slice, or a wrong peak entry"
        return Check(name, "warn", f"{text}: far below peak; {why}")
    return Check(name, "pass", text)


def judge_sync(unsynced_s: float, synced_s: float) -> Check:
    ratio = synced_s / max(unsynced_s, 1e-12)
    text = f"queued work returned in {unsynced_s * 1e3:.2f} ms, finished in {synced_s * 1e3:.2f} ms ({ratio:.0f}x)"
    if ratio < MIN_SYNC_RATIO:
        return Check(
            "synchronisation",
            "fail",
            f"{text}: synchronising did not wait for the device; timings would be launch rates",
        )
    return Check("synchronisation", "pass", text)


def judge_timer(name: str, timer_s: float, clock_s: float) -> Check:
    ratio = timer_s / max(clock_s, 1e-12)
    text = f"benchmark timer {timer_s * 1e3:.3f} ms vs synchronised clock {clock_s * 1e3:.3f} ms per call"
    ok = TIMER_AGREEMENT[0] <= ratio <= TIMER_AGREEMENT[1]
    return Check(name, "pass" if ok else "fail", text if ok else f"{text}: they disagree ({ratio:.2f}x)")


def judge_fp32(errors: dict[str, float], tf32_errors: dict[str, float] | None, restored: bool) -> Check:
    text = ", ".join(f"{op} {err:.1e}" for op, err in errors.items())
    if any(err > FP32_TOLERANCE for err in errors.values()):
        return Check("fp32 is fp32", "fail", f"fp32 relative error {text} > {FP32_TOLERANCE:g}: fp32 rows are not IEEE")
    if not restored:
        return Check("fp32 is fp32", "fail", f"fp32 error {text}, but the precision flags were not put back")
    if tf32_errors is None:
        return Check("fp32 is fp32", "pass", f"fp32 relative error {text} (IEEE); flags put back")
    low = [op for op, err in tf32_errors.items() if err <= FP32_TOLERANCE]
    tf = ", ".join(f"{op} {err:.1e}" for op, err in tf32_errors.items())
    if low:
        return Check("fp32 is fp32", "warn", f"fp32 {text}; tf32 {tf}: tf32 rows ran IEEE for {', '.join(low)}")
    return Check("fp32 is fp32", "pass", f"fp32 {text} (IEEE); tf32 {tf} (TF32); flags put back")


def _per_call(fn: Callable[[], Any], acc: Accelerator, device: torch.device, *, calls: int, sync: bool) -> float:
    acc.synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if sync:
        acc.synchronize(device)
    return (time.perf_counter() - start) / calls


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).norm() / ref.norm())


def _fp32_errors(where: torch.device, dtype: str) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(256, 1024, generator=g).to(where) for _ in range(2))
    x, w = torch.randn(4, 64, 16, 16, generator=g).to(where), torch.randn(64, 64, 3, 3, generator=g).to(where)
    with precision(dtype, where.type):
        mm, conv = a @ b.T, F.conv2d(x, w, padding=1)
    return {
        "matmul": _relative_error(mm, a.double() @ b.double().T),
        "conv": _relative_error(conv, F.conv2d(x.double(), w.double(), padding=1)),
    }


def check_fp32(device: torch.device) -> Check:
    where = accelerator(device).tensor_device(device)
    before = fp32_flags()
    errors = _fp32_errors(where, "fp32")
    tf32 = _fp32_errors(where, "tf32") if has_tf32(device) else None
    return judge_fp32(errors, tf32, restored=fp32_flags() == before)


def check_peaks(device: torch.device, *, n: int) -> list[Check]:
    acc = accelerator(device)
    where = acc.tensor_device(device)
    dtypes = ["fp32"] + (["tf32"] if has_tf32(device) else []) + (["bf16"] if device.type == "cuda" else [])
    checks = []
    for dtype in dtypes:
        cast = torch.bfloat16 if dtype == "bf16" else torch.float32
        a, b = (torch.randn(n, n, device=where, dtype=cast) for _ in range(2))

        def mm(a: torch.Tensor = a, b: torch.Tensor = b, dtype: str = dtype) -> torch.Tensor:
            with precision("fp32" if dtype == "bf16" else dtype, where.type):
                return a @ b

        mm()
        seconds = _per_call(mm, acc, device, calls=5, sync=True)
        tflops = 2 * n**3 / seconds / 1e12
        checks.append(judge_peak(f"matmul peak ({dtype}, n={n})", tflops, peak_tflops_for(device_name(device), dtype)))
    return checks


def check_sync(device: torch.device, *, n: int, name: str = "synchronisation") -> list[Check]:
    """Unsynchronised against synchronised, and the benchmark timer against a synchronised clock."""
    from reszoo.utils.timing import torch_benchmark

    acc = accelerator(device)
    where = acc.tensor_device(device)
    a = torch.randn(n, n, device=where, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)

    def burst() -> None:
        for _ in range(20):
            a @ a

    burst()
    with acc.scope(device):
        unsynced = _per_call(burst, acc, device, calls=3, sync=False)
        acc.synchronize(device)
        synced = _per_call(burst, acc, device, calls=3, sync=True)
        timer = torch_benchmark().Timer(stmt="burst()", globals={"burst": burst})
        timed = timer.blocked_autorange(min_run_time=0.2).median
    sync = judge_sync(unsynced, synced)
    return [Check(name, sync.status, sync.detail), judge_timer(f"{name}: timer", timed, synced)]


def _tiny() -> ResNet:
    return ResNet(ResNetConfig(depths=(1, 1, 1), widths=(8, 16, 32), stem_width=8))


def check_compiled(device: torch.device) -> Check:
    r = measure(_tiny(), mode="infer", device=device, batch_size=8, compile="default", warmup=2, min_run_time=0.1)
    if r.status != "ok":
        return Check("compiled rows compile", "fail", f"the compiled row ended {r.status}: {r.error}")
    text = f"compiled={r.compiled}, recompiles={r.recompiles}, graph breaks={r.graph_breaks}"
    return Check("compiled rows compile", "pass" if r.compiled and not r.recompiles else "fail", text)


def check_graphs(device: torch.device) -> list[Check]:
    # bf16 where the GPU has it (Ampere on), fp16 before: autocast either way, as CUDA rows default to.
    dtype = "bf16" if (accelerator(device).capability(device) or (0, 0))[0] >= 8 else "fp16"
    r = measure(_tiny(), mode="train", device=device, batch_size=32, dtype=dtype, cuda_graphs=True, min_run_time=0.1)
    name = f"CUDA graphs ({dtype} training)"
    graphs = Check(name, "pass" if r.status == "ok" else "fail", r.status + (f": {r.error}" if r.error else ""))
    if r.peak_memory_mb is None or r.peak_memory_mb <= 0:
        return [graphs, Check("peak memory", "fail", f"no peak memory reported ({r.peak_memory_mb})")]
    warm = r.extra.get("warmup_peak_memory_mb") or 0.0
    return [graphs, Check("peak memory", "pass", f"{r.peak_memory_mb:.1f} MB timed, {warm:.1f} MB in warm-up")]


def self_check(
    device: str | torch.device | None = None,
    *,
    compile: bool = True,  # noqa: A002 - the CLI flag's name
    size: int | None = None,
) -> list[Check]:
    """Run every check that means something on ``device`` (default: the best present).

    Args:
        device: the device to check.
        compile: include the torch.compile check (it compiles a tiny model: seconds on a GPU,
            longer on a small CPU).
        size: the matmul size of the peak check (half of it for the synchronisation checks);
            default 8192 on CUDA (a size that reaches ~80 % of an H100's bf16 peak), 512 elsewhere.

    Returns:
        The checks in order; print them with :func:`format_checks`.
    """
    device = pin_device(device)  # a bare "cuda" names the GPU checked
    acc = accelerator(device)
    cuda = device.type == "cuda"
    n = size or (8192 if cuda else 512)
    checks = [check_fp32(device), *check_peaks(device, n=n)]
    if device.type == "cpu":
        why = "a CPU runs each operation to completion before returning: there is no queue to wait for"
        checks.append(Check("synchronisation", "skip", why))
    else:
        checks += check_sync(device, n=max(n // 2, 1))
    if cuda and acc.device_count() > 1:
        last = torch.device("cuda", acc.device_count() - 1)
        checks += check_sync(last, n=max(n // 2, 1), name=f"device scope ({last})")
    else:
        checks.append(Check("device scope", "skip", "one device: nothing to tell apart"))
    checks.append(check_compiled(device) if compile else Check("compiled rows compile", "skip", "compile=False"))
    if cuda:
        checks += check_graphs(device)
    else:
        checks.append(Check("CUDA graphs", "skip", f"CUDA graphs need a CUDA device, this is {device.type}"))
        checks.append(Check("peak memory", "skip", "peak memory is counted on CUDA only"))
    return checks


def format_checks(checks: list[Check]) -> str:
    """One line per check, then a count of each status."""
    lines = [f"{c.status.upper():5} {c.name}: {c.detail}" for c in checks]
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail", "skip", "info")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)
