"""Model facts: parameters, multiply-accumulates (counted by torch.utils.flop_counter), layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reszoo.registry import get_model_fn, list_models


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (conv and linear weights, biases, norm scales and shifts)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1) -> int:
    """Forward FLOPs for one batch, counted by ``torch.utils.flop_counter`` (2 per MAC).

    Only convolutions and matrix products are counted (norms, activations and pooling are not),
    which is the convention of the paper and torchvision's published GFLOPs.
    The model runs on its own device; build it under ``torch.device("meta")`` to count for free.
    """
    param = next(model.parameters())
    x = torch.zeros((batch_size, *input_size), device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates for one image: ``count_flops(...) // 2``."""
    return count_flops(model, input_size) // 2


@dataclass(frozen=True)
class ModelRow:
    name: str
    family: str
    depth: int
    shortcut: str
    params: int
    macs: int
    input_size: tuple[int, int, int]

    def as_dict(self) -> dict:
        return asdict(self)


_FAMILIES = {"cifar": "CIFAR", "imagenet": "ImageNet"}


def model_row(name: str) -> ModelRow:
    """The facts of one registered model, computed on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        model = get_model_fn(name)()
    cfg = model.config
    family = _FAMILIES.get(cfg.stem, "custom") if isinstance(cfg.stem, str) else "custom"
    return ModelRow(
        name=name,
        family=family,
        depth=cfg.depth,
        shortcut=cfg.shortcut,
        params=count_params(model),
        macs=count_macs(model, cfg.input_size),
        input_size=cfg.input_size,
    )


def model_table(pattern: str | None = None) -> list[ModelRow]:
    """One row per registered model matching ``pattern``: CIFAR first, residual before plain, by depth."""
    rows = [model_row(name) for name in list_models(pattern)]
    return sorted(rows, key=lambda r: (r.family != "CIFAR", r.family, r.shortcut == "none", r.depth, r.name))


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_table(headers: list[str], rows: list[list[str]], *, markdown: bool = False) -> str:
    """Align columns; numbers (cells starting with a digit) are right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def fmt(cells: list[str]) -> str:
        parts = [
            str(c).rjust(w) if str(c)[:1].isdigit() else str(c).ljust(w) for c, w in zip(cells, widths, strict=True)
        ]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    sep = ("|" + "|".join("-" * (w + 2) for w in widths) + "|") if markdown else "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), sep, *(fmt(r) for r in rows)])


def layer_summary(model: nn.Module, input_size: tuple[int, ...]) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, type, output shape, parameters) for the stem layers, each block and the head.

    Runs one forward pass of a single image on the model's device (use a meta model for free).
    """
    rows: list[tuple[str, str, tuple[int, ...], int]] = []
    watched = []
    for name, module in model.named_modules():
        depth = name.count(".")
        if name and (depth == 0 and not isinstance(module, nn.Sequential) or depth == 1 and name.startswith("layer")):
            watched.append((name, module))
    hooks = [
        m.register_forward_hook(
            lambda mod, _inp, out, name=name: rows.append(
                (name, type(mod).__name__, tuple(out.shape), count_params(mod))
            )
        )
        for name, m in watched
    ]
    param = next(model.parameters())
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *input_size), device=param.device, dtype=param.dtype))
    finally:
        for h in hooks:
            h.remove()
    return rows
