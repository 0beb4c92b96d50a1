"""``create_model``: a name becomes a network, with pretrained weights when asked (timm's factory -> builder).

The registry is a leaf that knows names and configs. This module sits above it and above the
weights package: :func:`build_model` builds a registered network from its config or, when
weights are asked for, hands the whole job to :func:`reszoo.weights.pretrained.pretrained_model`
(resolve -> fetch and verify -> convert -> build -> load). The zoo's factories
(``resnet56(pretrained=True)``) and :func:`create_model` both call it, so a load enters each
module once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from reszoo.models.registry import default_config, get_model_fn
from reszoo.models.resnet import ResNet
from reszoo.utils.checks import check_bool, value_error

__all__ = ["Pretrained", "build_model", "create_model"]

Pretrained = bool | str | os.PathLike[str] | None


def build_model(name: str, pretrained: Pretrained = False, **overrides: Any) -> nn.Module:
    """The registered ``name`` built from its config with ``overrides``; with ``pretrained``, its weights.

    Args:
        name: a registered name whose config the registry holds.
        pretrained: ``False``/``None`` for fresh weights, else what :func:`create_model` takes.
        **overrides: config fields.
    """
    if pretrained is None or pretrained is False:
        return ResNet(default_config(name), **overrides)
    # Weights are a tool above the networks (downloads, caches, the Hub): imported only when asked for.
    from reszoo.weights.pretrained import pretrained_model

    return pretrained_model(name, pretrained, **overrides)


def create_model(
    name: str,
    *,
    pretrained: Pretrained = False,
    features_only: bool = False,
    out_indices: Sequence[int] | int | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, with config fields overridden by keyword.

    Args:
        name: a registered name (see :func:`reszoo.list_models`).
        pretrained: ``True`` loads the architecture's default weights (``reszoo.weights.DEFAULT_WEIGHTS``);
            a weight name or alias for it (``"resnet56-cifar10-b"``, see ``reszoo list --pretrained``),
            ``"hf-hub:owner/repo"`` or a folder written by ``save_pretrained`` loads those;
            ``False``/``None`` builds a freshly initialised model. With weights, ``num_classes``
            other than theirs re-initialises the classifier (with a warning) and ``in_chans``
            other than 3 adapts the first convolution, as timm does.
        features_only: return a backbone (:class:`reszoo.models.features.ResNetFeatures`) whose
            forward gives the feature maps at ``out_indices`` and which carries ``feature_info``,
            as timm's ``features_only``.
        out_indices: with ``features_only``: 0 is the stem, ``i`` is ``layer{i}``; default all.
        **overrides: config fields, e.g. ``num_classes=100`` or ``shortcut="B"``.

    Example:
        >>> import reszoo
        >>> model = reszoo.create_model("resnet20", shortcut="B", num_classes=100)
        >>> model.fc.out_features
        100
    """
    check_bool("features_only", features_only)
    if out_indices is not None and not features_only:
        raise value_error("out_indices", out_indices, "None unless features_only=True")
    fn = get_model_fn(name)
    # A factory registered by a user builds its own network; with weights, the builder does.
    model = fn(**overrides) if pretrained is None or pretrained is False else build_model(name, pretrained, **overrides)
    if features_only:
        from reszoo.models.features import ResNetFeatures

        return ResNetFeatures(model, out_indices)
    return model
