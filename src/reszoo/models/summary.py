"""Model facts: parameters, multiply-accumulates, layers.

Counts for a model at hand come from the model (``count_params``, and ``count_flops`` through
``torch.utils.flop_counter``). Counts for a config come in closed form (:func:`config_counts`):
a sum over the stem, the blocks, their shortcuts and the head, exactly what the counter reports
for the network the config builds (a test checks this for every registered model and variants),
at no cost, so ``reszoo list`` need not build and run 18 networks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from reszoo.models.blocks import bottleneck_width
from reszoo.models.registry import default_config, list_models
from reszoo.models.resnet import ResNet, ResNetConfig
from reszoo.utils.checks import check_bool, check_instance, check_int, check_ints


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (conv and linear weights, biases, norm scales and shifts)."""
    check_instance("model", model, nn.Module, what="a torch.nn.Module")
    check_bool("trainable_only", trainable_only)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1) -> int:
    """Forward FLOPs for one batch, counted by ``torch.utils.flop_counter`` (2 per MAC).

    Only convolutions and matrix products are counted (norms, activations and pooling are not),
    which is the convention of the paper and torchvision's published GFLOPs.
    The model runs on its own device; build it under ``torch.device("meta")`` to count for free.
    """
    from torch.utils.flop_counter import FlopCounterMode  # imports torch's decompositions: on use only

    check_instance("model", model, nn.Module, what="a torch.nn.Module")
    input_size = check_ints("input_size", input_size, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    param = next(model.parameters())
    x = torch.zeros((batch_size, *input_size), device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates for one image: ``count_flops(...) // 2``."""
    return count_flops(model, input_size) // 2


class _Tally:
    """Parameters and MACs of convolutions, norms, attention and the classifier, as the layers are walked."""

    def __init__(self, height: int, width: int) -> None:
        self.params = self.macs = 0
        self.hw = (height, width)

    def conv(
        self, cin: int, cout: int, kernel: int, stride: int, hw: tuple[int, int], groups: int = 1
    ) -> tuple[int, int]:
        """A bias-free convolution with padding ``kernel // 2``; returns its output's (H, W)."""
        out = tuple((n + 2 * (kernel // 2) - kernel) // stride + 1 for n in hw)
        weights = cin // groups * cout * kernel * kernel
        self.params += weights
        self.macs += weights * out[0] * out[1]
        return out  # type: ignore[return-value]

    def norm(self, channels: int) -> None:
        self.params += 2 * channels  # BatchNorm and GroupNorm: an affine scale and shift per channel

    def stem(self, cfg: ResNetConfig, preact: bool) -> None:
        """The named stems; a 3x3/2 max pool (padding 1) has no parameters and no MACs."""
        w = cfg.stem_width
        if cfg.stem == "deep":
            self.hw = self.conv(cfg.in_chans, w // 2, 3, 2, self.hw)
            self.norm(w // 2)
            self.hw = self.conv(w // 2, w // 2, 3, 1, self.hw)
            self.norm(w // 2)
            self.hw = self.conv(w // 2, w, 3, 1, self.hw)
        else:
            kernel, stride = (3, 1) if cfg.stem == "cifar" else (7, 2)
            self.hw = self.conv(cfg.in_chans, w, kernel, stride, self.hw)
        if not preact:
            self.norm(w)
        if cfg.stem != "cifar":
            self.hw = tuple((n - 1) // 2 + 1 for n in self.hw)  # type: ignore[assignment]

    def block(self, cfg: ResNetConfig, cin: int, width: int, stride: int) -> int:
        """One residual block (and its shortcut) at ``self.hw``; returns its output channels."""
        block = cfg.block_cls
        hw, cout, preact = self.hw, width * block.expansion, block.preact
        if preact:
            self.norm(cin)
        if block.expansion == 1:
            hw = self.conv(cin, width, 3, stride, hw)
            self.norm(width)
            hw = self.conv(width, width, 3, 1, hw)
        else:
            mid = bottleneck_width(width, groups=cfg.groups, width_per_group=cfg.width_per_group)
            s1, s3 = (stride, 1) if cfg.stride_in_1x1 else (1, stride)
            hw = self.conv(cin, mid, 1, s1, hw)
            self.norm(mid)
            hw = self.conv(mid, mid, 3, s3, hw, groups=cfg.groups)
            self.norm(mid)
            hw = self.conv(mid, cout, 1, 1, hw)
        if not preact:
            self.norm(cout)
        if cfg.attention == "se":  # two 1x1 convs with biases on the pooled 1x1 map
            hidden = max(1, cout // cfg.se_reduction)
            self.params += 2 * cout * hidden + hidden + cout
            self.macs += 2 * cout * hidden
        reshape = cin != cout or stride != 1
        if cfg.shortcut == "C" or (cfg.shortcut in ("B", "D") and reshape):
            # The 1x1 projection (option D pools first: its output has the strided conv's size) and its norm.
            self.conv(cin, cout, 1, stride, self.hw)
            if not preact:
                self.norm(cout)
        self.hw = hw
        return cout


def has_closed_form(config: ResNetConfig) -> bool:
    """True when :func:`config_counts` needs no network: stem, block, norm, act and attention are named ones."""
    return all(isinstance(getattr(config, f), str) for f in ("stem", "block", "norm", "act", "attention"))


def config_counts(config: ResNetConfig, input_size: Sequence[int] | None = None) -> tuple[int, int]:
    """(parameters, MACs per image) of ``ResNet(config)``, as :func:`count_params` and :func:`count_macs` count.

    Closed form for the named stems, blocks, norms, activations and attention: each convolution
    adds ``k*k*cin*cout/groups`` weights and as many MACs per output pixel, each norm two values per
    channel, squeeze-and-excitation its two 1x1 convolutions with biases (on a 1x1 map), the
    classifier ``features*classes`` MACs and as many weights plus its biases. Pools, activations
    and the SE scaling are not counted, as the flop counter does not count them. A config with a
    callable part is built on the meta device and counted (free: no memory, no compute).

    Args:
        config: the architecture.
        input_size: ``(C, H, W)`` for the MACs; defaults to ``config.input_size``.

    Example:
        >>> from reszoo.models.zoo import cifar_config
        >>> config_counts(cifar_config(56))
        (853018, 125485696)
    """
    size = tuple(input_size) if input_size is not None else config.input_size
    if not has_closed_form(config):
        with torch.device("meta"):
            model = ResNet(config)
        return count_params(model), count_macs(model, (config.in_chans, *size[1:]))
    tally = _Tally(*size[1:])
    preact = config.block_cls.preact
    tally.stem(config, preact)
    chs = config.stem_width
    for depth, width, stage_stride in zip(config.depths, config.widths, config.stage_strides, strict=True):
        for i in range(depth):
            chs = tally.block(config, chs, width, stage_stride if i == 0 else 1)
    if preact:
        tally.norm(chs)  # the final norm before the head
    tally.params += chs * config.num_classes + config.num_classes
    tally.macs += chs * config.num_classes
    return tally.params, tally.macs


@dataclass(frozen=True)
class ModelRow:
    """One registered model: ``family`` is the input family (CIFAR or ImageNet), ``block`` the
    block's name and ``parts`` the family fields its config sets (``"groups=32, width_per_group=4"``),
    empty for the 2015 paper's networks."""

    name: str
    family: str
    depth: int
    shortcut: str
    params: int
    macs: int
    input_size: tuple[int, int, int]
    block: str = "basic"
    parts: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


_FAMILIES = {"cifar": "CIFAR", "imagenet": "ImageNet", "deep": "ImageNet"}
# Fields that build the later papers' networks from the 2015 parts (ResNetConfig's last fields and the
# deep stem); a row names those its config sets.
_PART_FIELDS = ("groups", "width_per_group", "attention", "se_reduction", "conv_dropout", "drop_path_rate")


def _parts(cfg: ResNetConfig) -> str:
    default = ResNetConfig()
    parts = ["stem=deep"] if cfg.stem == "deep" else []
    parts += [f"{f}={getattr(cfg, f)}" for f in _PART_FIELDS if getattr(cfg, f) != getattr(default, f)]
    return ", ".join(parts)


def model_row(name: str) -> ModelRow:
    """The facts of one registered model, from its config (nothing is built or run)."""
    cfg = default_config(name)
    family = _FAMILIES.get(cfg.stem, "custom") if isinstance(cfg.stem, str) else "custom"
    params, macs = config_counts(cfg)
    return ModelRow(
        name=name,
        family=family,
        depth=cfg.depth,
        shortcut=cfg.shortcut,
        params=params,
        macs=macs,
        input_size=cfg.input_size,
        block=cfg.block if isinstance(cfg.block, str) else cfg.block.__name__,
        parts=_parts(cfg),
    )


def model_table(pattern: str | None = None) -> list[ModelRow]:
    """One row per registered model matching ``pattern``: CIFAR first; in each, the 2015 paper's
    residual networks by depth, then the later papers' by name (family, then depth), then plain ones."""

    def order(r: ModelRow) -> tuple:
        paper = r.block in ("basic", "bottleneck") and not r.parts and r.shortcut in ("A", "B", "C")
        group = 2 if r.shortcut == "none" else 0 if paper else 1
        family = re.sub(r"\d+", "#", r.name) if group == 1 else ""  # one family's names differ in digits only
        return (r.family != "CIFAR", r.family, group, family, r.depth, r.name)

    return sorted((model_row(name) for name in list_models(pattern)), key=order)


def layer_summary(model: nn.Module, input_size: tuple[int, ...]) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, type, output shape, parameters) for the stem layers, each block and the head.

    Runs one forward pass of a single image on the model's device (use a meta model for free).
    """
    rows: list[tuple[str, str, tuple[int, ...], int]] = []
    watched = []
    for name, module in model.named_modules():
        depth = name.count(".")
        stage = name.split(".")[0] in getattr(model, "stage_names", ())
        if name and (depth == 0 and not stage or depth == 1 and stage):
            watched.append((name, module))
    hooks = [
        m.register_forward_hook(
            lambda mod, _inp, out, name=name: rows.append(
                (name, type(mod).__name__, tuple(out.shape), count_params(mod))
            )
        )
        for name, m in watched
    ]
    param = next(model.parameters())
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *input_size), device=param.device, dtype=param.dtype))
    finally:
        for h in hooks:
            h.remove()
    return rows
