"""Backbones: a ResNet that returns feature maps of chosen stages, as timm's ``features_only``.

Feature index 0 is the stem's activation (stride 2 on ImageNet nets, before the max pool; stride 1
on CIFAR nets; a pre-activation stem's last convolution, as timm's ResNetV2), index ``i`` >= 1 is
the output of ``layer{i}`` (before a pre-activation network's final norm, as timm's
``features_only``). Each output is described in ``feature_info`` by its channels, its reduction
(total stride) and the module that produces it, the three facts a detection or segmentation neck
needs.

Example:
    >>> import torch, reszoo
    >>> backbone = reszoo.create_model("resnet50", features_only=True, out_indices=(2, 3, 4))
    >>> [f.shape[1] for f in backbone(torch.randn(1, 3, 224, 224))]
    [512, 1024, 2048]
    >>> backbone.feature_info.channels(), backbone.feature_info.reduction()
    ([512, 1024, 2048], [8, 16, 32])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.fx
from torch import nn

from reszoo.models.layers import checkpointed
from reszoo.utils.checks import check_bool, check_choice, check_ints, type_error, value_error


@dataclass(frozen=True)
class FeatureSpec:
    """One feature map: its channels, total stride from the input, and the module producing it."""

    num_chs: int
    reduction: int
    module: str
    index: int


class FeatureInfo(list):
    """A list of :class:`FeatureSpec`, with timm's accessors (``channels()``, ``reduction()``, ...)."""

    def channels(self) -> list[int]:
        return [f.num_chs for f in self]

    def reduction(self) -> list[int]:
        return [f.reduction for f in self]

    def module_name(self) -> list[str]:
        return [f.module for f in self]

    def get_dicts(self) -> list[dict]:
        return [asdict(f) for f in self]


def feature_specs(model: nn.Module) -> FeatureInfo:
    """Every feature map a ResNet can return: index 0 the stem's activation, then one per stage."""
    cfg = model.config
    # The named stems: their activation before any pool (a pre-activation stem: its last convolution);
    # a custom stem: its whole output (reszoo.models.resnet.ResNet sets stem_feature).
    module, stem_reduction = model.stem_feature
    specs, reduction = [FeatureSpec(cfg.stem_width, stem_reduction, module, 0)], model.stem_reduction
    for i, (name, width, stride) in enumerate(zip(model.stage_names, cfg.widths, cfg.stage_strides, strict=True)):
        reduction *= stride
        specs.append(FeatureSpec(width * cfg.block_cls.expansion, reduction, name, i + 1))
    return FeatureInfo(specs)


def check_out_indices(
    out_indices: Sequence[int] | int | None, count: int, *, name: str = "out_indices"
) -> tuple[int, ...]:
    """Valid, sorted, unique feature indices in ``[-count, count)``; negative ones count from the end.

    ``None`` means all; an int ``n`` (timm's convention) the last ``n``. ``name`` is the argument
    the caller knows (``out_indices``, or ``indices`` for ``forward_intermediates``).
    """
    if out_indices is None:
        return tuple(range(count))
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        if not 1 <= out_indices <= count:
            raise value_error(name, out_indices, f"a count of last feature maps in 1..{count}, or a list of indices")
        return tuple(range(count))[-out_indices:]
    indices = check_ints(name, out_indices)
    if not indices:
        raise value_error(name, out_indices, f"at least one index in 0..{count - 1}")
    resolved = []
    for i in indices:
        if not -count <= i < count:
            raise value_error(name, out_indices, f"indices in 0..{count - 1} (or negative from the end)")
        resolved.append(i % count)
    if len(set(resolved)) != len(resolved):
        raise value_error(name, out_indices, "indices without repeats")
    return tuple(sorted(resolved))


def collect_features(
    module: nn.Module,
    x: torch.Tensor,
    take: Sequence[int] = (),
    *,
    last: int | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``module``'s stem and stages on ``x``, keeping the feature maps whose index is in ``take``.

    ``module`` is a :class:`reszoo.ResNet` or a :class:`ResNetFeatures`: anything with
    ``stem_names``, ``stem_out`` (the stem child whose output is feature 0) and ``stage_names``.
    The names are fixed when the module is built, so torch.fx, torch.jit.trace, torch.compile
    and torch.export see a straight line of calls. ``last`` stops after stage ``last`` (0: after
    the stem). With ``module.grad_checkpointing`` set (:func:`set_checkpointing`), each stage, or
    each block, is recomputed in backward (:func:`reszoo.models.layers.checkpointed`).

    Returns:
        The output of the last stage run, and the kept feature maps in index order.
    """
    # Recorders (torch.fx, torch.jit.trace) capture the plain forward; compilers keep checkpointing.
    every = module.checkpoint_every if module.grad_checkpointing and torch.is_grad_enabled() else None
    if torch.jit.is_tracing() or isinstance(x, torch.fx.Proxy):
        every = None
    features = []
    for name in module.stem_names:
        x = getattr(module, name)(x)
        if name == module.stem_out and 0 in take:
            features.append(x)
    for i, name in enumerate(module.stage_names[:last], start=1):
        stage = getattr(module, name)
        if every == "block":
            for block in stage:
                x = checkpointed(block, x)
        else:
            x = checkpointed(stage, x) if every == "stage" else stage(x)
        if i in take:
            features.append(x)
    return x, features


CHECKPOINT_UNITS = ("stage", "block")


def set_checkpointing(module: nn.Module, enable: bool = True, every: str = "stage") -> None:
    """Turn activation checkpointing of ``module``'s stages on or off (``set_grad_checkpointing``).

    ``every="stage"`` keeps each stage's input for backward and recomputes the stage;
    ``every="block"`` keeps each block's input and recomputes one block at a time (timm's way):
    less memory still, the same extra compute (every block's forward runs twice either way).
    docs/ecosystem.md gives both, measured.
    """
    module.grad_checkpointing = check_bool("enable", enable)
    module.checkpoint_every = check_choice("every", every, CHECKPOINT_UNITS)


class FeatureSequential(nn.Sequential):
    """A :class:`ResNetFeatures` as TorchScript compiles it: the same modules under the same names
    (so the same state_dict keys), run in order, returning the outputs of the modules at ``take``."""

    def __init__(self, layers: OrderedDict[str, nn.Module], take: list[int]) -> None:
        super().__init__(layers)
        self.take = take

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features: list[torch.Tensor] = []
        for i, layer in enumerate(self):
            x = layer(x)
            if i in self.take:
                features.append(x)
        return features


class ResNetFeatures(nn.Module):
    """A ResNet without its head that returns the feature maps at ``out_indices``.

    It shares the ResNet's modules under the same names (``conv1``, ``layer1``, ...), so a
    state_dict of the full model loads into it once the head's keys are dropped, and stages past
    the last index asked for are not kept (no wasted compute).

    Args:
        model: a :class:`reszoo.ResNet`.
        out_indices: which feature maps (0 = stem, i = ``layer{i}``); default all; an int ``n``
            means the last ``n``.
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | int | None = None) -> None:
        super().__init__()
        if not hasattr(model, "stage_names") or not hasattr(model, "config"):
            raise type_error("model", model, "a reszoo ResNet")
        specs = feature_specs(model)
        self.out_indices = check_out_indices(out_indices, len(specs))
        self.feature_info = FeatureInfo(specs[i] for i in self.out_indices)
        self.config = model.config
        set_checkpointing(
            self, getattr(model, "grad_checkpointing", False), getattr(model, "checkpoint_every", "stage")
        )
        last = self.out_indices[-1]
        stem = model.stem_names
        if last == 0:  # only the stem's activation: stop there
            stem = stem[: stem.index(specs[0].module) + 1]
        self.stem_names = stem
        self.stem_out = specs[0].module
        self.stage_names = model.stage_names[:last]
        for name in (*self.stem_names, *self.stage_names):
            self.add_module(name, getattr(model, name))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return collect_features(self, x, self.out_indices)[1]

    def set_grad_checkpointing(self, enable: bool = True, every: str = "stage") -> None:
        """Recompute each stage (or block) in backward instead of keeping its activations (see ``ResNet``)."""
        set_checkpointing(self, enable, every)

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script compiles this twin: TorchScript cannot call getattr(self, name) with a
        # name from a list. Same modules, same state_dict keys, same outputs.
        names = (*self.stem_names, *self.stage_names)
        positions = {self.stem_out: 0, **{name: i for i, name in enumerate(self.stage_names, start=1)}}
        take = [k for k, name in enumerate(names) if positions.get(name, -1) in self.out_indices]
        return FeatureSequential(OrderedDict((name, getattr(self, name)) for name in names), take)
