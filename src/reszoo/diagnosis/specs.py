"""``FILE.py:NAME`` specs: objects from a user's Python file (a model factory, an optimizer function, a transform).

A file that does not exist, or a name it does not define, is a wrong argument
(:class:`~reszoo.errors.MissingInputError`, :class:`~reszoo.errors.InvalidArgumentError`); code in
the file that raises is a :class:`UserCodeError` whose one-line message names the file, the line
and the error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from reszoo.errors import InvalidArgumentError, MissingInputError, UserCodeError
from reszoo.utils.checks import closest_names

_LOADED: dict[str, ModuleType] = {}


def split_spec(spec: str) -> tuple[Path, str] | None:
    """``("net.py", "build")`` for ``"net.py:build"``; ``None`` when ``spec`` names no Python file."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name:
        return None
    return Path(path), name


def _where(err: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f", line {frames[-1].lineno}" if frames else ""


def _fail(path: Path, what: str, err: BaseException) -> UserCodeError:
    detail = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
    return UserCodeError(f"{path}{_where(err, path)}: {what}: {detail}")


def import_file(path: Path) -> ModuleType:
    """Import a user's file once (its folder on ``sys.path`` meanwhile, so its own imports resolve)."""
    if not path.is_file():
        raise MissingInputError(f"No such Python file: {path}.")
    key = str(path.resolve())
    if key in _LOADED:
        return _LOADED[key]
    name = f"reszoo_user_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise _fail(path, "import failed", err) from err
    finally:
        sys.path.remove(str(path.resolve().parent))
    _LOADED[key] = module
    return module


def _needs_no_arguments(obj: Any) -> bool:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values())


def load_object(spec: str, *args: Any, build: str = "auto") -> Any:
    """The object ``NAME`` of ``FILE.py:NAME``, called with ``args`` when it is a factory.

    Args:
        spec: ``"path/to/file.py:NAME"``.
        *args: arguments for the factory (the model for an optimizer function, the optimizer for a scheduler one).
        build: ``"call"`` (always call ``NAME(*args)``), ``"auto"`` (call a class, or a function that needs
            no arguments, as a zero-argument factory; keep anything else, e.g. a transform function) or ``"never"``.

    Raises:
        InvalidArgumentError: not ``FILE.py:NAME``, or the file defines no ``NAME`` (the message lists its names).
        MissingInputError: no such file.
        UserCodeError: the file or the factory raised.
    """
    parts = split_spec(spec)
    if parts is None:
        raise InvalidArgumentError(f"Expected FILE.py:NAME (e.g. net.py:build_model); received {spec!r}.")
    path, name = parts
    module = import_file(path)
    if not hasattr(module, name):
        defined = [n for n in vars(module) if not n.startswith("_")]
        close = closest_names(name, defined)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise InvalidArgumentError(f"{path} defines no {name!r}.{hint} It defines: {', '.join(defined[:30])}.")
    obj = getattr(module, name)
    call = build == "call" or (
        build == "auto" and (inspect.isclass(obj) or (inspect.isfunction(obj) and _needs_no_arguments(obj)))
    )
    if not call:
        return obj
    try:
        return obj(*args)
    except Exception as err:
        raise _fail(path, f"{name}() failed", err) from err
