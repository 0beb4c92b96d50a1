"""The machine a measurement runs on: versions, threads and cores, how busy the CPU is, what a
device computes fast (tf32, fp16, bf16), and the peak table that turns TFLOP/s into a fraction.

:mod:`reszoo.bench.measuring` asks here; results carry what is found (``BenchResult.warnings``,
the JSON's ``environment``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
from typing import Any

import torch

from reszoo.utils.accelerator import accelerator, fp32_flags
from reszoo.utils.cpuinfo import NEEDS, cpu_features
from reszoo.utils.cpuinfo import cores as usable_cores
from reszoo.utils.devices import device_name

__all__ = [
    "PEAK_TFLOPS",
    "dtype_warning",
    "environment",
    "environment_warnings",
    "has_tf32",
    "peak_tflops_for",
]

# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets; "fp32" is the
# non-tensor-core rate. Matched by substring of the device name, first match wins, so the
# more specific names come first. Update or pass ``peak_tflops=`` for other devices.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0},
    # The NVL card's clocks are lower than the SXM's: matched as "H100" it would understate MFU.
    "H100 NVL": {"bf16": 835.0, "fp16": 835.0, "tf32": 418.0, "fp32": 60.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "fp16": 362.0, "tf32": 183.0, "fp32": 91.6},
    "RTX 4090": {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6},
    "V100": {"bf16": 0.0, "fp16": 125.0, "tf32": 0.0, "fp32": 15.7},
}


def peak_tflops_for(device_name: str, dtype: str) -> float | None:
    """Peak TFLOP/s of a device for a dtype from :data:`PEAK_TFLOPS`, or ``None`` if unknown."""
    for key, table in PEAK_TFLOPS.items():
        if key in device_name:
            return table.get(dtype) or None
    return None


def has_tf32(device: torch.device) -> bool:
    """True on an NVIDIA GPU of compute capability 8.0 (Ampere) or newer, where tf32 is a mode of its own."""
    capability = accelerator(device).capability(device) if device.type == "cuda" else None
    return capability is not None and capability[0] >= 8


def dtype_warning(dtype: str, device: torch.device) -> str | None:
    """A warning for autocast to a dtype this device has no native kernels for, or None.

    On a CPU without them (:data:`reszoo.utils.cpuinfo.NEEDS`: AVX512-BF16 or AMX for bf16, AVX512-FP16
    or AMX-FP16 for fp16) torch computes through slow fallbacks, several to many times slower
    than fp32. ``optimize_for_inference`` refuses such a dtype; a benchmark measures what it is
    asked, with this line in the row's ``warnings``.
    """
    if device.type != "cpu" or dtype not in NEEDS or cpu_features()[dtype]:
        return None
    return (
        f"slow dtype: {dtype} on a CPU without {NEEDS[dtype]} runs through slow fallback kernels, "
        "typically several times slower than fp32; this row measures that, not the CPU's best"
    )


def environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What a result depends on: device name, library versions, threads, date, and how busy the CPU was.

    ``load_average`` is the 1-minute load average when this is called (call it before measuring);
    ``busy`` is True when it exceeds half the usable ``cores`` (at least 1), i.e. other work
    competes for the CPU. ``oversubscribed`` is True when torch's threads times the processes of
    a launch (``LOCAL_WORLD_SIZE``) exceed the cores. :func:`environment_warnings` words both.
    """
    device = torch.device(device)
    cores, threads = usable_cores(), torch.get_num_threads()
    processes = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device_type": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "threads": threads,
        "processes": processes,
        "cores": cores,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": load,
        "busy": load is not None and load > max(1.0, cores / 2),
        "oversubscribed": threads * processes > cores,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    # The GPU's facts (count, driver, clocks, power limit, MIG) and the process-wide flags that
    # change what it computes; each row repeats the ones its numbers depend on.
    for key, value in accelerator(device).describe(device).items():
        env.setdefault(key, value)
    env["fp32_precision"] = fp32_flags()
    env["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    with contextlib.suppress(ImportError):
        import torchvision

        env["torchvision"] = torchvision.__version__
    return env


def environment_warnings(env: dict[str, Any]) -> list[str]:
    """One line for each way the machine's state (from :func:`environment`) will distort the figures."""
    lines = []
    if env.get("busy"):
        lines.append(
            f"the CPU is busy: load average {env['load_average']:.1f} on {env['cores']} cores before the run; "
            "other work will slow and scatter these figures"
        )
    if env.get("oversubscribed"):
        lines.append(
            f"{env['threads']} torch threads x {env['processes']} processes > {env['cores']} cores: threads will "
            "contend; set torch.set_num_threads / OMP_NUM_THREADS to cores / processes"
        )
    return lines
