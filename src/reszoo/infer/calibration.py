"""The data int8 quantization takes: calibration batches, and the held-out batches it is checked on.

Both arguments of ``optimize_for_inference(..., dtype="int8", calibration=..., check=...)`` accept
the same forms, and each becomes a list of ``(inputs, targets)`` pairs (targets ``None`` where
none were given):

- a ``DataLoader`` or any iterable of batches, each an ``(N, C, H, W)`` float tensor or an
  ``(inputs, targets)`` pair, as a ``DataLoader`` over a labelled dataset yields;
- one ``(N, C, H, W)`` float tensor: N images, split into batches here;
- one ``(inputs, targets)`` pair of tensors: ``inputs`` ``(N, C, H, W)``, ``targets`` ``(N,)`` integers.

Inputs are pre-processed images, as the model is called (``model.pretrained_weights.transforms()``
for reszoo's pretrained weights): uint8 pixels, NaN or infinite values, another channel count or
a mix of image sizes are refused with the batch and what was received.

Example:
    >>> import torch
    >>> batches = data_batches("calibration", torch.randn(10, 3, 8, 8), in_chans=3)
    >>> [tuple(x.shape) for x, _ in batches]
    [(10, 3, 8, 8)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.utils.checks import type_error

# A tensor of images is split into batches of this many: large enough that per-call overhead is
# small, small enough that one batch of 224x224 images stays near 100 MB.
SPLIT_BATCH = 64
FORMS = "a DataLoader, a list of (N, C, H, W) batches or (inputs, targets) pairs, or one (N, C, H, W) tensor"

Batch = tuple[torch.Tensor, "torch.Tensor | None"]


def data_batches(name: str, data: Any, *, in_chans: int | None) -> list[Batch]:
    """``data`` (any of the forms in the module docstring) as a checked list of ``(inputs, targets)``.

    Args:
        name: the argument's name, for messages (``"calibration"``, ``"check"``).
        data: the batches.
        in_chans: the channels the model takes, or ``None`` to skip that check.

    Returns:
        ``(inputs, targets)`` pairs: float32 CPU inputs, int64 CPU targets or ``None``.

    Raises:
        ArgumentTypeError: ``data`` is none of the accepted forms (a NumPy array, a dict, a path...).
        InvalidArgumentError: no batches, or a batch that is not float ``(N, C, H, W)`` with the
            model's channels and the first batch's height and width, holds NaN or infinite values,
            or has targets that do not match its inputs.
    """
    if hasattr(data, "__array__") and not isinstance(data, torch.Tensor):
        raise ArgumentTypeError(
            f"{name} must be {FORMS}; received {name}={type(data).__name__} of shape {getattr(data, 'shape', '?')}. "
            "torch.from_numpy(x) makes a NumPy array a tensor (pre-process it as the model is called)."
        )
    if isinstance(data, torch.Tensor):
        items: Iterable[Any] = data.split(SPLIT_BATCH) if data.dim() == 4 else [data]
    elif _is_pair(data):
        items = [data]
    elif isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
        raise type_error(name, data, FORMS)
    else:
        items = data
    batches = [_batch(name, i, item, in_chans) for i, item in enumerate(items)]
    if not batches:
        raise InvalidArgumentError(f"{name} holds no batches; give at least one (N, C, H, W) batch of images.")
    size = batches[0][0].shape[2:]
    for i, (x, _) in enumerate(batches):
        if x.shape[2:] != size:
            raise InvalidArgumentError(
                f"{name} batch {i} has images of {tuple(x.shape[2:])}; batch 0 has {tuple(size)}. "
                "Give every batch the same height and width."
            )
    return batches


def _is_pair(data: Any) -> bool:
    """One ``(inputs, targets)`` pair: a 2-tuple (or list) of a 4-D tensor and a 1-D tensor."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
        and data[0].dim() == 4
        and data[1].dim() == 1
    )


def _batch(name: str, i: int, item: Any, in_chans: int | None) -> Batch:
    """One item of the batches, checked, as ``(float32 inputs, int64 targets or None)``."""
    x, y = (item[0], item[1] if len(item) > 1 else None) if isinstance(item, (tuple, list)) and item else (item, None)
    where = f"{name} batch {i}"
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        hint = ""
        if isinstance(x, torch.Tensor) and x.dim() == 3:
            hint = " One image? Add the batch dimension: x.unsqueeze(0)."
        elif isinstance(x, torch.Tensor) and not x.is_floating_point():
            hint = " Pre-process the images as the model is called (e.g. model.pretrained_weights.transforms())."
        raise InvalidArgumentError(f"{where} must be a float tensor (N, C, H, W); received {describe(x)}.{hint}")
    if in_chans is not None and x.shape[1] != in_chans:
        raise InvalidArgumentError(f"{where} has {x.shape[1]} channels; the model takes in_chans={in_chans}.")
    x = x.detach().cpu().float()
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise InvalidArgumentError(f"{where} holds {bad} NaN or infinite values; give finite, pre-processed images.")
    return x, _targets(where, y, len(x))


def _targets(where: str, y: Any, n: int) -> torch.Tensor | None:
    if y is None:
        return None
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() or len(y) != n:
        raise InvalidArgumentError(
            f"{where}: targets must be a 1-D integer tensor of {n} class indices (one per image); "
            f"received {describe(y)}."
        )
    return y.detach().cpu().long()


def describe(x: Any) -> str:
    """A short description of a value for messages: a tensor's dtype and shape, or the type's name."""
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return "None" if x is None else type(x).__name__
