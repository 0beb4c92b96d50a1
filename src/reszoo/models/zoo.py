"""The named architectures of He et al. 2015: three-line factories over :class:`ResNetConfig`.

Every factory takes config overrides and ``pretrained=`` (as :func:`reszoo.create_model`):
``resnet56(pretrained=True)`` loads the default weights for resnet56, ``pretrained="resnet56-cifar10-b"``
another entry, a ``save_pretrained`` folder or ``"hf-hub:owner/repo"`` those.
"""

from __future__ import annotations

from typing import Any

from reszoo.models._factory import Pretrained, build_model
from reszoo.models.registry import register_model
from reszoo.models.resnet import ResNet, ResNetConfig
from reszoo.utils.checks import check_int, value_error

# The paper's Table 1: block and blocks per stage for each ImageNet depth.
IMAGENET_LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def cifar_config(depth: int, *, shortcut: str = "A") -> ResNetConfig:
    """The paper's CIFAR network of ``depth = 6n + 2`` layers (section 4.2)."""
    if check_int("depth", depth) < 8 or (depth - 2) % 6:
        raise value_error("depth", depth, "6n+2 with n >= 1 for a CIFAR ResNet (20, 32, 44, 56, 110, 1202, ...)")
    n = (depth - 2) // 6
    return ResNetConfig(
        stem="cifar", stem_width=16, block="basic", depths=(n, n, n), widths=(16, 32, 64),
        shortcut=shortcut, num_classes=10, image_size=32,
    )  # fmt: skip


def imagenet_config(depth: int, *, shortcut: str = "B") -> ResNetConfig:
    """The paper's ImageNet network of ``depth`` layers (Table 1), torchvision's layout."""
    if check_int("depth", depth) not in IMAGENET_LAYOUTS:
        raise value_error("depth", depth, f"one of {sorted(IMAGENET_LAYOUTS)} for an ImageNet ResNet")
    block, depths = IMAGENET_LAYOUTS[depth]
    return ResNetConfig(
        stem="imagenet", stem_width=64, block=block, depths=depths, widths=(64, 128, 256, 512),
        shortcut=shortcut, num_classes=1000, image_size=224,
    )  # fmt: skip


def cifar_resnet(depth: int, **overrides: Any) -> ResNet:
    """A CIFAR ResNet of any depth 6n+2, e.g. ``cifar_resnet(74, num_classes=100)``."""
    return ResNet(cifar_config(depth), **overrides)


def imagenet_resnet(depth: int, **overrides: Any) -> ResNet:
    """An ImageNet ResNet of depth 18, 34, 50, 101 or 152."""
    return ResNet(imagenet_config(depth), **overrides)


# -- CIFAR, option A (no shortcut parameters), as in the paper ------------------------------
@register_model(config=cifar_config(20))
def resnet20(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-20 for CIFAR (n=3): 269,722 parameters, paper error 8.75%."""
    return build_model("resnet20", pretrained, **overrides)


@register_model(config=cifar_config(32))
def resnet32(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-32 for CIFAR (n=5): 464,154 parameters, paper error 7.51%."""
    return build_model("resnet32", pretrained, **overrides)


@register_model(config=cifar_config(44))
def resnet44(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-44 for CIFAR (n=7): 658,586 parameters, paper error 7.17%."""
    return build_model("resnet44", pretrained, **overrides)


@register_model(config=cifar_config(56))
def resnet56(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-56 for CIFAR (n=9): 853,018 parameters, paper error 6.97%."""
    return build_model("resnet56", pretrained, **overrides)


@register_model(config=cifar_config(110))
def resnet110(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-110 for CIFAR (n=18): 1,727,962 parameters, paper error 6.43%."""
    return build_model("resnet110", pretrained, **overrides)


@register_model(config=cifar_config(1202))
def resnet1202(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-1202 for CIFAR (n=200): 19,421,274 parameters, paper error 7.93%."""
    return build_model("resnet1202", pretrained, **overrides)


# -- CIFAR plain networks: same layers, no shortcuts (the degradation problem, Fig. 6) -------
@register_model(config=cifar_config(20, shortcut="none"))
def plain20(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Plain-20 for CIFAR: ResNet-20 without shortcuts."""
    return build_model("plain20", pretrained, **overrides)


@register_model(config=cifar_config(32, shortcut="none"))
def plain32(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Plain-32 for CIFAR: ResNet-32 without shortcuts."""
    return build_model("plain32", pretrained, **overrides)


@register_model(config=cifar_config(44, shortcut="none"))
def plain44(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Plain-44 for CIFAR: ResNet-44 without shortcuts."""
    return build_model("plain44", pretrained, **overrides)


@register_model(config=cifar_config(56, shortcut="none"))
def plain56(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Plain-56 for CIFAR: ResNet-56 without shortcuts."""
    return build_model("plain56", pretrained, **overrides)


@register_model(config=cifar_config(110, shortcut="none"))
def plain110(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Plain-110 for CIFAR: ResNet-110 without shortcuts."""
    return build_model("plain110", pretrained, **overrides)


# -- ImageNet, option B (projection where the shape changes), torchvision-compatible ----------
@register_model(config=imagenet_config(18))
def resnet18(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-18 for ImageNet: 11,689,512 parameters, torchvision-compatible."""
    return build_model("resnet18", pretrained, **overrides)


@register_model(config=imagenet_config(34))
def resnet34(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-34 for ImageNet: 21,797,672 parameters, torchvision-compatible."""
    return build_model("resnet34", pretrained, **overrides)


@register_model(config=imagenet_config(50))
def resnet50(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-50 for ImageNet (v1.5: stride on the 3x3): 25,557,032 parameters."""
    return build_model("resnet50", pretrained, **overrides)


@register_model(config=imagenet_config(101))
def resnet101(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-101 for ImageNet (v1.5): 44,549,160 parameters."""
    return build_model("resnet101", pretrained, **overrides)


@register_model(config=imagenet_config(152))
def resnet152(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """ResNet-152 for ImageNet (v1.5): 60,192,808 parameters."""
    return build_model("resnet152", pretrained, **overrides)


@register_model(config=imagenet_config(18, shortcut="none"))
def plain18(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Plain-18 for ImageNet: ResNet-18 without shortcuts (the paper"s Table 2)."""
    return build_model("plain18", pretrained, **overrides)


@register_model(config=imagenet_config(34, shortcut="none"))
def plain34(*, pretrained: Pretrained = False, **overrides: Any) -> ResNet:
    """Plain-34 for ImageNet: ResNet-34 without shortcuts (the paper"s Table 2)."""
    return build_model("plain34", pretrained, **overrides)
