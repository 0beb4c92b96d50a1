"""int8 inference on x86 CPUs through PyTorch's PT2E flow, compiled by inductor.

The steps (the flow torch documents for x86; since torch 2.10 its quantizers live in torchao):

1. ``torch.export.export(model, strict=True)`` with a dynamic batch dimension;
2. ``torchao.quantization.pt2e.prepare_pt2e`` with ``X86InductorQuantizer`` (static int8:
   activations per tensor, weights per channel; BatchNorm folded into the convolutions);
3. the calibration batches run through the observed model;
4. ``convert_pt2e``, then ``torch.compile`` with freezing (:class:`reszoo.infer.freezing.FrozenCompiled`):
   inductor turns each quantize / conv / dequantize pattern into oneDNN int8 convolutions
   (``onednn.qconv_pointwise``) with the ReLU and residual add fused.

``strict=True``: the non-strict exporter (torch's default) records no per-call source of each
node, and the quantizer then groups every call of a block's one ``nn.ReLU`` module into a single
partition with several outputs, which it refuses ("Input partition has more than one output node").

Without compiling, a converted model runs reference quantize/dequantize ops in fp32 and is slower
than fp32, so the int8 path always compiles.
"""

from __future__ import annotations

import copy
import importlib
import platform
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from reszoo.errors import InvalidArgumentError
from reszoo.infer.freezing import FrozenCompiled
from reszoo.utils.checks import check_instance, type_error

# torch.export specialises a dimension of size 1; a batch of 2 keeps the batch dimension symbolic.
_EXAMPLE_BATCH = 2
_MAX_BATCH = 65536
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


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


def calibration_batches(calibration: Any, in_chans: int | None) -> list[torch.Tensor]:
    """The calibration inputs as a list of 4-D float tensors on the CPU.

    Args:
        calibration: an iterable of input batches, or of ``(inputs, targets)`` pairs as a
            ``DataLoader`` yields them (the targets are ignored).
        in_chans: the channels the model takes, or ``None`` to skip that check.

    Raises:
        InvalidArgumentError, ArgumentTypeError: none given, an empty iterable, or a batch that is
            not an ``(N, C, H, W)`` float tensor with the model's channels.
    """
    if calibration is None:
        raise InvalidArgumentError(
            "dtype='int8' needs calibration data to choose each activation's int8 scale; received "
            "calibration=None. Pass calibration=<an iterable of input batches (N, C, H, W)>, e.g. a few "
            "batches of real, pre-processed images (random inputs give scales that fit no real image)."
        )
    if isinstance(calibration, torch.Tensor) or not isinstance(calibration, Iterable):
        raise type_error("calibration", calibration, "an iterable of input batches (a list of tensors, a DataLoader)")
    batches = []
    for i, item in enumerate(calibration):
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise InvalidArgumentError(
                f"calibration batch {i} must be a float tensor (N, C, H, W); received {_describe(x)}."
            )
        if in_chans is not None and x.shape[1] != in_chans:
            raise InvalidArgumentError(
                f"calibration batch {i} has {x.shape[1]} channels; the model takes in_chans={in_chans}."
            )
        batches.append(x.detach().cpu().float())
    if not batches:
        raise InvalidArgumentError("calibration holds no batches; give at least one (N, C, H, W) batch.")
    return batches


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return f"{type(x).__name__}"


def quantize_int8(model: nn.Module, calibration: Any, *, compile_mode: str | None = None) -> FrozenCompiled:
    """An int8 copy of ``model`` for x86 CPUs, calibrated on ``calibration`` and compiled.

    Args:
        model: an fp32 model (left untouched; a copy is quantized on the CPU in eval mode).
        calibration: see :func:`calibration_batches`.
        compile_mode: ``torch.compile`` mode, ``None`` for the default.

    Returns:
        A :class:`~reszoo.infer.freezing.FrozenCompiled` that takes fp32 ``(N, C, H, W)`` inputs of any
        batch size and the calibration's height and width; it compiles on its first call.

    Raises:
        InvalidArgumentError: torchao missing, or bad calibration data (see above).
    """
    check_instance("model", model, nn.Module)
    config = getattr(model, "config", None)
    batches = calibration_batches(calibration, getattr(config, "in_chans", None))
    machine = platform.machine().lower()
    if machine not in X86_MACHINES:
        raise InvalidArgumentError(
            f"dtype='int8' quantizes for x86 CPUs (oneDNN's int8 kernels); this machine is {machine!r}."
        )
    pt2e, x86 = torchao_pt2e()
    # torch 2.14's int8 lowering calls torch.tensor(<a tensor>) once per convolution at compile time,
    # and torch warns about its own call; nothing for a user to act on.
    warnings.filterwarnings(
        "ignore", message="To copy construct from a tensor", module=r"torch\._inductor\.mkldnn_lowerings"
    )
    net = copy.deepcopy(model).cpu().eval()
    first = batches[0]
    example = first[:_EXAMPLE_BATCH] if len(first) >= _EXAMPLE_BATCH else first[:1].expand(_EXAMPLE_BATCH, -1, -1, -1)
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    with torch.no_grad():
        exported = torch.export.export(net, (example.contiguous(),), dynamic_shapes=({0: batch},), strict=True)
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    observed = pt2e.prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad():
        for x in batches:
            observed(x)
    return FrozenCompiled(pt2e.convert_pt2e(observed), mode=compile_mode)
