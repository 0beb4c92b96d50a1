"""Residual blocks: basic (3x3, 3x3) and bottleneck (1x1, 3x3, 1x1).

Attribute names follow torchvision (``conv1``, ``bn1``, ..., ``downsample``) so that its
state_dicts load unchanged and code written against torchvision blocks keeps working.
"""

from __future__ import annotations

import torch
from torch import nn

from reszoo.errors import InvalidArgumentError
from reszoo.models.layers import ActFactory, DropPath, NormFactory


def conv3x3(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a norm follows)."""
    return nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias (a norm follows)."""
    return nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False)


class ResidualBlock(nn.Module):
    """What both blocks share: the shortcut, stochastic depth, the final add and activation.

    Subclasses set ``self.downsample`` (the shortcut module, or ``None`` for a plain block) and
    ``self.relu``. ``downsample`` is deliberately not annotated on the class: TorchScript reads
    class annotations and cannot parse ``nn.Module | None``; it types the attribute from its value.

    Args:
        drop_path: probability of dropping the residual branch of a sample in training
            (stochastic depth); 0 adds no module at all, so the paper's blocks stay unchanged.
    """

    expansion: int = 1
    _last_norm: str  # attribute name of the branch's last norm

    def __init__(self, *, drop_path: float = 0.0) -> None:
        super().__init__()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def _finish(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.drop_path is not None:  # on the branch only: the shortcut is never dropped
            out = self.drop_path(out)
        if self.downsample is not None:
            # In place, as torchvision: the branch ends in a norm, which does not keep its output
            # for backward, so this saves one allocation and one pass over memory per block.
            out += self.downsample(x)
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        """The norm that ends the residual branch."""
        return getattr(self, self._last_norm)

    def zero_init_last(self) -> None:
        """Zero the last norm's scale so the residual branch starts as zero.

        The block then computes ``act(shortcut(x))`` at initialisation (Goyal et al. 2017,
        "Accurate, Large Minibatch SGD", section 5.1).
        """
        weight = getattr(self.last_norm(), "weight", None)
        if weight is None:
            raise InvalidArgumentError(
                f"zero_init_residual needs an affine norm layer (one with a weight); received {self.last_norm()!r}."
            )
        nn.init.zeros_(weight)


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR networks).

    Args:
        in_chs: input channels.
        out_chs: output channels (the block's width; expansion 1).
        stride: stride of the first 3x3.
        shortcut: the ready-made shortcut module, or ``None`` for a plain block.
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        drop_path: stochastic depth rate of this block (0: none).
    """

    expansion = 1
    _last_norm = "bn2"

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        shortcut: nn.Module | None,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__(drop_path=drop_path)
        self.conv1 = conv3x3(in_chs, out_chs, stride)
        self.bn1 = norm_layer(out_chs)
        self.relu = act_layer()
        self.conv2 = conv3x3(out_chs, out_chs)
        self.bn2 = norm_layer(out_chs)
        self.downsample = shortcut
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._finish(out, x)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).

    Args:
        in_chs: input channels.
        out_chs: the block's base width; the output has ``out_chs * 4`` channels.
        stride: the block's stride.
        stride_in_1x1: put the stride on the first 1x1 as in the paper (He et al. 2015);
            the default ``False`` puts it on the 3x3, as torchvision and all released ImageNet
            weights do ("ResNet v1.5"), which is about 0.5% more accurate.
        shortcut: the ready-made shortcut module, or ``None`` for a plain block.
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        drop_path: stochastic depth rate of this block (0: none).
    """

    expansion = 4
    _last_norm = "bn3"

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        stride_in_1x1: bool = False,
        shortcut: nn.Module | None,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__(drop_path=drop_path)
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_chs, out_chs, s1)
        self.bn1 = norm_layer(out_chs)
        self.conv2 = conv3x3(out_chs, out_chs, s3)
        self.bn2 = norm_layer(out_chs)
        self.conv3 = conv1x1(out_chs, out_chs * self.expansion)
        self.bn3 = norm_layer(out_chs * self.expansion)
        self.relu = act_layer()
        self.downsample = shortcut
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._finish(out, x)


BLOCKS: dict[str, type[ResidualBlock]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
