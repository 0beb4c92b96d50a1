"""Channel attention for the residual branch: squeeze-and-excitation (Hu et al. 2018, "Squeeze-and-
Excitation Networks", arXiv 1709.01507).

A config names its attention by string (``"none"`` or ``"se"``), like its norm and activation, so
it stays plain data; a callable ``f(channels) -> nn.Module`` is accepted for experiments. A block
applies the module to the end of its residual branch, before the shortcut is added (the paper's
"SE-ResNet module", Fig. 3).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from reszoo.utils.checks import check_int, type_error, unknown_name_error

AttnFactory = Callable[[int], nn.Module]


class SqueezeExcite(nn.Module):
    """Global average pool, 1x1 conv reduce, ReLU, 1x1 conv expand, sigmoid; scale the input by it.

    The two fully connected layers are 1x1 convolutions with biases, named ``fc1`` and ``fc2``:
    torchvision's ``SqueezeExcitation`` and timm's ``SEModule`` use the same names and shapes, so
    timm's SE-ResNet weights load under ``layerN.M.se.fc1.weight`` as they are.

    Args:
        channels: channels of the input (and output).
        reduction: the paper's ratio ``r``: the hidden layer has ``channels // r`` units (at least
            1). 16 is the paper's choice (section 6.1). timm rounds the hidden width to a multiple
            of 8 instead; the two agree wherever ``channels / r`` is one, which holds for every
            ImageNet stage (256 ... 2048 channels) but not for narrow CIFAR layers.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        check_int("channels", channels, minimum=1)
        check_int("reduction", reduction, minimum=1)
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)  # the paper's delta; the network's act does not change it
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()
        self.channels, self.reduction = channels, reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.gate(self.fc2(self.relu(self.fc1(scale))))
        return x * scale

    def extra_repr(self) -> str:
        return f"{self.channels}, reduction={self.reduction}"


ATTENTION = ("none", "se")


def get_attn_layer(attention: str | AttnFactory, *, se_reduction: int = 16) -> AttnFactory | None:
    """The factory ``f(channels) -> nn.Module`` for an attention name or callable; ``None`` for ``"none"``.

    Args:
        attention: ``"none"``, ``"se"`` or a callable.
        se_reduction: the SE reduction ratio ``r`` (``"se"`` only).
    """
    if callable(attention):
        return attention
    if not isinstance(attention, str):
        raise type_error("attention", attention, f"one of {', '.join(ATTENTION)}, or a callable")
    if attention not in ATTENTION:
        raise unknown_name_error("attention", attention, ATTENTION)
    if attention == "none":
        return None
    return functools.partial(SqueezeExcite, reduction=check_int("se_reduction", se_reduction, minimum=1))
