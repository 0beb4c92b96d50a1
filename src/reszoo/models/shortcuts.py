"""Shortcut connections (He et al. 2015, section 3.3 and 4.1; He et al. 2019, section 4.1).

- ``"A"``: identity where shapes match; where they change, subsample by the stride and pad the
  new channels with zeros. No parameters at all, as in the paper's CIFAR networks.
- ``"B"``: identity where shapes match; a 1x1 convolution (with the stride) and a norm where
  they change. The paper's ImageNet networks and torchvision use this.
- ``"C"``: a 1x1 projection on every block.
- ``"D"``: identity where shapes match; where they change, a 2x2 average pool with the stride,
  then a 1x1 convolution (stride 1) and a norm: the "ResNet-D" tweak of He et al. 2019 ("Bag of
  Tricks", Fig. 2c), which lets the projection see every input pixel instead of one in four.
- ``"none"``: no shortcut: the paper's plain networks.

Shortcuts are built here and handed to a block ready-made, so a block never branches on the
option (the block only asks: is there a shortcut at all?). In a pre-activation network
(``preact=True``) projections have no norm: the block's own pre-activation normalises their input
(He et al. 2016's code, timm's ResNetV2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.errors import InvalidArgumentError
from reszoo.models.layers import NormFactory
from reszoo.utils.checks import check_choice

SHORTCUT_OPTIONS = ("A", "B", "C", "D", "none")


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::stride, ::stride]`` with zero channels padded half on each side.

    With ``in_chs=16, out_chs=32`` this pads 8 zero channels before and 8 after, exactly the
    ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`` of the reference CIFAR
    implementation (akamaster/pytorch_resnet_cifar10), so its trained weights fit unchanged.
    An odd difference puts the extra channel after.

    Args:
        in_chs: channels of the input.
        out_chs: channels of the output, at least ``in_chs``.
        stride: spatial subsampling factor.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        if out_chs < in_chs:
            raise InvalidArgumentError(
                f"Option A cannot reduce channels: received in_chs={in_chs}, out_chs={out_chs}; "
                "use shortcut='B' or 'C' for a projection."
            )
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.pad_before = (out_chs - in_chs) // 2
        self.pad_after = out_chs - in_chs - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            # x[:, :, ::stride, ::stride], exactly (the mean of one value is the value), written as a
            # 1x1 pool so that its output size has the convolution's formula, (H - 1) // stride + 1.
            # torch.export with a dynamic H cannot prove the slice's ceil(H / stride) equal to it,
            # and would then refuse odd sizes; the pool's backward is as cheap as the slice's.
            x = F.avg_pool2d(x, kernel_size=1, stride=self.stride)
        if self.pad_before or self.pad_after:
            x = F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_chs}, {self.out_chs}, stride={self.stride}"


def projection(
    in_chs: int, out_chs: int, stride: int, norm_layer: NormFactory, *, preact: bool = False
) -> nn.Sequential:
    """A 1x1 convolution with the stride, then a norm (options B and C); no norm when ``preact``.

    It is an ``nn.Sequential`` so that its state_dict keys are ``downsample.0.weight`` and
    ``downsample.1.*``: torchvision's names, which its weights and users' code rely on.
    """
    conv = nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False)
    return nn.Sequential(conv) if preact else nn.Sequential(conv, norm_layer(out_chs))


class CeilAvgPool2d(nn.Module):
    """``nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)``: the mean of the real
    pixels of each ``stride x stride`` window, a last odd row or column averaged on its own.

    Eagerly it is that pool (the operator timm's ResNet-D runs). Under torch.compile and torch.export
    it is written as zero-padding to a multiple of the stride, a plain pool, and a division by the
    share of real pixels in each window, which gives the same numbers (exactly: the shares are powers
    of two for stride 2): export with a dynamic height and width cannot prove the ceil-mode pool's
    output-size guard, ``2 * ((H - 1) // 2) < H``, and refuses odd sizes.

    Args:
        stride: window size and stride.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if not torch.compiler.is_compiling():
            return F.avg_pool2d(x, s, s, ceil_mode=True, count_include_pad=False)
        pad = (0, s - 1, 0, s - 1)
        pooled = F.avg_pool2d(F.pad(x, pad), s, s)
        share = F.avg_pool2d(F.pad(x.new_ones((1, 1, x.shape[-2], x.shape[-1])), pad), s, s)
        return pooled / share

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def avg_down_projection(
    in_chs: int, out_chs: int, stride: int, norm_layer: NormFactory, *, preact: bool = False
) -> nn.Sequential:
    """Option D: 2x2 average pool with the stride, 1x1 convolution, norm (no norm when ``preact``).

    The pool (:class:`CeilAvgPool2d`) keeps a last odd row or column, averaged over its real pixels,
    so the output size is the strided 3x3 convolution's, ``(H - 1) // 2 + 1``. At stride 1 the pool
    is an ``nn.Identity``: the keys are ``downsample.1.weight`` and ``downsample.2.*`` either way,
    timm's names for ResNet-D.
    """
    pool: nn.Module = CeilAvgPool2d(stride) if stride > 1 else nn.Identity()
    conv = nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=1, bias=False)
    return nn.Sequential(pool, conv) if preact else nn.Sequential(pool, conv, norm_layer(out_chs))


def make_shortcut(
    option: str, *, in_chs: int, out_chs: int, stride: int, norm_layer: NormFactory, preact: bool = False
) -> nn.Module | None:
    """Build the shortcut of one block.

    Args:
        option: one of ``"A"``, ``"B"``, ``"C"``, ``"D"``, ``"none"``.
        in_chs: block input channels.
        out_chs: block output channels.
        stride: block stride.
        norm_layer: norm factory for projections.
        preact: the block is a pre-activation block: projections end in the convolution.

    Returns:
        ``nn.Identity()``, a ``ZeroPadShortcut``, a projection ``nn.Sequential``, or ``None``
        for ``"none"`` (the block then adds nothing).
    """
    check_choice("shortcut", option, SHORTCUT_OPTIONS)
    if option == "none":
        return None
    same_shape = in_chs == out_chs and stride == 1
    if option == "C" or (option == "B" and not same_shape):
        return projection(in_chs, out_chs, stride, norm_layer, preact=preact)
    if option == "D" and not same_shape:
        return avg_down_projection(in_chs, out_chs, stride, norm_layer, preact=preact)
    if same_shape:
        return nn.Identity()
    return ZeroPadShortcut(in_chs, out_chs, stride)
