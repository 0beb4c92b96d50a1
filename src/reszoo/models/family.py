"""The ResNet family of the later papers, each the paper's network with one part changed.

Every name here is a :class:`ResNetConfig` of the same network, not a new network class:

- pre-activation (He et al. 2016, "Identity Mappings in Deep Residual Networks"): the block
  (``block="preact_basic"`` / ``"preact_bottleneck"``): ``preresnet*``, ``resnetv2_*``;
- Wide ResNet (Zagoruyko & Komodakis 2016): the widths, with pre-activation blocks on CIFAR
  (``wrn*``) or ``width_per_group=128`` in a bottleneck (``wide_resnet*``);
- ResNeXt (Xie et al. 2017): ``groups`` and ``width_per_group`` (``resnext*``);
- ResNet-D (He et al. 2019, "Bag of Tricks"): ``stem="deep"`` and ``shortcut="D"`` (``resnet50d``, ``resnet101d``);
- SE-ResNet (Hu et al. 2018): ``attention="se"`` (``seresnet50``).

CIFAR networks follow the papers' CIFAR sections, with parameter counts equal to pytorchcv's
(``preresnet20_cifar10`` ... ``resnext29_16x64d_cifar10``); ImageNet networks follow torchvision
(ResNeXt, Wide ResNet: its state_dicts load as they are) and timm (``resnet50d``, ``seresnet50``,
``resnetv2_50``: equal parameter counts, weights through :mod:`reszoo.weights.convert`).
"""

from __future__ import annotations

from typing import Any

from reszoo.models._factory import Pretrained, build_model
from reszoo.models.registry import register_model
from reszoo.models.resnet import ResNet, ResNetConfig
from reszoo.models.zoo import imagenet_config
from reszoo.utils.checks import check_choice, check_int, value_error

PREACT_CIFAR_BLOCKS = ("preact_basic", "preact_bottleneck")


def preact_cifar_config(depth: int, *, block: str = "preact_basic") -> ResNetConfig:
    """A pre-activation CIFAR ResNet (He et al. 2016, section 5 and Table 2).

    The 2015 CIFAR layout (3x3 stem of 16, three stages at 32, 16 and 8 pixels) with pre-activation
    blocks: basic blocks of 16, 32, 64 channels (depth 6n + 2: 20, 56, 110) or bottlenecks of
    64, 128, 256 output channels (depth 9n + 2: 164, 1001). Where the shape changes, a 1x1
    projection of the pre-activated input (the paper's code; pytorchcv counts the same).

    Args:
        depth: 6n + 2 for ``"preact_basic"``, 9n + 2 for ``"preact_bottleneck"``.
        block: ``"preact_basic"`` or ``"preact_bottleneck"``.
    """
    check_choice("block", block, PREACT_CIFAR_BLOCKS)
    per_block = 2 if block == "preact_basic" else 3
    if check_int("depth", depth) < 3 * per_block + 2 or (depth - 2) % (3 * per_block):
        rule = "6n+2 (20, 56, 110, ...)" if per_block == 2 else "9n+2 (164, 1001, ...)"
        raise value_error("depth", depth, f"{rule} with n >= 1 for block={block!r}")
    n = (depth - 2) // (3 * per_block)
    return ResNetConfig(
        stem="cifar", stem_width=16, block=block, depths=(n, n, n), widths=(16, 32, 64),
        shortcut="B", num_classes=10, image_size=32,
    )  # fmt: skip


def wrn_config(depth: int, widen: int) -> ResNetConfig:
    """WRN-``depth``-``widen`` for CIFAR (Zagoruyko & Komodakis 2016, Table 1).

    Pre-activation basic blocks widened ``widen`` times: stages of 16k, 32k, 64k channels after a
    3x3 stem of 16, a 1x1 projection wherever the shape changes (the first block of every stage).
    ``depth = 6n + 4`` counts the convolutions including the three projections, the paper's
    convention (``config.depth`` counts as He et al. 2015 do: stem, branch convolutions, classifier).
    Dropout between the convolutions is off; the paper's 0.3 is ``conv_dropout=0.3``.
    """
    if check_int("depth", depth) < 10 or (depth - 4) % 6:
        raise value_error("depth", depth, "6n+4 with n >= 1 for a Wide ResNet (16, 28, 40, ...)")
    check_int("widen", widen, minimum=1)
    n = (depth - 4) // 6
    return ResNetConfig(
        stem="cifar", stem_width=16, block="preact_basic", depths=(n, n, n),
        widths=(16 * widen, 32 * widen, 64 * widen), shortcut="B", num_classes=10, image_size=32,
    )  # fmt: skip


def resnext_cifar_config(cardinality: int, width: int) -> ResNetConfig:
    """ResNeXt-29 ``cardinality``x``width``d for CIFAR (Xie et al. 2017, section 5.3).

    A 3x3 stem of 64, then three stages of three bottlenecks with 256, 512 and 1024 output
    channels; the grouped 3x3 of the first stage has ``cardinality * width`` channels (doubling
    per stage), projections (1x1 + BN) where the shape changes. 29 = 9 x 3 + 2 layers.
    """
    check_int("cardinality", cardinality, minimum=1)
    check_int("width", width, minimum=1)
    return ResNetConfig(
        stem="cifar", stem_width=64, block="bottleneck", depths=(3, 3, 3), widths=(64, 128, 256),
        shortcut="B", num_classes=10, image_size=32, groups=cardinality, width_per_group=width,
    )  # fmt: skip


# -- pre-activation (He et al. 2016) ----------------------------------------------------------------
@register_model(config=preact_cifar_config(20))
def preresnet20(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Pre-activation ResNet-20 for CIFAR: 272,282 parameters."""
    return build_model("preresnet20", pretrained, **overrides)


@register_model(config=preact_cifar_config(56))
def preresnet56(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Pre-activation ResNet-56 for CIFAR: 855,578 parameters."""
    return build_model("preresnet56", pretrained, **overrides)


@register_model(config=preact_cifar_config(110))
def preresnet110(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Pre-activation ResNet-110 for CIFAR: 1,730,522 parameters."""
    return build_model("preresnet110", pretrained, **overrides)


@register_model(config=preact_cifar_config(164, block="preact_bottleneck"))
def preresnet164(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Pre-activation ResNet-164 (bottleneck) for CIFAR: 1,703,258 parameters (paper: 1.7M, 5.46% error)."""
    return build_model("preresnet164", pretrained, **overrides)


@register_model(config=preact_cifar_config(1001, block="preact_bottleneck"))
def preresnet1001(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Pre-activation ResNet-1001 (bottleneck) for CIFAR: 10,327,706 parameters (paper: 10.2M, 4.92% error)."""
    return build_model("preresnet1001", pretrained, **overrides)


@register_model(config=imagenet_config(50).replace(block="preact_bottleneck"))
def resnetv2_50(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Pre-activation ResNet-50 for ImageNet (timm's ``resnetv2_50``): 25,549,352 parameters."""
    return build_model("resnetv2_50", pretrained, **overrides)


@register_model(config=imagenet_config(101).replace(block="preact_bottleneck"))
def resnetv2_101(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Pre-activation ResNet-101 for ImageNet (timm's ``resnetv2_101``): 44,541,480 parameters."""
    return build_model("resnetv2_101", pretrained, **overrides)


# -- Wide ResNets (Zagoruyko & Komodakis 2016) -----------------------------------------------------
@register_model(config=wrn_config(16, 10))
def wrn16_10(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """WRN-16-10 for CIFAR: 17,116,634 parameters (paper: 17.1M)."""
    return build_model("wrn16_10", pretrained, **overrides)


@register_model(config=wrn_config(28, 10))
def wrn28_10(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """WRN-28-10 for CIFAR: 36,479,194 parameters (paper: 36.5M)."""
    return build_model("wrn28_10", pretrained, **overrides)


@register_model(config=wrn_config(40, 8))
def wrn40_8(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """WRN-40-8 for CIFAR: 35,748,314 parameters (paper: 35.7M)."""
    return build_model("wrn40_8", pretrained, **overrides)


@register_model(config=imagenet_config(50).replace(width_per_group=128))
def wide_resnet50_2(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Wide ResNet-50-2 for ImageNet (torchvision's): 68,883,240 parameters."""
    return build_model("wide_resnet50_2", pretrained, **overrides)


@register_model(config=imagenet_config(101).replace(width_per_group=128))
def wide_resnet101_2(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Wide ResNet-101-2 for ImageNet (torchvision's): 126,886,696 parameters."""
    return build_model("wide_resnet101_2", pretrained, **overrides)


# -- ResNeXt (Xie et al. 2017) ----------------------------------------------------------------------
@register_model(config=resnext_cifar_config(32, 4))
def resnext29_32x4d(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNeXt-29 32x4d for CIFAR: 4,775,754 parameters."""
    return build_model("resnext29_32x4d", pretrained, **overrides)


@register_model(config=resnext_cifar_config(16, 64))
def resnext29_16x64d(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNeXt-29 16x64d for CIFAR: 68,155,210 parameters (paper: 68.1M)."""
    return build_model("resnext29_16x64d", pretrained, **overrides)


@register_model(config=imagenet_config(50).replace(groups=32, width_per_group=4))
def resnext50_32x4d(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNeXt-50 32x4d for ImageNet (torchvision's): 25,028,904 parameters."""
    return build_model("resnext50_32x4d", pretrained, **overrides)


@register_model(config=imagenet_config(101).replace(groups=32, width_per_group=8))
def resnext101_32x8d(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNeXt-101 32x8d for ImageNet (torchvision's): 88,791,336 parameters."""
    return build_model("resnext101_32x8d", pretrained, **overrides)


@register_model(config=imagenet_config(101).replace(groups=64, width_per_group=4))
def resnext101_64x4d(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNeXt-101 64x4d for ImageNet (torchvision's): 83,455,272 parameters."""
    return build_model("resnext101_64x4d", pretrained, **overrides)


# -- ResNet-D (He et al. 2019) and SE-ResNet (Hu et al. 2018) ---------------------------------------
@register_model(config=imagenet_config(50).replace(stem="deep", shortcut="D"))
def resnet50d(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-50-D for ImageNet (timm's ``resnet50d``): deep stem, average-pool shortcut; 25,576,264 parameters."""
    return build_model("resnet50d", pretrained, **overrides)


@register_model(config=imagenet_config(101).replace(stem="deep", shortcut="D"))
def resnet101d(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-101-D for ImageNet (timm's ``resnet101d``): 44,568,392 parameters."""
    return build_model("resnet101d", pretrained, **overrides)


@register_model(config=imagenet_config(50).replace(attention="se"))
def seresnet50(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """SE-ResNet-50 for ImageNet (timm's ``seresnet50``): 28,088,024 parameters."""
    return build_model("seresnet50", pretrained, **overrides)
