"""The one validation layer: every setting that enters reszoo is checked here.

Each ``check_*`` returns the value (normalised where that is safe, e.g. a list of ints becomes a
tuple) or raises :class:`~reszoo.errors.ArgumentTypeError` for a wrong type and
:class:`~reszoo.errors.InvalidArgumentError` for a wrong value. Both messages name the argument,
the value received and what is valid, in one form::

    batch_size must be an integer >= 1; received batch_size=0.

Text from a command line or a JSON file is parsed with :func:`parse_bool` / :func:`coerce`
first; the Python API takes no strings for booleans or numbers (``"false"`` is not ``False``).

Example:
    >>> check_int("depth", 20, minimum=8)
    20
    >>> check_bool("pretrained", "false")
    Traceback (most recent call last):
    ...
    reszoo.errors.ArgumentTypeError: pretrained must be True or False; received pretrained='false' (str).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from reszoo.errors import ArgumentTypeError, InvalidArgumentError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
BOOL_WORDS = _TRUE + _FALSE


# A value shown in a message is cut here: a list of 100,000 class names read from a file is not a message.
_SHOWN = 200


def _received(name: str, value: Any, *, with_type: bool = False) -> str:
    kind = f" ({type(value).__name__})" if with_type else ""
    shown = repr(value)
    if len(shown) > _SHOWN:
        shown = f"{shown[:_SHOWN]}... ({len(shown):,} characters)"
    return f"received {name}={shown}{kind}"


def type_error(name: str, value: Any, expected: str) -> ArgumentTypeError:
    """The error for a value of the wrong type: ``name must be <expected>; received name=value (type).``"""
    return ArgumentTypeError(f"{name} must be {expected}; {_received(name, value, with_type=True)}.")


def value_error(name: str, value: Any, expected: str) -> InvalidArgumentError:
    """The error for a value that is not valid: ``name must be <expected>; received name=value.``"""
    return InvalidArgumentError(f"{name} must be {expected}; {_received(name, value)}.")


def is_int(value: Any) -> bool:
    """True for a Python or NumPy integer, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) or type(value).__name__ in _NP_INTS


_NP_INTS = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})


def is_number(value: Any) -> bool:
    """True for an int or float (Python or NumPy), not a bool."""
    return is_int(value) or isinstance(value, float) or type(value).__name__ in ("float32", "float64")


def _bounds(minimum: float | None, maximum: float | None, *, above: bool = False) -> str:
    low = "" if minimum is None else f" {'>' if above else '>='} {minimum}"
    high = "" if maximum is None else f" <= {maximum}"
    return f"{low}{' and' if low and high else ''}{high}"


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``; anything else (``"false"``, 0, None) is refused."""
    if not isinstance(value, bool):
        raise type_error(name, value, "True or False")
    return value


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, optional: bool = False
) -> Any:
    """An integer (not a bool) within ``[minimum, maximum]``; ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    expected = f"an integer{_bounds(minimum, maximum)}{' or None' if optional else ''}"
    if not is_int(value):
        raise type_error(name, value, expected)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise value_error(name, value, expected)
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: bool = False,
    optional: bool = False,
) -> Any:
    """A finite int or float (not a bool) ``>= minimum`` (``> minimum`` when ``above``) and ``<= maximum``."""
    if value is None and optional:
        return None
    expected = f"a finite number{_bounds(minimum, maximum, above=above)}{' or None' if optional else ''}"
    if not is_number(value):
        raise type_error(name, value, expected)
    low_ok = minimum is None or (value > minimum if above else value >= minimum)
    if not math.isfinite(value) or not low_ok or (maximum is not None and value > maximum):
        raise value_error(name, value, expected)
    return value


def check_positive(name: str, value: Any, *, optional: bool = False) -> Any:
    """A finite number > 0."""
    return check_number(name, value, minimum=0, above=True, optional=optional)


def check_str(name: str, value: Any, *, optional: bool = False, what: str = "a non-empty string") -> Any:
    """A non-empty ``str``; ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    expected = f"{what}{' or None' if optional else ''}"
    if not isinstance(value, str):
        raise type_error(name, value, expected)
    if not value:
        raise value_error(name, value, expected)
    return value


def check_path(name: str, value: Any, *, optional: bool = False) -> Any:
    """A ``str`` or ``os.PathLike`` (returned as ``str``); ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise type_error(name, value, f"a path (str or os.PathLike){' or None' if optional else ''}")
    return os.fspath(value)


def check_callable(name: str, value: Any, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not callable(value):
        raise type_error(name, value, f"a callable{' or None' if optional else ''}")
    return value


def check_instance(name: str, value: Any, cls: type | tuple[type, ...], *, what: str | None = None) -> Any:
    """``value`` if it is an instance of ``cls``; ``what`` names the expected type in the message."""
    if not isinstance(value, cls):
        names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        raise type_error(name, value, what or f"a {names}")
    return value


def check_ints(
    name: str, value: Any, *, length: int | None = None, minimum: int | None = None, optional: bool = False
) -> Any:
    """A sequence of integers (list or tuple), returned as a tuple; ``length`` fixes how many."""
    if value is None and optional:
        return None
    count = f"{length} " if length is not None else ""
    expected = f"a sequence of {count}integers{_bounds(minimum, None)}{' or None' if optional else ''}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise type_error(name, value, expected)
    if not all(is_int(v) for v in value):
        raise type_error(name, value, expected)
    if (length is not None and len(value) != length) or (minimum is not None and any(v < minimum for v in value)):
        raise value_error(name, value, expected)
    return tuple(int(v) for v in value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices`` (strings); the error suggests the closest names."""
    choices = list(choices)
    if not isinstance(value, str):
        raise type_error(name, value, f"one of {', '.join(choices)}")
    if value not in choices:
        raise unknown_name_error(name, value, choices)
    return value


def closest_names(name: str, choices: Sequence[str], n: int = 5) -> list[str]:
    """The names in ``choices`` most like ``name``, for error messages."""
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=0.4)


def unknown_name_error(kind: str, name: str, choices: Sequence[str], *, limit: int = 40) -> InvalidArgumentError:
    """``Unknown <kind> 'x'. Did you mean: ...? Valid names: ...`` (at most ``limit`` names listed)."""
    close = closest_names(str(name), choices)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    shown = list(choices)[:limit]
    more = f", ... ({len(choices) - limit} more)" if len(choices) > limit else ""
    return InvalidArgumentError(f"Unknown {kind} {name!r}.{hint} Valid names: {', '.join(shown)}{more}.")


def parse_bool(name: str, text: Any) -> bool:
    """A bool from text (command line, JSON): true/false, 1/0, yes/no, on/off (any case), or a bool."""
    if isinstance(text, bool):
        return text
    if isinstance(text, str) and text.strip().lower() in BOOL_WORDS:
        return text.strip().lower() in _TRUE
    raise value_error(name, text, f"true or false (also {'/'.join(BOOL_WORDS)})")


def coerce(name: str, text: Any, annotation: str) -> Any:
    """Convert text from a command line or JSON to the type a dataclass field is annotated with.

    Only text is converted (``"3"`` for an ``int`` field, ``"false"`` for a ``bool``); values
    that already have a type pass through unchanged and are checked by the dataclass itself.
    """
    if not isinstance(text, str) or annotation.startswith("str"):
        return text
    kind = annotation.split("|")[0].strip()
    if "None" in annotation and text.strip().lower() == "none":
        return None
    parsers: dict[str, Callable[[str], Any]] = {
        "bool": lambda t: parse_bool(name, t),
        "int": int,
        "float": float,
    }
    parse = parsers.get(kind)
    if parse is None:
        return text
    try:
        return parse(text)
    except ValueError:
        raise value_error(name, text, f"a {kind}") from None


def check_mean_std(mean: Any, std: Any) -> tuple[list[float], list[float]]:
    """Per-channel normalisation statistics: same non-zero length, finite means, positive stds."""
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(is_number(v) for v in value):
            raise type_error(name, value, "a sequence of numbers, one per channel")
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if not mean or len(mean) != len(std):
        raise InvalidArgumentError(
            f"mean and std must have the same, non-zero length; received mean={mean}, std={std}."
        )
    if not all(math.isfinite(m) for m in mean):
        raise value_error("mean", mean, "finite")
    if not all(0 < s < math.inf for s in std):
        raise value_error("std", std, "positive and finite")
    return mean, std
