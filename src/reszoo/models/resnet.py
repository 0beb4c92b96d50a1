"""The network: one frozen config, assembled from stems, blocks, shortcuts and a head."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch import nn

from reszoo.errors import InvalidArgumentError
from reszoo.models.attention import ATTENTION, AttnFactory, get_attn_layer
from reszoo.models.blocks import BLOCKS, ResidualBlock, bottleneck_width
from reszoo.models.features import FeatureInfo, check_out_indices, collect_features, feature_specs, set_checkpointing
from reszoo.models.layers import ACT_LAYERS, NORM_LAYERS, ActFactory, NormFactory, get_act_layer, get_norm_layer
from reszoo.models.shortcuts import SHORTCUT_OPTIONS, make_shortcut
from reszoo.models.stems import STEMS
from reszoo.utils.checks import check_bool, check_choice, check_int, check_ints, type_error, value_error
from reszoo.utils.plaindata import PlainData

INIT_MODES = ("fan_out", "fan_in")


@dataclass(frozen=True)
class ResNetConfig(PlainData):
    """Everything that defines a ResNet. Two equal configs build identical architectures.

    The defaults are the paper's CIFAR-10 ResNet-20 (He et al. 2015, section 4.2). Every field is
    checked strictly against its type (``stride_in_1x1="False"`` is refused, not read as true);
    ``replace``, ``to_dict`` and ``from_dict`` come from :class:`~reszoo.utils.plaindata.PlainData`.
    The fields after ``drop_path_rate`` build the family of later papers from the same parts
    (docs/parts.md); their defaults leave the paper's networks exactly as they were.

    Args:
        stem: ``"cifar"`` (3x3 conv), ``"imagenet"`` (7x7/2 conv + 3x3/2 max pool) or ``"deep"``
            (three 3x3 convs, the first with stride 2, + 3x3/2 max pool: ResNet-C/D of He et al.
            2019), or a callable ``f(in_chans, out_chs, *, norm_layer, act_layer)`` returning a
            module with ``reduction`` (its stride) and named children (with pre-activation blocks
            it is also given ``preact=True``).
        stem_width: filters of the stem's last convolution (the deep stem's first two have half).
        block: ``"basic"``, ``"bottleneck"``, ``"preact_basic"`` or ``"preact_bottleneck"`` (or a
            block class). The pre-activation blocks (He et al. 2016, "Identity Mappings in Deep
            Residual Networks") make the stem end in its convolution and add a final norm and
            activation (``final_norm``, ``final_act``) before the head.
        depths: blocks per stage.
        widths: base width per stage (a bottleneck outputs 4x this).
        strides: stride of each stage's first block; ``None`` means 1 for the first stage and 2
            for the others, as in the paper.
        shortcut: ``"A"`` (zero-pad), ``"B"`` (project where the shape changes), ``"C"``
            (project always), ``"D"`` (average-pool then project where the shape changes: ResNet-D
            of He et al. 2019) or ``"none"`` (plain network). With pre-activation blocks the
            projections have no norm and take the pre-activated input.
        stride_in_1x1: bottleneck only: stride on the first 1x1 (the paper) instead of the 3x3
            (torchvision, "v1.5").
        num_classes: outputs of the classifier; 0 builds no classifier (``fc`` is ``nn.Identity``)
            and the model returns the pooled features, as timm's ``num_classes=0``.
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
        drop_path_rate: stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic
            Depth"): block ``l`` of ``L`` drops its residual branch with probability
            ``drop_path_rate * l / L`` in training, the paper's linear decay of survival (timm
            starts from 0 at the first block instead). 0, the default, keeps the paper's ResNets
            exactly; 0.1 to 0.2 is usual for deep nets. The shortcut is never dropped, so plain
            networks (``shortcut="none"``) refuse it.
        groups: groups of a bottleneck's 3x3 convolution: ResNeXt's cardinality (Xie et al. 2017).
        width_per_group: channels per group of a bottleneck's 3x3 at base width 64; the 3x3 has
            ``int(width * width_per_group / 64) * groups`` channels (torchvision's names and rule:
            ResNeXt-50 32x4d is ``groups=32, width_per_group=4``, Wide ResNet-50-2
            ``width_per_group=128``). Basic blocks take neither.
        attention: ``"none"`` or ``"se"`` (squeeze-and-excitation on every residual branch: Hu et
            al. 2018), or ``f(channels) -> nn.Module``.
        se_reduction: the SE reduction ratio ``r`` (16 in the paper).
        conv_dropout: dropout probability before the last convolution of every residual branch
            (between the two 3x3s of a basic block): Zagoruyko & Komodakis 2016 use 0.3 in Wide
            ResNets. Named apart from timm's ``drop_rate``, which is the dropout before the classifier.
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
    drop_path_rate: float = 0.0
    groups: int = 1
    width_per_group: int = 64
    attention: str | AttnFactory = "none"
    se_reduction: int = 16
    conv_dropout: float = 0.0

    kind = "config"  # messages say "Unknown config field(s)"

    def __post_init__(self) -> None:
        super().__post_init__()  # types, strictly (plaindata); lists become tuples
        self._validate()

    def _validate(self) -> None:
        check_int("num_classes", self.num_classes, minimum=0)
        for name in ("in_chans", "stem_width", "image_size", "groups", "width_per_group", "se_reduction"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("drop_path_rate", "conv_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise value_error(name, getattr(self, name), "a number in [0, 1)")
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
        tables = {"stem": STEMS, "block": BLOCKS, "norm": NORM_LAYERS, "act": ACT_LAYERS, "attention": ATTENTION}
        for name, table in tables.items():
            value = getattr(self, name)
            if isinstance(value, str):  # else a callable or a block class, checked by type
                check_choice(name, value, sorted(table))
        self._validate_parts()
        if self.zero_init_residual and self.shortcut == "none":
            raise InvalidArgumentError(
                "zero_init_residual=True with shortcut='none' would make every plain block output "
                "zero; use zero_init_residual=False for plain networks."
            )
        if self.drop_path_rate > 0 and self.shortcut == "none":
            raise InvalidArgumentError(
                f"drop_path_rate={self.drop_path_rate} with shortcut='none' would drop whole layers of a "
                "plain network (stochastic depth drops residual branches and keeps the shortcut); "
                "use drop_path_rate=0 for plain networks."
            )

    def _validate_parts(self) -> None:
        """Combinations of the family's parts that cannot build a network."""
        if self.block_cls.expansion == 1 and (self.groups, self.width_per_group) != (1, 64):
            raise InvalidArgumentError(
                f"groups and width_per_group shape a bottleneck's 3x3 convolution; received groups={self.groups}, "
                f"width_per_group={self.width_per_group} with block={self.block!r}. Use block='bottleneck' (ResNeXt, "
                "Wide ResNet-50-2) or widen a basic-block network through widths (Wide ResNets on CIFAR)."
            )
        for width in self.widths:
            if bottleneck_width(width, groups=self.groups, width_per_group=self.width_per_group) < 1:
                raise value_error(
                    "width_per_group",
                    self.width_per_group,
                    f"large enough for a 3x3 of at least one channel per group at widths={self.widths}",
                )
        if self.stem == "deep" and self.stem_width < 2:
            raise value_error("stem_width", self.stem_width, "at least 2 for stem='deep' (its first convs have half)")

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
    drop_path_rate: float = 0.0,
    groups: int = 1,
    width_per_group: int = 64,
    attn_layer: AttnFactory | None = None,
    conv_dropout: float = 0.0,
) -> tuple[list[nn.Sequential], int]:
    """Build the residual stages (a pure function: no state is carried between calls).

    ``drop_path_rate`` rises linearly over the blocks of the whole network, ``rate * l / L`` for
    block ``l`` of ``L`` (Huang et al. 2016). An optional part left at its default (no stochastic
    depth, no attention, no dropout, no groups) is not passed to the block at all, so block
    classes that do not take it still work. Pre-activation blocks (``block.preact``) get
    projections without a norm.

    Returns:
        The stages, each an ``nn.Sequential`` of blocks, and the channels of the last one.
    """
    extra: dict[str, Any] = {"stride_in_1x1": stride_in_1x1} if block.expansion > 1 else {}
    if (groups, width_per_group) != (1, 64):
        extra.update(groups=groups, width_per_group=width_per_group)
    if attn_layer is not None:
        extra["attn_layer"] = attn_layer
    if conv_dropout > 0:
        extra["conv_dropout"] = conv_dropout
    preact = getattr(block, "preact", False)
    total, index = sum(depths), 0
    stages = []
    for depth, width, stride in zip(depths, widths, strides, strict=True):
        blocks = []
        out_chs = width * block.expansion
        for i in range(depth):
            s, index = (stride if i == 0 else 1), index + 1
            sc = make_shortcut(shortcut, in_chs=in_chs, out_chs=out_chs, stride=s, norm_layer=norm_layer, preact=preact)
            if drop_path_rate > 0:
                extra["drop_path"] = drop_path_rate * index / total
            blocks.append(
                block(in_chs, width, stride=s, shortcut=sc, norm_layer=norm_layer, act_layer=act_layer, **extra)
            )
            in_chs = out_chs
        stages.append(nn.Sequential(*blocks))
    return stages, in_chs


def make_classifier(in_features: int, num_classes: int, **factory: Any) -> nn.Module:
    """``nn.Linear(in_features, num_classes)``, or ``nn.Identity()`` for ``num_classes=0`` (no head)."""
    return nn.Linear(in_features, num_classes, **factory) if num_classes > 0 else nn.Identity()


class ClassifierHead(nn.Module):
    """Global average pool, flatten, fully connected.

    Args:
        in_features: channels of the incoming feature map.
        num_classes: outputs; 0 keeps the pooled features (``fc`` is ``nn.Identity``).
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = make_classifier(in_features, num_classes)

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


@torch.fx.wrap
def check_input(x: torch.Tensor, in_chans: int, min_size: int) -> torch.Tensor:
    """``x`` if a ResNet taking ``in_chans`` channels and a total stride ``min_size`` can run on it;
    otherwise an InvalidArgumentError (a ValueError) that names the problem, before any layer runs.

    The check is for people calling the model eagerly. Compilers and tracers skip it: torch.jit
    (script and trace), torch.compile and torch.export, where a shape test would become a guard,
    a constant or a graph break. ``torch.fx.wrap`` keeps it out of the traced graph's internals:
    torch.fx and torchvision's ``create_feature_extractor`` record it as one call, which still
    checks when the traced module runs eagerly.
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return x
    if x.ndim != 4:
        raise InvalidArgumentError(f"Expected a batch of shape (N, C, H, W), received shape {tuple(x.shape)}.")
    if x.shape[1] != in_chans:
        raise InvalidArgumentError(
            f"Expected {in_chans} input channels (in_chans), received {x.shape[1]} "
            f"in shape {tuple(x.shape)}; build the model with in_chans={x.shape[1]} if that is intended."
        )
    if x.shape[-2] < min_size or x.shape[-1] < min_size:
        raise InvalidArgumentError(
            f"Input {tuple(x.shape[-2:])} is smaller than the network's total stride "
            f"{min_size}; height and width must be at least {min_size}."
        )
    return x


class ResNet(nn.Module):
    """A ResNet assembled from a :class:`ResNetConfig`.

    Attribute and state_dict names are torchvision's: ``conv1``, ``bn1``, ``relu``,
    ``maxpool`` (ImageNet stem), ``layer1`` ... ``layerN``, ``avgpool``, ``fc``.
    ``feature_info`` describes the feature maps :meth:`forward_intermediates` can return.

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
        preact = getattr(cfg.block_cls, "preact", False)

        stem_cls = STEMS[cfg.stem] if isinstance(cfg.stem, str) else cfg.stem
        stem_extra = {"preact": True} if preact else {}  # custom stems need not know the keyword otherwise
        stem = stem_cls(cfg.in_chans, cfg.stem_width, norm_layer=norm_layer, act_layer=act_layer, **stem_extra)
        self.stem_names = _adopt(self, stem)
        self.stem_reduction = int(getattr(stem, "reduction", 1))
        # Feature map 0: what the stem says (its activation, or a pre-activation stem's convolution),
        # else a custom stem's whole output.
        self.stem_feature = (
            getattr(stem, "feature_module", self.stem_names[-1]),
            int(getattr(stem, "feature_reduction", self.stem_reduction)),
        )

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
            drop_path_rate=cfg.drop_path_rate,
            groups=cfg.groups,
            width_per_group=cfg.width_per_group,
            attn_layer=get_attn_layer(cfg.attention, se_reduction=cfg.se_reduction),
            conv_dropout=cfg.conv_dropout,
        )
        self.stage_names = tuple(f"layer{i + 1}" for i in range(len(stages)))
        for name, stage in zip(self.stage_names, stages, strict=True):
            self.add_module(name, stage)
        self.num_features = chs
        # Pre-activation networks end their last block with an add: a norm and activation before the
        # head make the pooled features normalised, as in He et al. 2016 (and timm's ResNetV2 `norm`).
        self.final_norm = norm_layer(chs) if preact else None
        self.final_act = act_layer() if preact else None
        _adopt(self, ClassifierHead(chs, cfg.num_classes))
        self.total_stride = self.stem_reduction * math.prod(cfg.stage_strides)
        self.feature_info: FeatureInfo = feature_specs(self)
        self.stem_out = self.feature_info[0].module  # the stem child whose output is feature 0
        set_checkpointing(self, False)
        init_weights(self, mode=cfg.init_mode, zero_init_residual=cfg.zero_init_residual)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def check_input(self, x: torch.Tensor) -> None:
        """Raise an InvalidArgumentError (a ValueError) naming the problem with a batch this network cannot take."""
        check_input(x, self.config.in_chans, self.total_stride)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and all stages (and a pre-activation network's final norm and activation): the last
        feature map, before pooling."""
        x = check_input(x, self.config.in_chans, self.total_stride)
        return self._final(collect_features(self, x)[0])

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm and activation of a pre-activation network; other networks have none."""
        if self.final_norm is not None and self.final_act is not None:
            x = self.final_act(self.final_norm(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify a feature map; ``pre_logits=True`` returns the pooled features."""
        return _pool_and_classify(self, x, pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The feature maps at ``indices`` on the way through the network, as timm's method.

        Args:
            x: a batch (N, C, H, W).
            indices: feature indices as in ``feature_info`` (0 the stem's activation, ``i`` the
                output of ``layer{i}``; negative ones count from the end); an int ``n`` takes
                the last ``n``; ``None`` takes all.
            norm: apply a pre-activation network's final norm and activation to the last stage's
                map (timm's meaning); other ResNets have no final norm, so it changes nothing.
            stop_early: stop after the last stage asked for (the returned final map is then that
                stage's output).
            output_fmt: ``"NCHW"``, the only layout a ResNet gives.
            intermediates_only: return only the list.

        Returns:
            ``(final feature map, [feature maps])``, or the list alone with ``intermediates_only``.
            The final map is :meth:`forward_features`'s output (after a pre-activation network's
            final norm when the last stage ran); :meth:`forward_head` classifies it.
        """
        take = check_out_indices(indices, len(self.feature_info), name="indices")
        check_bool("norm", norm)
        check_bool("stop_early", stop_early)
        check_choice("output_fmt", output_fmt, ("NCHW",))
        check_bool("intermediates_only", intermediates_only)
        x = check_input(x, self.config.in_chans, self.total_stride)
        last = take[-1] if stop_early or intermediates_only else None  # intermediates_only: the rest is unused
        x, features = collect_features(self, x, take, last=last)
        n = len(self.stage_names)
        if self.final_norm is not None and (last is None or last == n):
            if not intermediates_only or (norm and n in take):
                x = self._final(x)  # a new tensor: the kept map of the last stage is unchanged
            if norm and n in take:
                features[-1] = x
        return features if intermediates_only else (x, features)

    def set_grad_checkpointing(self, enable: bool = True, every: str = "stage") -> None:
        """Recompute activations in backward instead of keeping them (timm's method name).

        Args:
            enable: on or off.
            every: ``"stage"`` keeps each stage's input for backward and recomputes the stage;
                ``"block"`` keeps each block's input and recomputes one block at a time (as timm):
                less memory still, for the same extra compute, a second forward of every block
                (about a third more per step).

        Gradients and batch-norm running statistics are the same as without it (docs/ecosystem.md
        gives the memory saved). Only steps with gradients are affected; the graphs torch.fx,
        torch.jit.trace and torch.jit.script record hold the plain forward.
        """
        set_checkpointing(self, enable, every)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs;
        0 removes it (``fc`` becomes ``nn.Identity``: the model returns pooled features)."""
        check_int("num_classes", num_classes, minimum=0)
        param = next(self.parameters())
        self.fc = make_classifier(self.num_features, num_classes, device=param.device, dtype=param.dtype)
        self.config = self.config.replace(num_classes=num_classes)

    def as_sequential(self) -> nn.Sequential:
        """The network as one ``nn.Sequential`` of the same modules, under the same names.

        Its state_dict keys are the model's own (``conv1.weight``, ``layer1.0.bn1.running_mean``,
        ..., ``fc.bias``; the added ``flatten`` has none) and its forward gives the same outputs,
        without the eager input check and gradient checkpointing. ``torch.jit.script`` compiles
        this form (through ``__prepare_scriptable__``), because TorchScript cannot call
        ``getattr(self, name)`` with a name taken from a list.
        """
        final = ("final_norm", "final_act") if self.final_norm is not None else ()
        names = (*self.stem_names, *self.stage_names, *final, "avgpool")
        layers = OrderedDict((name, getattr(self, name)) for name in names)
        layers["flatten"] = nn.Flatten(1)
        layers["fc"] = self.fc
        return nn.Sequential(layers)

    def __prepare_scriptable__(self) -> nn.Module:
        return self.as_sequential()
