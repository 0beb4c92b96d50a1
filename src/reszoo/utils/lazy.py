"""Package faces whose names load on first use (PEP 562).

``import reszoo`` and ``reszoo --help`` must not import torch: the face of a package lists each
public name with the module that defines it, and the module is imported when the name is first
read. ``from reszoo import resnet56`` and ``reszoo.train.fit`` work as for eagerly imported names.

Example:
    >>> import reszoo
    >>> "reszoo.models.zoo" in __import__("sys").modules or reszoo.resnet20 is not None
    True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_face"]


def lazy_face(
    package: str, names: Mapping[str, str], modules: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the face of ``package``.

    Args:
        package: the package's ``__name__``.
        names: public name -> the module that defines it (``"fit": "reszoo.train.trainer"``).
        modules: public name -> a module offered under that name (``"transforms": "reszoo.data.transforms"``).

    Returns:
        The two functions to assign to the package's ``__getattr__`` and ``__dir__``.
    """
    modules = dict(modules or {})

    def __getattr__(name: str) -> Any:
        if name in modules:
            value = importlib.import_module(modules[name])
        elif name in names:
            value = getattr(importlib.import_module(names[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # read once: later reads skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names) | set(modules))

    return __getattr__, __dir__
