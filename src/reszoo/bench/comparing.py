"""Side by side: reszoo's models against their equivalents in torchvision or timm, timed round-robin
in one process, from the same weights and checked to give the same outputs.

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
from reszoo.models.zoo import cifar_config
from reszoo.utils.checks import check_choice
from reszoo.utils.timing import check_rounds, round_robin, torch_benchmark
from reszoo.weights.catalog import DEFAULT_WEIGHTS, default_weights
from reszoo.weights.convert import convert_state_dict, fit_state_dict

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


PEERS = ("torchvision", "timm")


def comparison_models(name: str, peer: str = "torchvision") -> dict[str, Callable[[], nn.Module]]:
    """Factories of ``name`` and its equivalent in ``peer``.

    ``peer="torchvision"``: torchvision's model of the same name (resnet18 ... 152, resnext*,
    wide_resnet*), or for the paper's CIFAR option-A models, which torchvision does not have,
    :func:`reszoo.models.reference.reference_cifar_resnet`. ``peer="timm"``: timm's model of the
    same name (``timm.create_model``: the torchvision nets and ``resnet50d``, ``resnet101d``,
    ``seresnet50``, ``resnetv2_50``, ``resnetv2_101``); timm is optional (``pip install timm``).

    Args:
        name: a registered reszoo model name.
        peer: ``"torchvision"`` or ``"timm"``.

    Returns:
        ``{label: factory}``, reszoo first.
    """
    check_choice("peer", peer, PEERS)
    cfg = default_config(name)
    out: dict[str, Callable[[], nn.Module]] = {f"reszoo:{name}": lambda: create_model(name)}
    if peer == "torchvision":
        if cfg.stem == "cifar" and cfg.shortcut == "A" and cfg.block == "basic" and cfg == cifar_config(cfg.depth):
            out[f"reference:{name}"] = lambda: reference_cifar_resnet(cfg.depth, cfg.num_classes)
            return out
        tvm = importlib.import_module("torchvision.models")
        if cfg.shortcut == "none" or not hasattr(tvm, name):
            raise InvalidArgumentError(
                "compare with torchvision needs a model torchvision has (resnet18 ... resnet152, resnext50_32x4d, "
                "resnext101_32x8d, resnext101_64x4d, wide_resnet50_2, wide_resnet101_2) or one of the paper's CIFAR "
                f"option-A ResNets (timed against reszoo.models.reference); received name={name!r}."
            )
        out[f"torchvision:{name}"] = lambda: getattr(tvm, name)(weights=None)
        return out
    if importlib.util.find_spec("timm") is None:
        raise InvalidArgumentError(
            f"compare with timm needs timm, which is not installed (pip install timm); received name={name!r}."
        )
    timm = importlib.import_module("timm")
    if cfg.shortcut == "none" or not timm.is_model(name):
        raise InvalidArgumentError(
            "compare with timm needs a model timm has under the same name (resnet18 ... resnet152, resnet50d, "
            f"resnet101d, seresnet50, resnetv2_50, resnetv2_101, resnext*, wide_resnet*); received name={name!r}."
        )
    out[f"timm:{name}"] = lambda: timm.create_model(name, pretrained=False)
    return out


def share_weights(ours: nn.Module, label: str, peer: nn.Module) -> None:
    """Load ``peer``'s weights into ``ours`` (in place), so both compute the same function.

    torchvision's state_dict loads as it is; timm's through the converter of its Hub weights for this
    architecture (:mod:`reszoo.weights.convert`); the reference CIFAR net holds the same tensors in
    the same order.
    """
    source = peer.state_dict()
    if label.startswith("reference:"):
        state = dict(zip(ours.state_dict(), source.values(), strict=True))
    else:
        arch = label.partition(":")[2]
        converter = default_weights(arch).converter if arch in DEFAULT_WEIGHTS else "torchvision"
        state = convert_state_dict(converter, source)
    ours.load_state_dict(fit_state_dict(state, ours, source=f"the weights of {label}"))


def output_gap(models: dict[str, nn.Module], x: torch.Tensor) -> tuple[dict[str, float], float]:
    """Max absolute difference of each model's eval-mode output from the first model's, on ``x``,
    and the first model's largest absolute output (the scale the differences are read against)."""
    outputs = {}
    for label, model in models.items():
        was_training = model.training
        with torch.no_grad():
            outputs[label] = model.eval()(x).float()
        model.train(was_training)
    first = next(iter(outputs.values()))
    return {label: (out - first).abs().max().item() for label, out in outputs.items()}, first.abs().max().item()


def compare(
    name: str,
    *,
    peer: str = "torchvision",
    mode: str = "infer",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    dtype: str = "fp32",
    channels_last: bool = False,
    rounds: int = 10,
    number: int = 2,
) -> list[BenchResult]:
    """Benchmark reszoo's ``name`` against its equivalent in ``peer``, interleaved in one process.

    Both start from the same weights (the peer's, loaded into reszoo's model by :func:`share_weights`),
    and before timing, their outputs on two images are compared (fp32, on the CPU):
    ``extra["max_abs_diff"]`` holds the largest difference from reszoo's (0 for reszoo itself), so a
    ratio is only read for models that compute the same function. The run is isolated as
    :func:`reszoo.bench.measure`'s are (device made current, cuDNN's
    autotuner on CUDA, the dtype's fp32 precision). On a GPU each variant first runs 10 untimed
    steps, and ``number`` grows until one timed block lasts at least :data:`GPU_BLOCK_S`: a few
    milliseconds of GPU work is below clock ramp-up and timer noise.

    Returns:
        One result per implementation, reszoo first; ``extra["ratio_vs_reszoo"]`` holds
        images/s of reszoo divided by that implementation's, ``extra["max_abs_diff"]`` the output gap
        (``extra["max_abs_output"]``: reszoo's largest output, its scale).
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
    factories = comparison_models(name, peer)
    torch.manual_seed(0)
    models = {label: make() for label, make in factories.items()}
    (ours_label, ours), *others = models.items()
    for label, model in others:
        share_weights(ours, label, model)
    # Two images on the CPU, before the models move: a check of the function, not of the device's kernels.
    gaps, scale = output_gap(models, torch.randn(min(2, settings.batch_size), *settings.input_size))
    results = {label: new_result(m, name=label, settings=settings) for label, m in models.items()}
    for label, r in results.items():
        r.extra["max_abs_diff"] = gaps[label]
        r.extra["max_abs_output"] = scale

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
