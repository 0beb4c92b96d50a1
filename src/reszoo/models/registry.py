"""Register and list models by name; the one place a name becomes a config.

A leaf of the models: it stores factories and their configs and imports no network code, no
builder and no weights (``create_model`` is :mod:`reszoo.models._factory`'s).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from reszoo.utils.checks import check_str, type_error, unknown_name_error, value_error
from reszoo.utils.text import sort_key

__all__ = ["default_config", "get_model_fn", "list_models", "register_model"]

if TYPE_CHECKING:
    from torch import nn

    from reszoo.models.resnet import ResNetConfig

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
            taken = _MODELS[name]
            raise value_error(
                "model name",
                name,
                f"a name not registered yet ({name!r} is {taken.__module__}.{taken.__qualname__}; the function's "
                "name is the model's, so rename the new one)",
            )
        _MODELS[name] = fn
        if config is not None:
            _CONFIGS[name] = config
        return fn

    return register if fn is None else register(fn)


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
            raise value_error(
                f"create_model({name!r}).config",
                config,
                "a ResNetConfig (the model has no .config; register its factory with register_model(config=...))",
            )
        _CONFIGS[name] = config
    return _CONFIGS[name]
