"""Name tables for the norm and activation layers a config may ask for.

A config names its layers by string so that it stays plain data: it can be written to
``config.json`` and rebuilt without code. A callable is accepted too, for experiments that need
a layer outside these tables (such a config cannot be saved as JSON).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from reszoo.checks import type_error, unknown_name_error

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


def _group_norm(num_channels: int) -> nn.GroupNorm:
    # 32 groups is the GroupNorm paper's default; narrow CIFAR layers (16 channels) get one
    # channel per group rather than an error.
    return nn.GroupNorm(min(32, num_channels), num_channels)


NORM_LAYERS: dict[str, NormFactory] = {
    "batchnorm": nn.BatchNorm2d,
    "groupnorm": _group_norm,
}

ACT_LAYERS: dict[str, ActFactory] = {
    # inplace ReLU as in torchvision: it saves one activation per block in training.
    "relu": lambda: nn.ReLU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
}


def _resolve(value: str | Callable[..., nn.Module], table: dict, what: str) -> Callable[..., nn.Module]:
    if callable(value):
        return value
    if not isinstance(value, str):
        raise type_error(what, value, f"one of {', '.join(sorted(table))}, or a callable")
    if value not in table:
        raise unknown_name_error(what, value, sorted(table))
    return table[value]


def get_norm_layer(norm: str | NormFactory) -> NormFactory:
    """Return the factory ``f(num_channels) -> nn.Module`` for a norm name or callable."""
    return _resolve(norm, NORM_LAYERS, "norm")


def get_act_layer(act: str | ActFactory) -> ActFactory:
    """Return the factory ``f() -> nn.Module`` for an activation name or callable."""
    return _resolve(act, ACT_LAYERS, "act")
