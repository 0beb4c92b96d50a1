"""The network: one frozen config, assembled from stems, blocks, shortcuts and a head."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reszoo.blocks import BLOCKS, ResidualBlock
from reszoo.checks import check_choice, check_int, check_ints, type_error, value_error
from reszoo.errors import InvalidArgumentError
from reszoo.layers import ACT_LAYERS, NORM_LAYERS, ActFactory, NormFactory, get_act_layer, get_norm_layer
from reszoo.plaindata import PlainData
from reszoo.shortcuts import SHORTCUT_OPTIONS, make_shortcut
from reszoo.stems import STEMS

INIT_MODES = ("fan_out", "fan_in")


@dataclass(frozen=True)
class ResNetConfig(PlainData):
    """Everything that defines a ResNet. Two equal configs build identical architectures.

    The defaults are the paper's CIFAR-10 ResNet-20 (He et al. 2015, section 4.2). Every field is
    checked strictly against its type (``stride_in_1x1="False"`` is refused, not read as true);
    ``replace``, ``to_dict`` and ``from_dict`` come from :class:`~reszoo.plaindata.PlainData`.

    Args:
        stem: ``"cifar"`` (3x3 conv) or ``"imagenet"`` (7x7/2 conv + 3x3/2 max pool), or a
            callable ``f(in_chans, out_chs, *, norm_layer, act_layer)`` returning a module with
            ``reduction`` (its stride) and named children.
        stem_width: filters of the stem convolution.
        block: ``"basic"`` or ``"bottleneck"`` (or a block class).
        depths: blocks per stage.
        widths: base width per stage (a bottleneck outputs 4x this).
        strides: stride of each stage's first block; ``None`` means 1 for the first stage and 2
            for the others, as in the paper.
        shortcut: ``"A"`` (zero-pad), ``"B"`` (project where the shape changes), ``"C"``
            (project always) or ``"none"`` (plain network).
        stride_in_1x1: bottleneck only: stride on the first 1x1 (the paper) instead of the 3x3
            (torchvision, "v1.5").
        num_classes: outputs of the classifier.
        in_chans: image channels.
        image_size: the default (square) input size, used by summaries and benchmarks.
        zero_init_residual: start every residual branch at zero (its last norm's scale is 0).
        norm: ``"batchnorm"`` or ``"groupnorm"`` (or ``f(channels) -> nn.Module``).
        act: ``"relu"``, ``"gelu"``, ``"silu"`` or ``"leaky_relu"`` (or ``f() -> nn.Module``).
        init_mode: Kaiming-normal fan mode for convolutions. ``"fan_out"`` (the default) is the
            backward-pass form of He et al. 2015 ("Delving Deep into Rectifiers", eq. 14),
            std = sqrt(2 / (k*k*out_channels)); it is what torchvision and the reference CIFAR
            implementations use, so our fresh models start from the same distribution as the
            models people compare against. ``"fan_in"`` is the forward-pass form (eq. 10). The
            paper shows both converge.
    """

    stem: str | Callable[..., nn.Module] = "cifar"
    stem_width: int = 16
    block: str | type[ResidualBlock] = "basic"
    depths: tuple[int, ...] = (3, 3, 3)
    widths: tuple[int, ...] = (16, 32, 64)
    strides: tuple[int, ...] | None = None
    shortcut: str = "A"
    stride_in_1x1: bool = False
    num_classes: int = 10
    in_chans: int = 3
    image_size: int = 32
    zero_init_residual: bool = False
    norm: str | NormFactory = "batchnorm"
    act: str | ActFactory = "relu"
    init_mode: str = "fan_out"

    kind = "config"  # messages say "Unknown config field(s)"

    def __post_init__(self) -> None:
        super().__post_init__()  # types, strictly (plaindata); lists become tuples
        self._validate()

    def _validate(self) -> None:
        for name in ("num_classes", "in_chans", "stem_width", "image_size"):
            check_int(name, getattr(self, name), minimum=1)
        if not self.depths:
            raise value_error("depths", self.depths, "a tuple of blocks per stage, at least one stage")
        check_ints("depths", self.depths, minimum=1)
        for name in ("widths", "strides"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.depths):
                raise value_error(name, value, f"one integer per stage ({len(self.depths)}, as depths={self.depths})")
            check_ints(name, value, minimum=1, optional=True)
        check_choice("shortcut", self.shortcut, SHORTCUT_OPTIONS)
        check_choice("init_mode", self.init_mode, INIT_MODES)
        tables = {"stem": STEMS, "block": BLOCKS, "norm": NORM_LAYERS, "act": ACT_LAYERS}
        for name, table in tables.items():
            value = getattr(self, name)
            if isinstance(value, str):  # else a callable or a block class, checked by type
                check_choice(name, value, sorted(table))
        if self.zero_init_residual and self.shortcut == "none":
            raise InvalidArgumentError(
                "zero_init_residual=True with shortcut='none' would make every plain block output "
                "zero; use zero_init_residual=False for plain networks."
            )

    # -- derived facts -------------------------------------------------------------------
    @property
    def block_cls(self) -> type[ResidualBlock]:
        return BLOCKS[self.block] if isinstance(self.block, str) else self.block

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return self.strides if self.strides is not None else (1,) + (2,) * (len(self.depths) - 1)

    @property
    def depth(self) -> int:
        """Weighted layers on the main path, counted as the paper does (stem conv + fc + blocks)."""
        convs_per_block = 3 if self.block_cls.expansion > 1 else 2
        return convs_per_block * sum(self.depths) + 2

    @property
    def num_features(self) -> int:
        """Channels entering the classifier."""
        return self.widths[-1] * self.block_cls.expansion

    @property
    def input_size(self) -> tuple[int, int, int]:
        """Default input as (channels, height, width)."""
        return (self.in_chans, self.image_size, self.image_size)


def config_fields() -> tuple[str, ...]:
    """Names of the user-settable fields of :class:`ResNetConfig`."""
    return ResNetConfig.field_names()


def make_stages(
    *,
    block: type[ResidualBlock],
    depths: Sequence[int],
    widths: Sequence[int],
    strides: Sequence[int],
    in_chs: int,
    shortcut: str,
    norm_layer: NormFactory = nn.BatchNorm2d,
    act_layer: ActFactory = nn.ReLU,
    stride_in_1x1: bool = False,
) -> tuple[list[nn.Sequential], int]:
    """Build the residual stages (a pure function: no state is carried between calls).

    Returns:
        The stages, each an ``nn.Sequential`` of blocks, and the channels of the last one.
    """
    extra = {"stride_in_1x1": stride_in_1x1} if block.expansion > 1 else {}
    stages = []
    for depth, width, stride in zip(depths, widths, strides, strict=True):
        blocks = []
        out_chs = width * block.expansion
        for i in range(depth):
            s = stride if i == 0 else 1
            sc = make_shortcut(shortcut, in_chs=in_chs, out_chs=out_chs, stride=s, norm_layer=norm_layer)
            blocks.append(
                block(in_chs, width, stride=s, shortcut=sc, norm_layer=norm_layer, act_layer=act_layer, **extra)
            )
            in_chs = out_chs
        stages.append(nn.Sequential(*blocks))
    return stages, in_chs


class ClassifierHead(nn.Module):
    """Global average pool, flatten, fully connected.

    Args:
        in_features: channels of the incoming feature map.
        num_classes: outputs.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return _pool_and_classify(self, x, pre_logits)


def _pool_and_classify(head: nn.Module, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
    """The head's computation on any module holding ``avgpool`` and ``fc``: a
    :class:`ClassifierHead`, or a :class:`ResNet`, which adopts the head's children as its own."""
    x = torch.flatten(head.avgpool(x), 1)
    return x if pre_logits else head.fc(x)


def init_weights(model: nn.Module, *, mode: str = "fan_out", zero_init_residual: bool = False) -> None:
    """He-normal convolutions, unit/zero norms; optionally zero every residual branch's last norm.

    The classifier keeps PyTorch's default ``nn.Linear`` initialisation, as torchvision does.
    """
    check_choice("mode", mode, INIT_MODES)
    if any(p.is_meta for p in model.parameters()):
        # Meta tensors hold no values (a model built to count or to be loaded into): the init
        # would only run torch's Python decompositions, 10-20x the cost of building the model.
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, ResidualBlock) and m.downsample is not None:
                m.zero_init_last()


def _adopt(parent: nn.Module, part: nn.Module) -> tuple[str, ...]:
    """Register ``part``'s children directly on ``parent`` and return their names in order.

    This keeps state_dict keys flat (``conv1.weight``, not ``stem.conv1.weight``): torchvision's
    names, which its weights and users' code depend on.
    """
    names = []
    for name, child in part.named_children():
        if hasattr(parent, name):
            raise InvalidArgumentError(
                f"Part {type(part).__name__} has a child {name!r} that the network already uses; "
                "give the part's children other names."
            )
        parent.add_module(name, child)
        names.append(name)
    return tuple(names)


def check_config(config: Any) -> ResNetConfig:
    """``config``, or the default config for ``None``; anything else is an ArgumentTypeError."""
    if config is None:
        return ResNetConfig()
    if not isinstance(config, ResNetConfig):
        hint = f" (for a registered model use create_model({config!r}))" if isinstance(config, str) else ""
        raise type_error("config", config, f"a ResNetConfig or None{hint}")
    return config


class ResNet(nn.Module):
    """A ResNet assembled from a :class:`ResNetConfig`.

    Attribute and state_dict names are torchvision's: ``conv1``, ``bn1``, ``relu``,
    ``maxpool`` (ImageNet stem), ``layer1`` ... ``layerN``, ``avgpool``, ``fc``.

    Args:
        config: the architecture; defaults to ``ResNetConfig()`` (CIFAR ResNet-20).
        **overrides: config fields to change, e.g. ``num_classes=100``.

    Example:
        >>> import torch
        >>> from reszoo import ResNet, ResNetConfig
        >>> model = ResNet(ResNetConfig(depths=(2, 2, 2)), num_classes=100)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 100])
    """

    def __init__(self, config: ResNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = check_config(config).replace(**overrides) if overrides else check_config(config)
        self.config = cfg
        norm_layer, act_layer = get_norm_layer(cfg.norm), get_act_layer(cfg.act)

        stem_cls = STEMS[cfg.stem] if isinstance(cfg.stem, str) else cfg.stem
        stem = stem_cls(cfg.in_chans, cfg.stem_width, norm_layer=norm_layer, act_layer=act_layer)
        self.stem_names = _adopt(self, stem)
        self.stem_reduction = int(getattr(stem, "reduction", 1))

        stages, chs = make_stages(
            block=cfg.block_cls,
            depths=cfg.depths,
            widths=cfg.widths,
            strides=cfg.stage_strides,
            in_chs=cfg.stem_width,
            shortcut=cfg.shortcut,
            norm_layer=norm_layer,
            act_layer=act_layer,
            stride_in_1x1=cfg.stride_in_1x1,
        )
        self.stage_names = tuple(f"layer{i + 1}" for i in range(len(stages)))
        for name, stage in zip(self.stage_names, stages, strict=True):
            self.add_module(name, stage)
        self.num_features = chs
        _adopt(self, ClassifierHead(chs, cfg.num_classes))
        self.total_stride = self.stem_reduction * math.prod(cfg.stage_strides)
        init_weights(self, mode=cfg.init_mode, zero_init_residual=cfg.zero_init_residual)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def check_input(self, x: torch.Tensor) -> None:
        """Raise an InvalidArgumentError (a ValueError) naming the problem with a batch this network cannot take."""
        if x.ndim != 4:
            raise InvalidArgumentError(f"Expected a batch of shape (N, C, H, W), received shape {tuple(x.shape)}.")
        if x.shape[1] != self.config.in_chans:
            raise InvalidArgumentError(
                f"Expected {self.config.in_chans} input channels (in_chans), received {x.shape[1]} "
                f"in shape {tuple(x.shape)}; build the model with in_chans={x.shape[1]} if that is intended."
            )
        if x.shape[-2] < self.total_stride or x.shape[-1] < self.total_stride:
            raise InvalidArgumentError(
                f"Input {tuple(x.shape[-2:])} is smaller than the network's total stride "
                f"{self.total_stride}; height and width must be at least {self.total_stride}."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and all stages: the last feature map, before pooling."""
        self.check_input(x)
        for name in self.stem_names:
            x = getattr(self, name)(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify a feature map; ``pre_logits=True`` returns the pooled features."""
        return _pool_and_classify(self, x, pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        # For features without a classifier, forward_head(x, pre_logits=True) is the way.
        check_int("num_classes", num_classes, minimum=1)
        self.fc = nn.Linear(self.num_features, num_classes, device=self.fc.weight.device, dtype=self.fc.weight.dtype)
        self.config = self.config.replace(num_classes=num_classes)
