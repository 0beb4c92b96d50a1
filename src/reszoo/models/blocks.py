"""Residual blocks: basic (3x3, 3x3) and bottleneck (1x1, 3x3, 1x1), each in the original
post-activation form (He et al. 2015) and the pre-activation form (He et al. 2016).

Attribute names follow torchvision (``conv1``, ``bn1``, ..., ``downsample``) so that its
state_dicts load unchanged and code written against torchvision blocks keeps working. The parts
a config may add are ``None`` unless asked for, so the paper's blocks keep their modules, their
state_dict keys and the exact operators torchvision runs:

- ``se``: channel attention at the end of the residual branch (:mod:`reszoo.models.attention`);
- ``dropout``: dropout before the branch's last convolution (Zagoruyko & Komodakis 2016);
- ``drop_path``: stochastic depth on the branch (Huang et al. 2016).
"""

from __future__ import annotations

import torch
from torch import nn

from reszoo.errors import InvalidArgumentError
from reszoo.models.attention import AttnFactory
from reszoo.models.layers import ActFactory, DropPath, NormFactory


def conv3x3(in_chs: int, out_chs: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a norm follows)."""
    return nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias (a norm follows)."""
    return nn.Conv2d(in_chs, out_chs, kernel_size=1, stride=stride, bias=False)


def bottleneck_width(width: int, *, groups: int = 1, width_per_group: int = 64) -> int:
    """Channels of a bottleneck's 3x3: ``int(width * width_per_group / 64) * groups`` (torchvision's rule).

    With the defaults it is ``width`` (ResNet-50). ResNeXt (Xie et al. 2017) splits it into
    ``groups`` paths of ``width_per_group`` channels at the first stage (32x4d: 32 groups of 4,
    128 channels where ResNet-50 has 64); Wide ResNet-50-2 doubles it (``width_per_group=128``).
    """
    return int(width * (width_per_group / 64.0)) * groups


class ResidualBlock(nn.Module):
    """What all blocks share: the shortcut, the optional parts, the final add.

    Subclasses set ``self.downsample`` (the shortcut module, or ``None`` for a plain block).
    ``downsample``, ``se`` and ``dropout`` are deliberately not annotated on the class:
    TorchScript reads class annotations and cannot parse ``nn.Module | None``; it types the
    attribute from its value.

    Args:
        drop_path: probability of dropping the residual branch of a sample in training
            (stochastic depth); 0 adds no module at all, so the paper's blocks stay unchanged.
        conv_dropout: dropout probability before the branch's last convolution; 0 adds no module.
    """

    expansion: int = 1
    # Pre-activation blocks (He et al. 2016) normalise their input themselves and add the shortcut
    # last, with no activation after it: the network then drops the stem's norm and activation and
    # adds a final norm and activation before the head.
    preact: bool = False
    _last_norm: str  # attribute name of the branch's last norm

    def __init__(self, *, drop_path: float = 0.0, conv_dropout: float = 0.0) -> None:
        super().__init__()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.dropout = nn.Dropout(conv_dropout) if conv_dropout > 0 else None

    def _add_shortcut(self, out: torch.Tensor, shortcut_in: torch.Tensor) -> torch.Tensor:
        """Attention and stochastic depth on the branch ``out``, then the shortcut of ``shortcut_in`` added."""
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:  # on the branch only: the shortcut is never dropped
            out = self.drop_path(out)
        if self.downsample is not None:
            # In place, as torchvision: the branch ends in a norm (or a conv, or a scaling), none of
            # which keeps its output for backward, so this saves one allocation and one pass over memory.
            out += self.downsample(shortcut_in)
        return out

    def last_norm(self) -> nn.Module:
        """The norm that ends the residual branch (in a pre-activation block: its last norm)."""
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


def _attention(attn_layer: AttnFactory | None, channels: int) -> nn.Module | None:
    return attn_layer(channels) if attn_layer is not None else None


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR networks).

    Args:
        in_chs: input channels.
        out_chs: output channels (the block's width; expansion 1).
        stride: stride of the first 3x3.
        shortcut: the ready-made shortcut module, or ``None`` for a plain block.
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        attn_layer: ``f(channels) -> nn.Module`` applied to the branch's output, or ``None``.
        drop_path: stochastic depth rate of this block (0: none).
        conv_dropout: dropout between the two convolutions (0: none).
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
        attn_layer: AttnFactory | None = None,
        drop_path: float = 0.0,
        conv_dropout: float = 0.0,
    ) -> None:
        super().__init__(drop_path=drop_path, conv_dropout=conv_dropout)
        self.conv1 = conv3x3(in_chs, out_chs, stride)
        self.bn1 = norm_layer(out_chs)
        self.relu = act_layer()
        self.conv2 = conv3x3(out_chs, out_chs)
        self.bn2 = norm_layer(out_chs)
        self.se = _attention(attn_layer, out_chs)
        self.downsample = shortcut
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.bn2(self.conv2(out))
        return self.relu(self._add_shortcut(out, x))


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152), optionally grouped (ResNeXt) or wide.

    Args:
        in_chs: input channels.
        out_chs: the block's base width; the output has ``out_chs * 4`` channels.
        stride: the block's stride.
        stride_in_1x1: put the stride on the first 1x1 as in the paper (He et al. 2015);
            the default ``False`` puts it on the 3x3, as torchvision and all released ImageNet
            weights do ("ResNet v1.5"), which is about 0.5% more accurate.
        groups: groups of the 3x3 convolution (ResNeXt's cardinality).
        width_per_group: channels per group of the 3x3 at base width 64 (:func:`bottleneck_width`).
        shortcut: the ready-made shortcut module, or ``None`` for a plain block.
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        attn_layer: ``f(channels) -> nn.Module`` applied to the branch's output, or ``None``.
        drop_path: stochastic depth rate of this block (0: none).
        conv_dropout: dropout before the last 1x1 convolution (0: none).
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
        groups: int = 1,
        width_per_group: int = 64,
        shortcut: nn.Module | None,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        attn_layer: AttnFactory | None = None,
        drop_path: float = 0.0,
        conv_dropout: float = 0.0,
    ) -> None:
        super().__init__(drop_path=drop_path, conv_dropout=conv_dropout)
        width = bottleneck_width(out_chs, groups=groups, width_per_group=width_per_group)
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_chs, width, s1)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, s3, groups)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, out_chs * self.expansion)
        self.bn3 = norm_layer(out_chs * self.expansion)
        self.relu = act_layer()
        self.se = _attention(attn_layer, out_chs * self.expansion)
        self.downsample = shortcut
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.bn3(self.conv3(out))
        return self.relu(self._add_shortcut(out, x))


class PreActBlock(ResidualBlock):
    """What the pre-activation blocks share (He et al. 2016, "Identity Mappings", Fig. 4e).

    The branch is norm-act-conv repeated, ending in a convolution; nothing follows the add, so the
    identity path runs clean from block to block. A shortcut with parameters (a projection, where
    the shape changes) takes the pre-activated input, as in the paper's code and timm's ResNetV2:
    the first norm-act is shared by both paths there. A parameter-free shortcut (identity, option
    A) takes the block's input itself.

    ``zero_init_last`` zeroes the last convolution (the branch ends in it), as timm's
    ``PreActBottleneck`` does.
    """

    preact = True
    _last_conv: str

    def _shortcut_takes_preact(self) -> bool:
        return self.downsample is not None and any(True for _ in self.downsample.parameters())

    def zero_init_last(self) -> None:
        """Zero the last convolution so the residual branch starts as zero (the block is then ``shortcut(x)``)."""
        nn.init.zeros_(getattr(self, self._last_conv).weight)


class PreActBasicBlock(PreActBlock):
    """Norm-act-3x3, norm-act-3x3, add: the pre-activation basic block (CIFAR ResNets, Wide ResNets).

    Args:
        in_chs: input channels.
        out_chs: output channels (the block's width; expansion 1).
        stride: stride of the first 3x3.
        shortcut: the ready-made shortcut module (projections without a norm), or ``None``.
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        attn_layer: ``f(channels) -> nn.Module`` applied to the branch's output, or ``None``.
        drop_path: stochastic depth rate of this block (0: none).
        conv_dropout: dropout between the two convolutions (0: none); Wide ResNets use 0.3 on CIFAR.
    """

    expansion = 1
    _last_norm = "bn2"
    _last_conv = "conv2"

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        shortcut: nn.Module | None,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        attn_layer: AttnFactory | None = None,
        drop_path: float = 0.0,
        conv_dropout: float = 0.0,
    ) -> None:
        super().__init__(drop_path=drop_path, conv_dropout=conv_dropout)
        self.bn1 = norm_layer(in_chs)
        self.relu = act_layer()
        self.conv1 = conv3x3(in_chs, out_chs, stride)
        self.bn2 = norm_layer(out_chs)
        self.conv2 = conv3x3(out_chs, out_chs)
        self.se = _attention(attn_layer, out_chs)
        self.downsample = shortcut
        self.stride = stride
        self.shortcut_preact = self._shortcut_takes_preact()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.relu(self.bn2(self.conv1(pre)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        return self._add_shortcut(out, pre if self.shortcut_preact else x)


class PreActBottleneck(PreActBlock):
    """Norm-act-1x1, norm-act-3x3, norm-act-1x1 (x4), add: the pre-activation bottleneck.

    ResNet-164/1001 on CIFAR (He et al. 2016) and timm's ``resnetv2_50``; grouped and wide as
    :class:`Bottleneck`. The stride is on the 3x3 unless ``stride_in_1x1``.

    Args:
        in_chs: input channels.
        out_chs: the block's base width; the output has ``out_chs * 4`` channels.
        stride: the block's stride.
        stride_in_1x1: put the stride on the first 1x1.
        groups: groups of the 3x3 convolution.
        width_per_group: channels per group of the 3x3 at base width 64 (:func:`bottleneck_width`).
        shortcut: the ready-made shortcut module (projections without a norm), or ``None``.
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        attn_layer: ``f(channels) -> nn.Module`` applied to the branch's output, or ``None``.
        drop_path: stochastic depth rate of this block (0: none).
        conv_dropout: dropout before the last 1x1 convolution (0: none).
    """

    expansion = 4
    _last_norm = "bn3"
    _last_conv = "conv3"

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        *,
        stride: int = 1,
        stride_in_1x1: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        shortcut: nn.Module | None,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        attn_layer: AttnFactory | None = None,
        drop_path: float = 0.0,
        conv_dropout: float = 0.0,
    ) -> None:
        super().__init__(drop_path=drop_path, conv_dropout=conv_dropout)
        width = bottleneck_width(out_chs, groups=groups, width_per_group=width_per_group)
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = norm_layer(in_chs)
        self.relu = act_layer()
        self.conv1 = conv1x1(in_chs, width, s1)
        self.bn2 = norm_layer(width)
        self.conv2 = conv3x3(width, width, s3, groups)
        self.bn3 = norm_layer(width)
        self.conv3 = conv1x1(width, out_chs * self.expansion)
        self.se = _attention(attn_layer, out_chs * self.expansion)
        self.downsample = shortcut
        self.stride = stride
        self.shortcut_preact = self._shortcut_takes_preact()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.relu(self.bn2(self.conv1(pre)))
        out = self.relu(self.bn3(self.conv2(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv3(out)
        return self._add_shortcut(out, pre if self.shortcut_preact else x)


BLOCKS: dict[str, type[ResidualBlock]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}
