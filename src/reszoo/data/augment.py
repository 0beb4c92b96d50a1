"""The CIFAR crop-and-flip augmentation for a whole batch on its own device: one gather, no loop.

``cifar_train_transform`` draws a crop and a flip per image in DataLoader workers. When the whole
dataset lives on the device as uint8 (``reszoo.data.datasets.DeviceCifarLoader``), the same distribution is
drawn for a batch at once (:func:`sample_crop_flip`) and applied in one index computation
(:func:`crop_flip`); :func:`batch_random_crop_flip` does both. ``reszoo.data.transforms`` re-exports
all three.

Example:
    >>> import torch
    >>> x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    >>> batch_random_crop_flip(x, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([8, 3, 32, 32])
"""

from __future__ import annotations

from typing import Any

import torch

from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.utils.checks import check_int, check_number

__all__ = ["batch_random_crop_flip", "check_batch", "crop_flip", "sample_crop_flip"]


def check_batch(images: Any, name: str = "images") -> torch.Tensor:
    """``images`` if it is a tensor batch ``(N, C, H, W)``; an error naming what it is otherwise."""
    if not isinstance(images, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a batch tensor (N, C, H, W); received {type(images).__name__}.")
    if images.ndim != 4:
        raise InvalidArgumentError(f"{name} must be a batch (N, C, H, W); received shape {tuple(images.shape)}.")
    return images


def _draw_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    if generator is None:
        return torch.device("cpu" if device is None else device)
    if device is None:
        return generator.device
    device = torch.device(device)
    if generator.device.type != device.type:
        raise InvalidArgumentError(
            f"generator is on {generator.device} but the draws are for {device}; make the generator "
            f"with torch.Generator(device={str(device)!r})."
        )
    return device


def sample_crop_flip(
    n: int,
    *,
    padding: int = 4,
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw per-image crop offsets and flips as the per-image transform does.

    Args:
        n: number of images.
        padding: zero padding on each side; offsets are uniform over ``0..2*padding``.
        flip_p: probability of a horizontal flip.
        generator: a ``torch.Generator`` on ``device`` for reproducible draws (global RNG if None).
        device: where to draw (the generator's device if one is given).

    Returns:
        ``(top, left, flip)``: int64 offsets into the padded image and a bool flip mask, each ``(n,)``.
    """
    check_int("n", n, minimum=0)
    check_int("padding", padding, minimum=0)
    check_number("flip_p", flip_p, minimum=0, maximum=1)
    device = _draw_device(generator, device)
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand((n,), generator=generator, device=device) < flip_p
    return top, left, flip


def _check_draws(n: int, top: Any, left: Any, flip: Any) -> None:
    for name, t in (("top", top), ("left", left), ("flip", flip)):
        if not isinstance(t, torch.Tensor):
            raise ArgumentTypeError(
                f"{name} must be a ({n},) tensor, one entry per image; received {type(t).__name__}."
            )
        if t.shape != (n,):
            raise InvalidArgumentError(
                f"{name} must be a ({n},) tensor, one entry per image; received shape {tuple(t.shape)}."
            )
    for name, t in (("top", top), ("left", left)):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ArgumentTypeError(f"{name} must hold integer offsets; received dtype {t.dtype}.")
    if flip.dtype != torch.bool:
        raise ArgumentTypeError(f"flip must be a bool tensor; received dtype {flip.dtype}.")


def crop_flip(
    images: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    *,
    padding: int = 4,
) -> torch.Tensor:
    """Zero-pad a batch, crop each image at its own offset and flip where asked: one gather, no loop.

    Args:
        images: ``(N, C, H, W)`` batch, any dtype, on any device.
        top: ``(N,)`` row offsets into the padded image, in ``0..2*padding``.
        left: ``(N,)`` column offsets into the padded image, in ``0..2*padding``.
        flip: ``(N,)`` bool, flip image ``i`` horizontally after its crop.
        padding: zero padding on each side.

    Returns:
        A batch with the shape, dtype and device of ``images``.

    Raises:
        ValueError: wrong shapes or dtypes, or an offset outside ``0..2*padding`` (checking it
            synchronises with the device; ``batch_random_crop_flip`` draws in range and skips it).
    """
    n = check_batch(images).shape[0]
    check_int("padding", padding, minimum=0)
    _check_draws(n, top, left, flip)
    hi = 2 * padding
    # Out-of-range offsets would read into the neighbouring row instead of failing: refuse them.
    if n and bool(((top < 0) | (top > hi) | (left < 0) | (left > hi)).any()):
        raise InvalidArgumentError(
            f"top and left must lie in 0..{hi} (2*padding); received top in {int(top.min())}..{int(top.max())}, "
            f"left in {int(left.min())}..{int(left.max())}."
        )
    return _crop_flip(images, top, left, flip, padding)


def _crop_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    # crop_flip without the checks (the offset range check costs a device sync), for draws that
    # sample_crop_flip made in range.
    n, _, h, w = images.shape
    if padding:
        images = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dev = images.device
    rows = top.to(dev)[:, None] + torch.arange(h, device=dev)  # (N, H)
    cols = torch.arange(w, device=dev)
    # A flip reads the crop's columns right to left, so crop and flip are one index computation.
    cols = torch.where(flip.to(dev)[:, None], w - 1 - cols, cols) + left.to(dev)[:, None]  # (N, W)
    # Gather rows, then columns, over the flattened (H, W) plane: two cheap index_selects' worth
    # of work instead of a 4-D advanced index, which materialises a full (N, C, H, W) index set.
    hp, wp = images.shape[-2:]
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)
    out = torch.gather(images.reshape(n, images.shape[1], hp * wp), 2, flat.expand(-1, images.shape[1], -1))
    return out.reshape(n, images.shape[1], h, w)


def batch_random_crop_flip(
    images: torch.Tensor,
    *,
    padding: int = 4,
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The CIFAR crop-and-flip augmentation for a whole batch on its own device, vectorised.

    Every image gets its own offset (each of the ``(2*padding+1)**2`` positions equally likely)
    and its own flip (probability ``flip_p``), the distribution of ``cifar_train_transform``.

    Args:
        images: ``(N, C, H, W)`` uint8 or float batch.
        padding: zero padding on each side.
        flip_p: probability of a horizontal flip.
        generator: a ``torch.Generator`` on the images' device for reproducible draws.

    Returns:
        The augmented batch, same shape, dtype and device.

    Example:
        >>> import torch
        >>> x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> g = torch.Generator().manual_seed(0)
        >>> batch_random_crop_flip(x, generator=g).shape
        torch.Size([8, 3, 32, 32])
    """
    check_batch(images)
    top, left, flip = sample_crop_flip(
        images.shape[0], padding=padding, flip_p=flip_p, generator=generator, device=images.device
    )
    return _crop_flip(images, top, left, flip, padding)
