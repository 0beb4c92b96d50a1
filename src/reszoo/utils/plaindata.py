"""Frozen dataclasses as plain data: strictly typed fields, ``replace``, ``to_dict``, ``from_dict``.

A settings class (``ResNetConfig``, ``Recipe``) is a frozen dataclass deriving from
:class:`PlainData`. When one is made, every field is checked against its annotation, strictly:
``bool`` takes only ``True``/``False`` (not ``"false"``, not 0), ``int`` takes no bool and no
float, ``float`` also takes an int, ``X | None`` takes ``None``, ``tuple[int, ...]`` takes a
tuple or list of ints (kept as a tuple, so the object stays hashable), ``Callable`` takes a
callable and ``type[C]`` a subclass of ``C``. Text from a command line or a JSON string is not
parsed here: callers convert it first with :func:`reszoo.utils.checks.coerce`.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Point(PlainData):
    ...     x: int = 0
    ...     tags: tuple[str, ...] = ()
    ...     label: str | None = None
    >>> Point.from_dict({"x": 2, "tags": ["a"]})
    Point(x=2, tags=('a',), label=None)
    >>> Point(x=2).replace(label="p").to_dict()
    {'x': 2, 'tags': [], 'label': 'p'}
    >>> Point(x="2")
    Traceback (most recent call last):
    ...
    reszoo.errors.ArgumentTypeError: x must be an integer; received x='2' (str).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin

from reszoo.errors import InvalidArgumentError
from reszoo.utils.checks import is_int, is_number, type_error

P = TypeVar("P", bound="PlainData")
_NO = object()  # "does not fit the annotation"
# How messages name a type: alone, and as the items of a tuple.
_WORDS: dict[Any, tuple[str, str]] = {bool: ("True or False", "booleans"), int: ("an integer", "integers")}
_WORDS |= {float: ("a number", "numbers"), str: ("a string", "strings"), type(None): ("None", "None")}
_WORDS |= {dict: ("a dict", "dicts")}


def describe(hint: Any) -> str:
    """What an annotation accepts, in words: ``int | None`` -> ``"an integer or None"``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args).replace("True or False or", "True, False or")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"a tuple of {_WORDS.get(args[0], (None, f'{describe(args[0])} items'))[1]}"
    if origin is type and args:
        return f"a {getattr(args[0], '__name__', args[0])} subclass"
    if hint is collections.abc.Callable or origin is collections.abc.Callable:
        return "a callable"
    return _WORDS.get(hint, (f"a {getattr(origin or hint, '__name__', hint)}",))[0]


def _fit(value: Any, hint: Any) -> Any:
    # value as the annotation takes it (lists become tuples, ints floats where a float is asked
    # for), or _NO when it does not fit.
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        return next((out for out in (_fit(value, a) for a in args) if out is not _NO), _NO)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return _NO
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return _NO
        out = tuple(_fit(v, h) for v, h in zip(value, items, strict=True))
        return _NO if any(o is _NO for o in out) else out
    if origin is type:
        return value if isinstance(value, type) and issubclass(value, args[0]) else _NO
    if hint is collections.abc.Callable or origin is collections.abc.Callable:
        return value if callable(value) else _NO
    if hint is bool:
        return value if isinstance(value, bool) else _NO
    if hint is int:
        return int(value) if is_int(value) else _NO
    if hint is float:
        return float(value) if is_number(value) else _NO
    if hint is type(None):
        return value if value is None else _NO
    return value if not isinstance(origin or hint, type) or isinstance(value, origin or hint) else _NO


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of each dataclass field of ``cls`` (string annotations evaluated)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_fields(obj: Any) -> None:
    """Check each field of the dataclass ``obj`` against its annotation, normalising in place.

    A field of the wrong type raises :class:`~reszoo.errors.ArgumentTypeError` naming the field.
    """
    for name, hint in field_types(type(obj)).items():
        value = getattr(obj, name)
        out = _fit(value, hint)
        if out is _NO:
            raise type_error(name, value, describe(hint))
        if out is not value:
            object.__setattr__(obj, name, out)


def _plain(kind: str, name: str, value: Any) -> Any:
    if callable(value):
        raise InvalidArgumentError(
            f"{kind.capitalize()} field {name}={value!r} is a callable and cannot be written as plain data; "
            "use one of the named choices instead."
        )
    if isinstance(value, (tuple, list)):
        return [_plain(kind, name, v) for v in value]
    return value


class PlainData:
    """Mixin for a frozen dataclass of plain settings (see the module docstring)."""

    kind = "data"  # how messages call an instance: "config", "recipe"

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the fields, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    def replace(self: P, **overrides: Any) -> P:
        """A copy with some fields changed; an unknown name is an error that lists the valid ones."""
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise InvalidArgumentError(
                f"Unknown {self.kind} field(s) {unknown}; valid fields: {list(self.field_names())}."
            )
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready data (tuples become lists); a field holding a callable is refused."""
        return {name: _plain(self.kind, name, getattr(self, name)) for name in self.field_names()}

    @classmethod
    def from_dict(cls: type[P], data: Any) -> P:
        """Inverse of :meth:`to_dict` (lists become tuples); unknown keys are an error listing the valid ones."""
        if not isinstance(data, dict):
            raise type_error("data", data, f"a dict of {cls.__name__} fields")
        return cls().replace(**data)  # every settings class has defaults for all its fields
