"""Pretrained weights for a changed network: the input convolution for other than 3 channels.

``create_model(name, pretrained=True, in_chans=1)`` loads RGB weights into a network for grey
images; the first convolution's filters are adapted as timm's ``adapt_input_conv`` does, so
weights move between the two libraries with the same results.

Example:
    >>> import torch
    >>> adapt_input_conv(1, torch.ones(16, 3, 3, 3)).shape
    torch.Size([16, 1, 3, 3])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reszoo.checks import check_int
from reszoo.errors import InvalidArgumentError

__all__ = ["adapt_input_conv", "input_conv"]


def input_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The input convolution (the first one registered: ``conv1`` in the named stems) and its weight's key."""
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    return f"{name}.weight", conv


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """RGB filters of a first convolution, adapted to ``in_chans`` input channels (timm's rule).

    ``in_chans=1`` sums the three filters: a grey image gives the response its RGB copy gave.
    More channels (or 2) repeat R, G, B cyclically and scale by ``3 / in_chans``, which keeps the
    response to an input whose channels all carry the same image.

    Args:
        in_chans: input channels of the new convolution.
        weight: the pretrained ``(out, 3, k, k)`` weight.

    Returns:
        An ``(out, in_chans, k, k)`` weight of the same dtype (``weight`` itself if it fits).

    Raises:
        InvalidArgumentError: ``weight`` has other than 3 input channels (and not ``in_chans``).
    """
    check_int("in_chans", in_chans, minimum=1)
    have = weight.shape[1]
    if have == in_chans:
        return weight
    if have != 3:
        raise InvalidArgumentError(
            f"in_chans={in_chans}: a first convolution of {have} input channels cannot be adapted; "
            "only RGB (3-channel) weights are summed or repeated."
        )
    w = weight.float()
    if in_chans == 1:
        out = w.sum(dim=1, keepdim=True)
    else:
        out = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3 / in_chans)
    return out.to(weight.dtype)
