"""Register, list and create models by name."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

F = TypeVar("F", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: F) -> F:
    """Register a factory under its function name (a decorator).

    The factory takes config overrides as keyword arguments and returns a model.

    Example::

        @reszoo.register_model
        def resnet8(**overrides):
            return reszoo.ResNet(reszoo.ResNetConfig(depths=(1, 1, 1)), **overrides)

        reszoo.create_model("resnet8", num_classes=100)
    """
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"A model named {name!r} is already registered.")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted by family then depth, filtered by fnmatch wildcards.

    Args:
        pattern: e.g. ``"resnet*"`` or ``"plain?0"``; ``None`` lists all.
    """
    names = [n for n in _MODELS if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=_sort_key)


def _sort_key(name: str) -> tuple[str, int, str]:
    prefix = name.rstrip("0123456789")
    digits = name[len(prefix) :]
    return (prefix, int(digits) if digits else 0, name)


def closest_names(name: str, choices: list[str], n: int = 5) -> list[str]:
    """The registered names most like ``name``, for error messages."""
    return difflib.get_close_matches(name, choices, n=n, cutoff=0.4)


def unknown_name_error(kind: str, name: str, choices: list[str]) -> ValueError:
    close = closest_names(name, choices)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Valid names: {', '.join(choices)}.")


def get_model_fn(name: str) -> Callable[..., nn.Module]:
    if not isinstance(name, str) or name not in _MODELS:
        raise unknown_name_error("model", str(name), list_models())
    return _MODELS[name]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model, with config fields overridden by keyword.

    Example:
        >>> import reszoo
        >>> model = reszoo.create_model("resnet20", shortcut="B", num_classes=100)
        >>> model.fc.out_features
        100
    """
    return get_model_fn(name)(**overrides)
