"""Stems: the layers before the first residual stage.

Each stem is an ``nn.Sequential`` with torchvision's child names (``conv1``, ``bn1``, ``relu``,
``maxpool``). The network adopts those children as its own attributes, so its state_dict keys
are torchvision's (``conv1.weight``, ``bn1.running_mean``, ...).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from reszoo.models.layers import ActFactory, NormFactory


class CifarStem(nn.Sequential):
    """3x3 convolution (stride 1), norm, activation: He et al. 2015, section 4.2.

    Args:
        in_chans: image channels.
        out_chs: filters of the convolution (16 in the paper).
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
    """

    reduction = 1  # total spatial stride of the stem

    def __init__(
        self,
        in_chans: int = 3,
        out_chs: int = 16,
        *,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
    ) -> None:
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(in_chans, out_chs, kernel_size=3, stride=1, padding=1, bias=False),
                bn1=norm_layer(out_chs),
                relu=act_layer(),
            )
        )
        self.out_chs = out_chs


class ImageNetStem(nn.Sequential):
    """7x7/2 convolution, norm, activation, 3x3/2 max pool: He et al. 2015, Table 1.

    Args:
        in_chans: image channels.
        out_chs: filters of the convolution (64 in the paper).
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
    """

    reduction = 4

    def __init__(
        self,
        in_chans: int = 3,
        out_chs: int = 64,
        *,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
    ) -> None:
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(in_chans, out_chs, kernel_size=7, stride=2, padding=3, bias=False),
                bn1=norm_layer(out_chs),
                relu=act_layer(),
                maxpool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        )
        self.out_chs = out_chs


STEMS: dict[str, type[nn.Sequential]] = {"cifar": CifarStem, "imagenet": ImageNetStem}
