"""Empirical bias correction of a quantized graph (Nagel et al. 2019, "Data-Free Quantization Through
Weight Equalization and Bias Correction", section 4.2; Finkelstein et al. 2019, "Fighting
Quantization Bias With Bias").

Rounding weights and activations shifts each layer's output by an amount whose mean over images is
not zero (a channel's rounded weights sum to a little more or less than the real ones, and the
inputs after a ReLU are all positive). Measured on the original CIFAR-10 ResNet-20, that mean was
1-25% of a layer's int8 error power. The correction runs the quantized graph once over calibration
images, layer by layer in graph order: at each convolution or linear layer it compares the mean of
each output channel with the fp32 model's on the same images, subtracts the difference from the
layer's bias and carries the corrected output on, so that later layers are corrected for what
remains. It changes biases only, so the quantized model runs as fast as before.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.fx import GraphModule, Interpreter, Node

__all__ = ["channel_means", "correct_biases"]

_LAYERS = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
# The images one correction pass holds at once: 2**21 pixels (2,048 CIFAR images, 41 at 224x224,
# whose 56x56 positions per channel still give each mean from 130,000 values).
MAX_PIXELS = 2**21


class _ChannelMeans(Interpreter):
    """Runs a graph and records each layer output's per-channel mean (over batch and space)."""

    def __init__(self, graph: GraphModule) -> None:
        super().__init__(graph)
        self.means: dict[str, torch.Tensor] = {}

    def run_node(self, n: Node) -> Any:
        out = super().run_node(n)
        if _is_layer(n):
            self.means[n.name] = _mean(out)
        return out


class _Correcting(Interpreter):
    """Runs a quantized graph, correcting each layer's bias (and output) to the reference means."""

    def __init__(self, graph: GraphModule, reference: dict[str, torch.Tensor]) -> None:
        super().__init__(graph)
        self.reference = reference
        self.shifts: dict[str, torch.Tensor] = {}

    def run_node(self, n: Node) -> Any:
        out = super().run_node(n)
        bias = n.args[2] if _is_layer(n) and len(n.args) > 2 else None
        if isinstance(bias, Node) and bias.op == "get_attr" and n.name in self.reference:
            shift = _mean(out) - self.reference[n.name]
            parameter = functools.reduce(getattr, bias.target.split("."), self.module)
            parameter.data -= shift.to(parameter.dtype)
            self.shifts[n.name] = shift
            out = out - shift.to(out.dtype).view(1, -1, *([1] * (out.dim() - 2)))
        return out


def _is_layer(n: Node) -> bool:
    return n.op == "call_function" and n.target in _LAYERS


def _mean(out: torch.Tensor) -> torch.Tensor:
    return out.detach().mean([d for d in range(out.dim()) if d != 1]).double()


def channel_means(graph: GraphModule, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel output means of every convolution and linear layer of ``graph`` on ``images``."""
    with torch.no_grad():
        runner = _ChannelMeans(graph)
        runner.run(images)
    return runner.means


def correct_biases(quantized: GraphModule, reference: dict[str, torch.Tensor], images: torch.Tensor) -> int:
    """Shift the biases of ``quantized`` so its layers' channel means on ``images`` match ``reference``.

    Args:
        quantized: the converted (not yet compiled) graph; its bias parameters are changed in place.
        reference: :func:`channel_means` of the fp32 graph on the same ``images`` (layers matched by
            node name, as ``prepare_pt2e``/``convert_pt2e`` keep them).
        images: a batch of calibration images.

    Returns:
        The number of layers whose bias was corrected.
    """
    with torch.no_grad():
        runner = _Correcting(quantized, reference)
        runner.run(images)
    return len(runner.shifts)


def correction_images(batches: list[torch.Tensor]) -> torch.Tensor:
    """The first calibration images, as many as :data:`MAX_PIXELS` allows (at least one)."""
    wanted = max(1, MAX_PIXELS // (batches[0].shape[2] * batches[0].shape[3]))
    taken: list[torch.Tensor] = []
    for x in batches:
        taken.append(x[: wanted - sum(len(t) for t in taken)])
        if sum(len(t) for t in taken) >= wanted:
            break
    return torch.cat(taken)
