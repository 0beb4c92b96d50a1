"""Which tensors int8 quantizes: torchao's ``X86InductorQuantizer`` recipe with two changes.

The library's recipe (static int8, activations uint8 per tensor with ``HistogramObserver``,
weights int8 per output channel, conv + add + ReLU fused) is kept; measured on the original
CIFAR-10 ResNet-20/56 weights and real CIFAR-10 images (docs/benchmarks.md, "int8 on real
images"), two places lose more than the rest and are changed here:

1. **The image and the head stay in fp32** (:func:`sensitive_layers`). The first convolution's
   input is the normalised image, and uint8 over its range is a grid coarser than the 8-bit pixels
   it came from (a step of 0.019 against the pixels' 0.017 after ImageNet normalisation, on another
   offset): that one rounding alone caused half the int8 model's changed predictions on ResNet-20. The
   global pool's output was quantized with the scale of its input (the last block's, about 3x wider
   than the pooled values need), and the classifier read it. Both layers are a few per cent of the
   work, so keeping them in fp32 costs no measurable speed.
2. **An option-A shortcut keeps its input's scale** (:func:`share_padding_scale`). The zero
   padding of the ``ZeroPadShortcut`` got an observer of its own, whose histogram half of zeros
   chose a narrower range: the residual stream was rounded twice, once to a different grid.
   Sharing the input's scale makes the padding exact (zero is on every uint8 grid with zero point 0).

torchao is imported when a quantizer is made (:func:`make_quantizer`), not with this module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.fx import GraphModule, Node

__all__ = ["make_quantizer", "module_name", "sensitive_layers", "share_padding_scale"]

_ATEN = torch.ops.aten
_LAYERS = (_ATEN.conv2d.default, _ATEN.linear.default)
# Between the last block and the classifier: ops that pool or reshape features.
_HEAD_OPS = (
    _ATEN.adaptive_avg_pool2d.default,
    _ATEN.avg_pool2d.default,
    _ATEN.mean.dim,
    _ATEN.flatten.using_ints,
    _ATEN.view.default,
    _ATEN.reshape.default,
    _ATEN.dropout.default,
)
_ANNOTATION = "quantization_annotation"


def module_name(node: Node) -> str:
    """The fully qualified name of the innermost module a node of an exported graph comes from ("" for the root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return path.removeprefix("L['self'].")


def sensitive_layers(graph: GraphModule) -> tuple[str, ...]:
    """Module names of the layers kept in fp32: those that read the input, and the head.

    The first: every convolution or linear layer whose input is a graph input. The head: the
    convolution or linear layer that produces each output, and the pooling / flattening modules
    between it and the last block. Layers called functionally from the model's own ``forward``
    (no module of their own) cannot be named, and stay quantized.

    Args:
        graph: the model as ``torch.export`` gives it (``exported.module()``).

    Returns:
        Module names, e.g. ``("conv1", "avgpool", "fc")`` for reszoo's ResNets.
    """
    names: list[str] = []
    for node in graph.graph.nodes:
        if node.op == "call_function" and node.target in _LAYERS and _reads_input(node):
            names.append(module_name(node))
        if node.op == "output":
            for out in node.all_input_nodes:
                names.extend(_head(out))
    return tuple(dict.fromkeys(n for n in names if n))


def _reads_input(node: Node) -> bool:
    first = node.args[0]
    return isinstance(first, Node) and first.op == "placeholder"


def _head(node: Node) -> list[str]:
    """The classifier producing ``node`` and the pooling before it, as module names."""
    if node.op != "call_function" or node.target not in _LAYERS:
        return []
    names = [module_name(node)]
    prev = node.args[0]
    while isinstance(prev, Node) and prev.op == "call_function" and prev.target in _HEAD_OPS:
        names.append(module_name(prev))
        prev = prev.args[0]
    return names


def share_padding_scale(node: Node) -> None:
    """If ``node`` adds a quantized ``pad`` of a quantized tensor, quantize the pad with that tensor's scale.

    Runs on an annotated graph (after ``X86InductorQuantizer.annotate``), before observers are inserted.
    """
    from torchao.quantization.pt2e.quantizer import QuantizationSpec, SharedQuantizationSpec

    annotation = node.meta.get(_ANNOTATION)
    if annotation is None or node.target not in (_ATEN.add.Tensor, _ATEN.add_.Tensor):
        return
    for arg, spec in list(annotation.input_qspec_map.items()):
        if arg.target != _ATEN.pad.default or not isinstance(spec, QuantizationSpec):
            continue
        source = _quantized_edge(arg.args[0], QuantizationSpec)
        if source is not None:
            annotation.input_qspec_map[arg] = SharedQuantizationSpec(source)


def _quantized_edge(node: object, spec_type: type) -> Node | tuple[Node, Node] | None:
    """Where ``node``'s int8 scale is observed: its output, or an edge to a consumer that quantizes it."""
    if not isinstance(node, Node):
        return None
    own = node.meta.get(_ANNOTATION)
    if own is not None and own.output_qspec is not None:
        return node
    for user in node.users:
        annotation = user.meta.get(_ANNOTATION)
        if annotation is not None and isinstance(annotation.input_qspec_map.get(node), spec_type):
            return (node, user)
    return None


def make_quantizer(*, fp32_layers: tuple[str, ...], share_padding: bool = True, config: Any = None) -> Any:
    """The quantizer: torchao's ``X86InductorQuantizer`` with ``fp32_layers`` (module names) left in fp32.

    Args:
        fp32_layers: module names whose layers are not quantized (``set_module_name_qconfig(name, None)``).
        share_padding: zero padding of a quantized tensor keeps its scale (:func:`share_padding_scale`).
        config: the global ``QuantizationConfig``; ``None``: torchao's default x86 config.

    Returns:
        An ``X86InductorQuantizer`` (a subclass of it where ``share_padding``).
    """
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    class ResidualX86Quantizer(X86InductorQuantizer):
        """``X86InductorQuantizer`` whose zero-padded shortcuts share their input's int8 scale."""

        def annotate(self, model: GraphModule) -> GraphModule:
            super().annotate(model)
            for node in model.graph.nodes:
                share_padding_scale(node)
            return model

    quantizer = ResidualX86Quantizer() if share_padding else X86InductorQuantizer()
    quantizer.set_global(config if config is not None else get_default_x86_inductor_quantization_config())
    for name in fp32_layers:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer
