"""Stems: the layers before the first residual stage.

Each stem is an ``nn.Sequential`` with torchvision's child names (``conv1``, ``bn1``, ``relu``,
``maxpool``). The network adopts those children as its own attributes, so its state_dict keys
are torchvision's (``conv1.weight``, ``bn1.running_mean``, ...).

A pre-activation network (He et al. 2016, "Identity Mappings in Deep Residual Networks") starts
every block with its own norm and activation, so its stem ends in the convolution: ``preact=True``
leaves out ``bn1`` and ``relu`` (the paper's code and timm's ResNetV2 do the same).

Each stem also says which of its children gives feature map 0 (``feature_module``) and at what
total stride (``feature_reduction``): the activation before any pool, or the last convolution of
a pre-activation stem.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from reszoo.models.layers import ActFactory, NormFactory


def _stem_layers(
    conv1: nn.Module, out_chs: int, norm_layer: NormFactory, act_layer: ActFactory, *, preact: bool
) -> OrderedDict[str, nn.Module]:
    layers: OrderedDict[str, nn.Module] = OrderedDict(conv1=conv1)
    if not preact:
        layers["bn1"] = norm_layer(out_chs)
        layers["relu"] = act_layer()
    return layers


class CifarStem(nn.Sequential):
    """3x3 convolution (stride 1), norm, activation: He et al. 2015, section 4.2.

    Args:
        in_chans: image channels.
        out_chs: filters of the convolution (16 in the paper).
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        preact: end with the convolution (no norm, no activation), for pre-activation blocks.
    """

    reduction = 1  # total spatial stride of the stem

    def __init__(
        self,
        in_chans: int = 3,
        out_chs: int = 16,
        *,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        preact: bool = False,
    ) -> None:
        conv1 = nn.Conv2d(in_chans, out_chs, kernel_size=3, stride=1, padding=1, bias=False)
        super().__init__(_stem_layers(conv1, out_chs, norm_layer, act_layer, preact=preact))
        self.out_chs = out_chs
        self.feature_module, self.feature_reduction = ("conv1" if preact else "relu"), 1


class ImageNetStem(nn.Sequential):
    """7x7/2 convolution, norm, activation, 3x3/2 max pool: He et al. 2015, Table 1.

    Args:
        in_chans: image channels.
        out_chs: filters of the convolution (64 in the paper).
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        preact: no norm and activation between the convolution and the pool (timm's ResNetV2).
    """

    reduction = 4

    def __init__(
        self,
        in_chans: int = 3,
        out_chs: int = 64,
        *,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        preact: bool = False,
    ) -> None:
        conv1 = nn.Conv2d(in_chans, out_chs, kernel_size=7, stride=2, padding=3, bias=False)
        layers = _stem_layers(conv1, out_chs, norm_layer, act_layer, preact=preact)
        layers["maxpool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        super().__init__(layers)
        self.out_chs = out_chs
        self.feature_module, self.feature_reduction = ("conv1" if preact else "relu"), 2


class DeepStem(nn.Sequential):
    """Three 3x3 convolutions (the first with stride 2), norm, activation, 3x3/2 max pool.

    The "ResNet-C" tweak of He et al. 2019 ("Bag of Tricks for Image Classification with
    Convolutional Neural Networks", section 4.1, Fig. 2b): the 7x7 convolution replaced by three
    3x3 ones of ``out_chs // 2``, ``out_chs // 2`` and ``out_chs`` filters, at about the same cost.
    The three convolutions form one ``nn.Sequential`` named ``conv1`` (``conv1.0``, ``conv1.1``
    (norm), ``conv1.3``, ``conv1.4`` (norm), ``conv1.6``), followed by ``bn1``, ``relu`` and
    ``maxpool``: the layout of timm's ``resnet50d``, whose weights load under these names.

    Args:
        in_chans: image channels.
        out_chs: filters of the last convolution (64 for ResNet-D).
        norm_layer: ``f(channels) -> nn.Module``.
        act_layer: ``f() -> nn.Module``.
        preact: no norm and activation after the last convolution (timm's ``resnetv2_50d``).
    """

    reduction = 4

    def __init__(
        self,
        in_chans: int = 3,
        out_chs: int = 64,
        *,
        norm_layer: NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        preact: bool = False,
    ) -> None:
        mid = out_chs // 2
        conv1 = nn.Sequential(
            nn.Conv2d(in_chans, mid, kernel_size=3, stride=2, padding=1, bias=False),
            norm_layer(mid),
            act_layer(),
            nn.Conv2d(mid, mid, kernel_size=3, stride=1, padding=1, bias=False),
            norm_layer(mid),
            act_layer(),
            nn.Conv2d(mid, out_chs, kernel_size=3, stride=1, padding=1, bias=False),
        )
        layers = _stem_layers(conv1, out_chs, norm_layer, act_layer, preact=preact)
        layers["maxpool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        super().__init__(layers)
        self.out_chs = out_chs
        self.feature_module, self.feature_reduction = ("conv1" if preact else "relu"), 2


STEMS: dict[str, type[nn.Sequential]] = {"cifar": CifarStem, "imagenet": ImageNetStem, "deep": DeepStem}
