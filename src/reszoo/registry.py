"""Register, list and create models by name; the one place a name becomes a config."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from reszoo.checks import check_bool, check_str, closest_names, type_error, unknown_name_error, value_error

__all__ = [
    "closest_names",
    "create_model",
    "default_config",
    "get_model_fn",
    "list_models",
    "register_model",
    "sort_key",
    "unknown_name_error",
]

if TYPE_CHECKING:
    from torch import nn

    from reszoo.resnet import ResNetConfig

F = TypeVar("F", bound=Callable[..., "nn.Module"])

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_CONFIGS: dict[str, ResNetConfig] = {}


def register_model(fn: F | None = None, *, config: ResNetConfig | None = None) -> Any:
    """Register a factory under its function name (a decorator, with or without arguments).

    The factory takes config overrides as keyword arguments and returns a model. Pass the
    config it builds as ``config=`` so that :func:`default_config` (and ``reszoo list``) know
    the model without building it; without it the config is read once from a model built on
    the meta device.

    Example::

        @reszoo.register_model(config=reszoo.ResNetConfig(depths=(1, 1, 1)))
        def resnet8(**overrides):
            return reszoo.ResNet(reszoo.ResNetConfig(depths=(1, 1, 1)), **overrides)

        reszoo.create_model("resnet8", num_classes=100)
    """

    def register(fn: F) -> F:
        if not callable(fn):
            raise type_error("register_model's argument", fn, "a model factory function")
        name = fn.__name__
        if name in _MODELS and _MODELS[name] is not fn:
            raise ValueError(f"A model named {name!r} is already registered.")
        _MODELS[name] = fn
        if config is not None:
            _CONFIGS[name] = config
        return fn

    return register if fn is None else register(fn)


def sort_key(name: str) -> tuple[str, int, str]:
    """Sort names by family, then by the depth in their digits: resnet20 < resnet110 < resnet1202."""
    prefix = name.rstrip("0123456789")
    digits = name[len(prefix) :]
    return (prefix, int(digits) if digits else 0, name)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted by family then depth, filtered by fnmatch wildcards.

    Args:
        pattern: e.g. ``"resnet*"`` or ``"plain?0"``; ``None`` lists all.
    """
    check_str("pattern", pattern, optional=True, what="an fnmatch wildcard string")
    names = [n for n in _MODELS if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=sort_key)


def get_model_fn(name: str) -> Callable[..., nn.Module]:
    """The factory registered as ``name``; an error with the closest names otherwise."""
    if not isinstance(name, str) or name not in _MODELS:
        raise unknown_name_error("model", str(name), list_models())
    return _MODELS[name]


def default_config(name: str) -> ResNetConfig:
    """The config ``create_model(name)`` builds, without building it (for registered reszoo models)."""
    fn = get_model_fn(name)
    if name not in _CONFIGS:
        import torch

        with torch.device("meta"):
            model = fn()
        config = getattr(model, "config", None)
        if config is None:
            raise ValueError(f"Model {name!r} has no .config; register it with register_model(config=...).")
        _CONFIGS[name] = config
    return _CONFIGS[name]


def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike[str] | None = False,
    features_only: bool = False,
    out_indices: Sequence[int] | int | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, with config fields overridden by keyword.

    Args:
        name: a registered name (see :func:`list_models`).
        pretrained: ``True`` loads the architecture's default weights (``reszoo.weights.DEFAULT_WEIGHTS``);
            a weight name or alias for it (``"resnet56-cifar10-b"``, see ``reszoo list --pretrained``),
            ``"hf-hub:owner/repo"`` or a folder written by ``save_pretrained`` loads those;
            ``False``/``None`` builds a freshly initialised model. With weights, ``num_classes``
            other than theirs re-initialises the classifier (with a warning) and ``in_chans``
            other than 3 adapts the first convolution, as timm does.
        features_only: return a backbone (:class:`reszoo.features.ResNetFeatures`) whose forward
            gives the feature maps at ``out_indices`` and which carries ``feature_info``, as timm's
            ``features_only``.
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
    if pretrained is None or pretrained is False:
        model = fn(**overrides)
    else:
        # Loading weights is a tool over the core (downloads, caches, the Hub): imported only when asked.
        from reszoo.pretrained import pretrained_model

        model = pretrained_model(name, pretrained, **overrides)
    if features_only:
        from reszoo.features import ResNetFeatures

        return ResNetFeatures(model, out_indices)
    return model
