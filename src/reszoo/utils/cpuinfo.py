"""What this CPU can run fast: its vector capability, native bf16 / fp16 / int8, cores and threads.

Inference speed ratios on a CPU depend on these (AVX2 against AVX-512, AVX512-BF16 or AMX for
bf16, VNNI for int8), so every CPU benchmark records them and ``optimize_for_inference`` asks here
before it casts a model to a dtype the CPU has no kernels for.

Example:
    >>> import torch
    >>> from reszoo.utils.cpuinfo import cpu_features
    >>> feats = cpu_features()
    >>> feats["capability"] == torch.backends.cpu.get_cpu_capability(), feats["threads"] == torch.get_num_threads()
    (True, True)
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from reszoo.errors import InvalidArgumentError

# The dtypes optimize_for_inference can run on a CPU, and what each needs there.
NEEDS = {
    "bf16": "AVX512-BF16 or AMX (torch.ops.mkldnn._is_mkldnn_bf16_supported())",
    "fp16": "AVX512-FP16 or AMX-FP16 (torch.ops.mkldnn._is_mkldnn_fp16_supported())",
}


def _flag(module: Any, name: str) -> bool:
    # torch.cpu._is_*_supported and torch.ops.mkldnn._is_mkldnn_*_supported are private: a torch
    # without one reports the feature as absent rather than failing.
    fn = getattr(module, name, None)
    try:
        return bool(fn()) if callable(fn) else False
    except RuntimeError:
        return False


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_features() -> dict[str, Any]:
    """The CPU facts a CPU inference result depends on.

    Returns:
        ``capability`` (``torch.backends.cpu.get_cpu_capability()``: ``"AVX2"``, ``"AVX512"``, ...),
        ``avx512_bf16``, ``amx``, ``vnni`` (int8 dot products), ``bf16`` and ``fp16`` (oneDNN has
        native kernels for that dtype here), ``name``, ``cores`` and ``threads`` (torch's intra-op
        threads).
    """
    mkldnn = torch.ops.mkldnn
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": _flag(torch.cpu, "_is_avx512_bf16_supported"),
        "amx": _flag(torch.cpu, "_is_amx_tile_supported"),
        "vnni": _flag(torch.cpu, "_is_vnni_supported"),
        "bf16": torch.backends.mkldnn.is_available() and _flag(mkldnn, "_is_mkldnn_bf16_supported"),
        "fp16": torch.backends.mkldnn.is_available() and _flag(mkldnn, "_is_mkldnn_fp16_supported"),
        "name": cpu_name(),
        "cores": cores(),
        "threads": torch.get_num_threads(),
    }


def check_cpu_dtype(dtype: str) -> None:
    """Refuse a reduced-precision dtype this CPU has no native kernels for.

    Without them torch still computes bf16/fp16 convolutions, correctly but through slow fallback
    paths (several times slower than fp32), which nobody deploying a model wants by accident.

    Raises:
        InvalidArgumentError: naming the dtype, what it needs and the CPU's capability.
    """
    if dtype not in NEEDS:
        return
    feats = cpu_features()
    if not feats[dtype]:
        raise InvalidArgumentError(
            f"dtype={dtype!r} needs a CPU with {NEEDS[dtype]}; this CPU ({feats['name']}) has capability "
            f"{feats['capability']!r} without it, so {dtype} would run slower than fp32. Use dtype='fp32' "
            "(or dtype='int8' with calibration data)."
        )
