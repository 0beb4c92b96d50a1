"""int8 inference on x86 CPUs through PyTorch's PT2E flow, compiled by inductor.

The steps (the flow torch documents for x86; since torch 2.10 its quantizers live in torchao):

1. ``torch.export.export(model, strict=True)`` with a dynamic batch dimension;
2. ``torchao.quantization.pt2e.prepare_pt2e`` with reszoo's recipe (:mod:`reszoo.infer.int8recipe`):
   torchao's ``X86InductorQuantizer`` (static int8: activations per tensor with its histogram
   observer, weights per output channel, BatchNorm folded into the convolutions), with the layers
   that read the image and the classifier head left in fp32 and zero-padded shortcuts sharing
   their input's scale;
3. the calibration batches run through the observed model;
4. ``convert_pt2e``, then empirical bias correction on the calibration images
   (:mod:`reszoo.infer.biascorrection`);
5. ``torch.compile`` with freezing (:class:`reszoo.infer.freezing.FrozenCompiled`): inductor turns each
   quantize / conv / dequantize pattern into oneDNN int8 convolutions (``onednn.qconv_pointwise``)
   with the ReLU and residual add fused;
6. with ``check=``, top-1 agreement with the fp32 model on the caller's held-out images
   (:mod:`reszoo.infer.agreement`), reported in the result's ``quantization`` and warned about below
   ``min_agreement``.

What each change to the library's recipe gained, measured layer by layer on real CIFAR-10 images:
docs/benchmarks.md, "int8 on real images".

``strict=True``: the non-strict exporter (torch's default) records no per-call source of each
node, and the quantizer then groups every call of a block's one ``nn.ReLU`` module into a single
partition with several outputs, which it refuses ("Input partition has more than one output node").

Without compiling, a converted model runs reference quantize/dequantize ops in fp32 and is slower
than fp32, so the int8 path always compiles.
"""

from __future__ import annotations

import copy
import importlib
import os
import platform
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule

from reszoo.errors import InvalidArgumentError
from reszoo.infer import biascorrection, int8recipe
from reszoo.infer.agreement import DEFAULT_MIN_AGREEMENT, AgreementCheck, measure_agreement
from reszoo.infer.calibration import data_batches
from reszoo.infer.freezing import FrozenCompiled
from reszoo.utils.checks import check_bool, check_instance, check_number, type_error

# torch.export specialises a dimension of size 1; a batch of 2 keeps the batch dimension symbolic.
_EXAMPLE_BATCH = 2
_MAX_BATCH = 65536
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
# Fewer calibration images than this are warned about. On ResNet-20 and real CIFAR-10 images, 64,
# 128, 256, 500 and 1,000 images changed 27, 38, 36, 40 and 32 of 4,000 predictions (no trend that
# 4,000 comparisons resolve; docs/benchmarks.md): 64 is the fewest measured to hold, and below it
# each activation's range rests on the extremes of a few images.
MIN_CALIBRATION_IMAGES = 64


class CalibrationWarning(UserWarning):
    """The calibration data is too small to choose int8 ranges reliably."""


class AgreementWarning(UserWarning):
    """The int8 model changed more of the ``check`` images' predictions than ``min_agreement`` allows."""


@dataclass(frozen=True)
class QuantizationReport:
    """How a model was quantized, on the result of :func:`quantize_int8` as ``.quantization``.

    Attributes:
        calibration_images: how many images chose the int8 ranges.
        fp32_layers: module names left in fp32 (the layers that read the image, and the head).
        bias_corrected: how many layers' biases were corrected (0 with ``bias_correction=False``).
        check: top-1 agreement with fp32 on the ``check`` images, or ``None`` without them.
    """

    calibration_images: int
    fp32_layers: tuple[str, ...]
    bias_corrected: int
    check: AgreementCheck | None


@dataclass(frozen=True)
class QuantizedGraphs:
    """The graphs behind an int8 model, before compilation (for inspection: benchmarks/int8_layers.py).

    Attributes:
        fp32: the exported model with BatchNorm folded (:func:`fp32_graph`), node for node the fp32
            counterpart of ``int8``.
        int8: the converted model: reference quantize / dequantize ops around fp32 computation.
        fp32_layers: module names left in fp32.
        bias_corrected: how many layers' biases were corrected.
    """

    fp32: GraphModule
    int8: GraphModule
    fp32_layers: tuple[str, ...]
    bias_corrected: int


def torchao_pt2e() -> tuple[Any, Any]:
    """(torchao's ``quantize_pt2e`` module, its ``x86_inductor_quantizer`` module), or a clear error.

    Raises:
        InvalidArgumentError: torchao is not installed (it names the extra to install).
    """
    try:
        pt2e = importlib.import_module("torchao.quantization.pt2e.quantize_pt2e")
        x86 = importlib.import_module("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer")
    except ImportError as err:
        raise InvalidArgumentError(
            "dtype='int8' quantizes with torchao's PT2E flow (torch.ao.quantization's PT2E quantizers moved "
            f"to torchao in torch 2.10), which is not installed here ({err}). Install it with: "
            "pip install 'reszoo[int8]'  (or: pip install torchao)."
        ) from None
    return pt2e, x86


def calibration_inputs(calibration: Any, in_chans: int | None) -> list[torch.Tensor]:
    """The calibration images as a list of 4-D float32 CPU batches (targets dropped).

    Accepts what :func:`reszoo.infer.calibration.data_batches` does; ``None`` is refused with what to pass.
    """
    if calibration is None:
        raise InvalidArgumentError(
            "dtype='int8' needs calibration data to choose each activation's int8 scale; received "
            "calibration=None. Pass calibration=<a DataLoader, a list of (N, C, H, W) batches or one such "
            "tensor> of a few hundred real, pre-processed images (random inputs give scales that fit no real image)."
        )
    return [x for x, _ in data_batches("calibration", calibration, in_chans=in_chans)]


def quantize_int8(
    model: nn.Module,
    calibration: Any,
    *,
    compile_mode: str | None = None,
    check: Any = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    fp32_layers: str | tuple[str, ...] = "auto",
    bias_correction: bool = True,
) -> FrozenCompiled:
    """An int8 copy of ``model`` for x86 CPUs, calibrated on ``calibration`` and compiled.

    Args:
        model: an fp32 model (left untouched; a copy is quantized on the CPU in eval mode).
        calibration: images that choose the int8 ranges, in any form of :mod:`reszoo.infer.calibration`
            (a DataLoader, a list of batches or ``(inputs, targets)`` pairs, one ``(N, C, H, W)``
            tensor); a few hundred real images (fewer than 64 are warned about).
        compile_mode: ``torch.compile`` mode, ``None`` for the default.
        check: held-out images in the same forms (with targets, top-1 is measured too): the result's
            top-1 agreement with ``model`` is measured on them, reported in ``.quantization.check``,
            and warned about (:class:`reszoo.infer.agreement.AgreementWarning`) below ``min_agreement``.
        min_agreement: the agreement below which ``check`` warns, a fraction (default 0.98).
        fp32_layers: module names to leave in fp32; ``"auto"``: the layers that read the input and
            the classifier head (:func:`reszoo.infer.int8recipe.sensitive_layers`); ``()``: none.
        bias_correction: correct each layer's bias for the mean shift int8 causes
            (:mod:`reszoo.infer.biascorrection`); costs a pass over the calibration images, no speed.

    Returns:
        A :class:`~reszoo.infer.freezing.FrozenCompiled` that takes fp32 ``(N, C, H, W)`` inputs of any
        batch size and the calibration's height and width (it compiles on its first call), with a
        :class:`QuantizationReport` as ``.quantization``.

    Raises:
        InvalidArgumentError, ArgumentTypeError: torchao missing, not an x86 CPU, or bad calibration
            or check data (see :mod:`reszoo.infer.calibration`).
    """
    check_instance("model", model, nn.Module)
    in_chans = getattr(getattr(model, "config", None), "in_chans", None)
    batches = calibration_inputs(calibration, in_chans)
    held_out = data_batches("check", check, in_chans=in_chans) if check is not None else None
    check_number("min_agreement", min_agreement, minimum=0, maximum=1)
    _check_same_size(batches, held_out)
    graphs = quantize_graphs(model, batches, fp32_layers=fp32_layers, bias_correction=bias_correction)
    # torch 2.14's int8 lowering calls torch.tensor(<a tensor>) once per convolution at compile time,
    # and torch warns about its own call; nothing for a user to act on.
    warnings.filterwarnings(
        "ignore", message="To copy construct from a tensor", module=r"torch\._inductor\.mkldnn_lowerings"
    )
    fast = FrozenCompiled(graphs.int8, mode=compile_mode)
    result = None
    if held_out is not None:
        result = measure_agreement(copy.deepcopy(model).cpu().eval(), fast, held_out, min_agreement=min_agreement)
        if not result.passed:
            _warn(
                f"{result.summary()}: below min_agreement={min_agreement:.2%}. Calibrate on more (or more typical) "
                "images, or keep more layers in fp32 (reszoo.infer.quantize.quantize_int8(..., fp32_layers=...)); "
                "docs/benchmarks.md, 'int8 on real images', shows what each measure gained.",
                AgreementWarning,
            )
    fast.quantization = QuantizationReport(
        calibration_images=sum(len(x) for x in batches),
        fp32_layers=graphs.fp32_layers,
        bias_corrected=graphs.bias_corrected,
        check=result,
    )
    return fast


def quantize_graphs(
    model: nn.Module,
    calibration: Any,
    *,
    fp32_layers: str | tuple[str, ...] = "auto",
    bias_correction: bool = True,
) -> QuantizedGraphs:
    """The fp32 and int8 graphs of ``model`` (steps 1-4 of the module docstring), not compiled.

    Args:
        model: an fp32 model (left untouched).
        calibration: as for :func:`quantize_int8`.
        fp32_layers, bias_correction: as for :func:`quantize_int8`.

    Returns:
        A :class:`QuantizedGraphs`.
    """
    check_instance("model", model, nn.Module)
    batches = calibration_inputs(calibration, getattr(getattr(model, "config", None), "in_chans", None))
    check_bool("bias_correction", bias_correction)
    machine = platform.machine().lower()
    if machine not in X86_MACHINES:
        raise InvalidArgumentError(
            f"dtype='int8' quantizes for x86 CPUs (oneDNN's int8 kernels); this machine is {machine!r}."
        )
    pt2e, _ = torchao_pt2e()
    _warn_if_few(sum(len(x) for x in batches))
    exported = _export(copy.deepcopy(model).cpu().eval(), batches[0])
    layers = int8recipe.sensitive_layers(exported.module()) if fp32_layers == "auto" else _names(fp32_layers)
    with warnings.catch_warnings():
        # With the stem in fp32 (the recipe), the max-pool after it reads fp32, and torchao warns once per
        # process that it leaves that pool unquantized: what the recipe asks, nothing for a user to act on.
        warnings.filterwarnings("ignore", message="The input of maxpool2d is not quantized")
        observed = pt2e.prepare_pt2e(exported.module(), int8recipe.make_quantizer(fp32_layers=layers))
    with torch.no_grad():
        for x in batches:
            observed(x)
    reference = fp32_graph(observed)
    converted = pt2e.convert_pt2e(observed)
    corrected = 0
    if bias_correction:
        images = biascorrection.correction_images(batches)
        means = biascorrection.channel_means(reference, images)
        corrected = biascorrection.correct_biases(converted, means, images)
    return QuantizedGraphs(fp32=reference, int8=converted, fp32_layers=layers, bias_corrected=corrected)


def fp32_graph(observed: GraphModule) -> GraphModule:
    """A copy of a prepared (observed) graph with its observers replaced by ``nn.Identity``: the fp32
    model with BatchNorm folded, node for node as ``convert_pt2e`` will name the int8 graph's."""
    from torchao.quantization.pt2e import ObserverBase

    graph = copy.deepcopy(observed)
    for name, module in list(graph.named_modules()):
        if isinstance(module, ObserverBase):
            parent, _, attr = name.rpartition(".")
            setattr(graph.get_submodule(parent) if parent else graph, attr, nn.Identity())
    return graph


def _export(net: nn.Module, first: torch.Tensor) -> torch.export.ExportedProgram:
    example = first[:_EXAMPLE_BATCH] if len(first) >= _EXAMPLE_BATCH else first[:1].expand(_EXAMPLE_BATCH, -1, -1, -1)
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    with torch.no_grad():
        return torch.export.export(net, (example.contiguous(),), dynamic_shapes=({0: batch},), strict=True)


def _names(fp32_layers: Any) -> tuple[str, ...]:
    expected = "'auto' or a tuple of module names (e.g. ('conv1', 'fc'))"
    if isinstance(fp32_layers, str) or not isinstance(fp32_layers, (tuple, list)):
        raise type_error("fp32_layers", fp32_layers, expected)
    if not all(isinstance(n, str) and n for n in fp32_layers):
        raise type_error("fp32_layers", fp32_layers, expected)
    return tuple(fp32_layers)


def _warn_if_few(images: int) -> None:
    if images < MIN_CALIBRATION_IMAGES:
        _warn(
            f"int8 calibration used {images} images, fewer than {MIN_CALIBRATION_IMAGES}: each activation's int8 "
            "range then rests on the extremes of a few images, and no fewer were measured to hold "
            "(docs/benchmarks.md, 'int8 on real images'). Pass a few hundred real, pre-processed images.",
            CalibrationWarning,
        )


def _warn(message: str, category: type[Warning]) -> None:
    """Warn at the first caller outside reszoo (the user's line, whichever reszoo function they called)."""
    package = os.path.dirname(os.path.abspath(sys.modules[__name__.split(".")[0]].__file__ or ""))
    frame, level = sys._getframe(1), 2  # stacklevel 2: the function that called _warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _check_same_size(batches: list[torch.Tensor], held_out: list[Any] | None) -> None:
    """The check images must have the calibration's height and width (the int8 graph is exported for it)."""
    if held_out is None:
        return
    size, got = tuple(batches[0].shape[2:]), tuple(held_out[0][0].shape[2:])
    if got != size:
        raise InvalidArgumentError(
            f"check images are {got[0]}x{got[1]}; the calibration images (and so the int8 model) are "
            f"{size[0]}x{size[1]}. Give check images of the size the model will be called with."
        )


__all__ = [
    "AgreementWarning",
    "CalibrationWarning",
    "QuantizationReport",
    "QuantizedGraphs",
    "calibration_inputs",
    "fp32_graph",
    "quantize_graphs",
    "quantize_int8",
    "torchao_pt2e",
]
