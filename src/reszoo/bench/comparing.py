"""Side by side: reszoo's models against their equivalents, timed round-robin in one process.

A busy machine slows every variant alike when they take turns, so the ratios stay fair where
absolute times would not.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from reszoo.bench.isolation import Row, run_isolated
from reszoo.bench.measuring import BenchResult, StepSettings, build_step, fill_times, new_result
from reszoo.errors import InvalidArgumentError
from reszoo.models._factory import create_model
from reszoo.models.reference import reference_cifar_resnet
from reszoo.models.registry import default_config
from reszoo.utils.timing import check_rounds, round_robin, torch_benchmark

# On a GPU, the shortest timed block of a comparison (seconds).
GPU_BLOCK_S = 0.05


def _block_length(steps: dict[str, Callable[[], Any]], seconds: float) -> int:
    """Steps per timed block so that the fastest variant's block lasts at least ``seconds``."""
    timer = torch_benchmark().utils.timer.timer  # synchronises the current device
    fastest = float("inf")
    for step in steps.values():
        start = timer()
        for _ in range(3):
            step()
        fastest = min(fastest, (timer() - start) / 3)
    return max(1, math.ceil(seconds / max(fastest, 1e-9)))


def comparison_models(name: str) -> dict[str, Callable[[], nn.Module]]:
    """Factories of ``name`` and its equivalents: torchvision (and timm if installed) for ImageNet
    models, :func:`reszoo.models.reference.reference_cifar_resnet` for CIFAR option-A models.

    Args:
        name: a registered reszoo model name.

    Returns:
        ``{label: factory}``, reszoo first; timm's only when timm is installed.
    """
    cfg = default_config(name)
    out: dict[str, Callable[[], nn.Module]] = {f"reszoo:{name}": lambda: create_model(name)}
    if cfg.stem == "cifar" and cfg.shortcut == "A":
        out[f"reference:{name}"] = lambda: reference_cifar_resnet(cfg.depth, cfg.num_classes)
        return out
    tvm = importlib.import_module("torchvision.models") if cfg.stem != "cifar" and cfg.shortcut == "B" else None
    if tvm is None or not hasattr(tvm, name):
        raise InvalidArgumentError(
            "compare needs a model with an equivalent elsewhere: a CIFAR model with shortcut 'A' or "
            f"torchvision's resnet18/34/50/101/152; received name={name!r} (shortcut {cfg.shortcut!r})."
        )
    out[f"torchvision:{name}"] = lambda: getattr(tvm, name)(weights=None)
    if importlib.util.find_spec("timm") is not None:
        out[f"timm:{name}"] = lambda: importlib.import_module("timm").create_model(name, pretrained=False)
    return out


def compare(
    name: str,
    *,
    mode: str = "infer",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    dtype: str = "fp32",
    channels_last: bool = False,
    rounds: int = 10,
    number: int = 2,
) -> list[BenchResult]:
    """Benchmark reszoo's ``name`` against its equivalents, interleaved in one process.

    The run is isolated as :func:`reszoo.bench.measure`'s are (device made current, cuDNN's
    autotuner on CUDA, the dtype's fp32 precision). On a GPU each variant first runs 10 untimed
    steps, and ``number`` grows until one timed block lasts at least :data:`GPU_BLOCK_S`: a few
    milliseconds of GPU work is below clock ramp-up and timer noise.

    Returns:
        One result per implementation, reszoo first; ``extra["ratio_vs_reszoo"]`` holds
        images/s of reszoo divided by that implementation's.
    """
    settings = StepSettings(
        mode=mode,
        input_size=default_config(name).input_size,
        device=device,
        batch_size=batch_size,
        dtype=dtype,
        channels_last=channels_last,
    )
    gpu = settings.device.type != "cpu"
    warmup = 10 if gpu else 2
    check_rounds(rounds, number, warmup)
    factories = comparison_models(name)
    torch.manual_seed(0)
    models = {label: make() for label, make in factories.items()}
    results = {label: new_result(m, name=label, settings=settings) for label, m in models.items()}

    def body(row: Row) -> tuple[dict[str, list[float]], int]:
        steps = {label: build_step(m, settings) for label, m in models.items()}
        for step in steps.values():
            for _ in range(warmup):
                step()
        per_block = max(number, _block_length(steps, GPU_BLOCK_S)) if gpu else number
        return round_robin(steps, rounds=rounds, number=per_block, warmup=0), per_block

    row, timed = run_isolated(body, settings.device, dtype=settings.dtype, compiled=False)
    for label, r in results.items():
        row.fill(r, memory=False)  # the variants share the device: no per-variant peak
        r.warmup = warmup
        if timed is not None:
            fill_times(r, timed[0][label], timed[1])
    if timed is None:
        return list(results.values())
    ours = results[f"reszoo:{name}"]
    for r in results.values():
        r.extra["ratio_vs_reszoo"] = ours.images_per_s / r.images_per_s
    return list(results.values())
