"""Inference fast path: fold BatchNorm into convolutions, channels_last, optional torch.compile.

Example:
    >>> import torch, reszoo
    >>> model = reszoo.create_model("resnet20").eval()
    >>> fast = reszoo.optimize_for_inference(model)
    >>> x = torch.randn(2, 3, 32, 32)
    >>> torch.allclose(fast(x), model(x), atol=1e-4)
    True
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from reszoo.checks import check_bool, check_choice, check_instance, type_error
from reszoo.devices import AUTOCAST_DTYPES, compile_modes
from reszoo.errors import InvalidArgumentError

# The dtypes a model's weights can be cast to for inference (tf32 is a matmul mode, not a dtype).
DTYPES = {"fp32": torch.float32, **AUTOCAST_DTYPES}


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d into the Conv2d registered just before it, in place (eval only).

    reszoo registers each norm right after the convolution that feeds it (``conv1``/``bn1``,
    the ``Sequential(conv, bn)`` projection shortcut, the stem), so adjacency among a module's
    children identifies the pairs without tracing the graph; tracing would fail on the shape
    checks in ``ResNet.check_input``. The equivalence test over every registered model guards
    this convention. The folded norm is replaced by ``nn.Identity``.

    Args:
        model: a module in eval mode.

    Returns:
        The number of norms folded.
    """
    check_instance("model", model, nn.Module)
    if model.training:
        raise InvalidArgumentError(
            "fold_batchnorm needs a model in eval mode (running statistics), received training=True."
        )
    folded = 0
    for parent in model.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if (
                type(conv) is nn.Conv2d
                and type(bn) is nn.BatchNorm2d
                and bn.track_running_stats
                and conv.out_channels == bn.num_features
            ):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def optimize_for_inference(
    model: nn.Module,
    *,
    channels_last: bool = True,
    fold_bn: bool = True,
    compile: bool = False,  # noqa: A002 - mirrors torch.compile, the name users look for
    compile_mode: str | None = None,
    dtype: str | torch.dtype | None = None,
) -> nn.Module:
    """A copy of ``model`` prepared for fast inference; the original is left untouched.

    Steps: eval mode, BatchNorm folded into the preceding convolution
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``), weights in ``channels_last`` memory format,
    optionally cast to ``dtype`` and compiled with ``torch.compile`` and inductor's ``freezing``
    (weights become constants, so constant folding and weight pre-packing apply).

    Outputs equal the original model's in fp32 within ``atol=1e-4, rtol=1e-3`` on unit-scale
    inputs for every registered model (the folded weights round differently, nothing else
    changes); a lower ``dtype`` changes outputs by that dtype's precision.

    Args:
        model: any module; BatchNorm2d that directly follows a Conv2d is folded.
        channels_last: convert weights to ``torch.channels_last``; feed inputs the same way for
            full speed (the compiled model does this itself).
        fold_bn: fold BatchNorm into the convolutions.
        compile: wrap with ``torch.compile(..., options={"freezing": True})``. Compilation
            happens on the first call (seconds to minutes); call under ``torch.inference_mode()``.
        compile_mode: ``torch.compile`` mode, e.g. ``"max-autotune"``; ``None`` for the default,
            which compiles with ``freezing`` (torch.compile takes a mode or options, not both).
            Needs ``compile=True``.
        dtype: ``"fp32"``, ``"bf16"``, ``"fp16"`` or a ``torch.dtype``; ``None`` keeps the model's.

    Returns:
        The optimised module (an ``OptimizedModule`` when compiled).
    """
    check_instance("model", model, nn.Module)
    for flag, value in (("channels_last", channels_last), ("fold_bn", fold_bn), ("compile", compile)):
        check_bool(flag, value)
    dtype = _torch_dtype(dtype)
    if compile_mode is not None:
        if not compile:
            raise InvalidArgumentError(
                f"compile_mode={compile_mode!r} needs compile=True, received compile={compile!r}."
            )
        check_choice("torch.compile mode", compile_mode, compile_modes())
    fast = copy.deepcopy(model).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorm(fast)
    if dtype is not None:
        fast = fast.to(dtype)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    if compile:
        fast = torch.compile(fast, mode=compile_mode, options=None if compile_mode else {"freezing": True})
    return fast


def _torch_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype name of :data:`DTYPES` or a ``torch.dtype`` (``None`` passes) as a ``torch.dtype``."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if not isinstance(dtype, str):
        raise type_error("dtype", dtype, f"one of {', '.join(DTYPES)}, a torch.dtype or None")
    return DTYPES[check_choice("dtype", dtype, DTYPES)]
