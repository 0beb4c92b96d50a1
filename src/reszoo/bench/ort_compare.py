"""reszoo against ONNX Runtime on the CPU: the same model, timed round-robin in one process.

ONNX Runtime is what a CPU deployment would pick instead of PyTorch, so ``reszoo bench NAME
--compare onnxruntime`` times three variants of one model with the same weights and inputs:
the eager model as built (NCHW), ``optimize_for_inference(model)`` (its CPU default: BatchNorm
folded, compiled by inductor with freezing) and ``optimize_for_inference(model,
backend="onnxruntime")``, with ONNX Runtime given torch's thread count. Each result's ``extra``
holds the ratio of its images/s to ONNX Runtime's, the one-off cost of preparing it (compiling on
the first call, or exporting), its largest difference from the eager model and the CPU's features.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from reszoo.bench.measuring import BenchResult, StepSettings, fill_times, new_result
from reszoo.infer.optimize import optimize_for_inference
from reszoo.models._factory import create_model
from reszoo.models.registry import default_config
from reszoo.utils.checks import check_int
from reszoo.utils.cpuinfo import cpu_features
from reszoo.utils.timing import interleaved


def _step(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[], Any]:
    def step() -> Any:
        with torch.inference_mode():
            return model(x)

    return step


def _prepared(label: str, make: Callable[[], nn.Module], x: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
    """Build a variant and run it once (compiling or exporting happen here), timing both."""
    start = time.perf_counter()
    model = make()
    with torch.inference_mode():
        out = model(x)
    seconds = time.perf_counter() - start
    diff = float((out.float() - ref).abs().max())
    return {"label": label, "model": model, "prepare_seconds": seconds, "max_abs_diff": diff}


def compare_onnxruntime(
    name: str, *, batch_size: int | None = None, rounds: int = 10, number: int = 2, warmup: int = 2
) -> list[BenchResult]:
    """Inference of reszoo's ``name`` on the CPU: eager, optimised, and in ONNX Runtime, interleaved.

    Args:
        name: a registered model name (randomly initialised: speed does not depend on the weights).
        batch_size: images per step; ``None`` for the CPU default of :func:`reszoo.bench.measure`.
        rounds, number, warmup: as :func:`reszoo.bench.interleaved`.

    Returns:
        Results for ``reszoo:NAME eager``, ``reszoo:NAME optimize_for_inference`` and
        ``onnxruntime:NAME``; ``extra`` holds ``ratio_vs_onnxruntime``, ``prepare_seconds``,
        ``max_abs_diff`` (against the eager model) and ``cpu`` (:func:`reszoo.utils.cpuinfo.cpu_features`).

    Raises:
        InvalidArgumentError: a bad argument, or onnxruntime not installed (``pip install 'reszoo[onnx]'``).
    """
    for key, value, low in (("rounds", rounds, 1), ("number", number, 1), ("warmup", warmup, 0)):
        check_int(key, value, minimum=low)
    settings = StepSettings(
        mode="infer", input_size=default_config(name).input_size, device="cpu", batch_size=batch_size
    )
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(settings.batch_size, *settings.input_size)
    with torch.inference_mode():
        ref = model(x)
    makers = {
        f"reszoo:{name} eager": lambda: model,
        f"reszoo:{name} optimize_for_inference": lambda: optimize_for_inference(model),
        f"onnxruntime:{name}": lambda: optimize_for_inference(model, backend="onnxruntime"),
    }
    variants = [_prepared(label, make, x, ref) for label, make in makers.items()]
    steps = {v["label"]: _step(v["model"], x) for v in variants}
    # Paused blocks: ONNX Runtime's spinning threads are idle before the next variant's block.
    times = interleaved(steps, rounds=rounds, number=number, warmup=warmup, pause=0.02)
    cpu = cpu_features()
    results = []
    for v in variants:
        r = new_result(model, name=v["label"], settings=settings)
        fill_times(r, times[v["label"]], number)
        r.compile = "inductor+freezing" if "optimize" in v["label"] else None
        r.extra.update(prepare_seconds=v["prepare_seconds"], max_abs_diff=v["max_abs_diff"], cpu=cpu)
        results.append(r)
    ort = results[-1]
    for r in results:
        r.extra["ratio_vs_onnxruntime"] = r.images_per_s / ort.images_per_s
    return results
