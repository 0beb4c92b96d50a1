"""One command-line option per :class:`~reszoo.train.recipes.Recipe` field, made from the field's type.

``reszoo train`` and ``reszoo experiment`` offer every recipe field, so nothing in a recipe is out
of reach from the command line. Each option is derived from the field itself:

- its kind from the field's resolved type (:func:`reszoo.utils.plaindata.field_types`): ``bool``
  becomes ``--x/--no-x``; ``int``, ``float`` and ``str`` take a value of that type;
  ``tuple[int, ...]`` and ``tuple[float, ...]`` take comma-separated values; each may be
  ``| None``. Any other type is refused by name when the parser is built, so a new field of a
  supported type needs nothing here, and one of another type fails every test that builds it.
- its help from the recipe's own documentation: the ``Args:`` section of the class docstring,
  the one place a field is described (for the API reference too). A field missing there falls
  back to its type in words; ``tests/test_cli.py`` checks that none is missing.
- its choices, where the recipe has named ones (``data``, ``schedule``, ``device``).

Only options typed on the command line override the recipe the command starts from (their
default is ``None``, "not given"), so the defaults stay the paper's recipe for the dataset.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import types
import typing
from typing import Any

from reszoo.cli._common import float_list, int_list
from reszoo.errors import ArgumentTypeError
from reszoo.train.recipes import DATASETS, Recipe
from reszoo.utils.choices import DEVICES, SCHEDULES
from reszoo.utils.plaindata import describe, field_types

__all__ = ["add_recipe_options", "field_help", "given_recipe_fields", "recipe_option"]

# Recipe fields the CLI spells differently from the dataclass (short forms people type).
_ALIASES = {"data_root": ["--root"]}
# Recipe fields that take one of a few names.
_CHOICES = {"data": DATASETS, "schedule": SCHEDULES, "device": DEVICES}
# Where the parsed values go in the namespace: recipe_<field>, apart from the command's own options.
_PREFIX = "recipe_"
_SUPPORTED = "int, float, str, bool, tuple[int, ...] or tuple[float, ...], each optionally | None"


# The argparse `type` and metavar of each supported value type (bool is a flag pair instead);
# None: the field's name.
_PARSERS: dict[Any, tuple[Any, str | None]] = {
    int: (int, None),
    float: (float, None),
    str: (str, None),
    tuple[int, ...]: (int_list, "N,N,..."),
    tuple[float, ...]: (float_list, "X,X,..."),
}


def recipe_option(name: str, hint: Any) -> dict[str, Any]:
    """The ``add_argument`` keyword arguments for a field ``name`` of type ``hint`` (help and choices aside).

    ``X | None`` is taken as ``X``: every option may be left out, which is what ``None`` stands for.

    Raises:
        ArgumentTypeError: a type the command line cannot take, naming the field.
    """
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args
    value_type = next(a for a in args if a is not type(None)) if optional else hint
    if value_type is bool:
        return {"action": argparse.BooleanOptionalAction}
    if value_type in _PARSERS:
        parse, metavar = _PARSERS[value_type]
        return {"type": parse, "metavar": metavar or name.upper()}
    shown = hint.__name__ if isinstance(hint, type) else str(hint)
    raise ArgumentTypeError(
        f"Recipe field {name!r} has type {shown}, which the command line cannot offer as an option; supported: "
        f"{_SUPPORTED}. Change the field's type, or teach reszoo.cli._recipe_options to parse it."
    )


def add_recipe_options(parser: argparse.ArgumentParser, recipe: type[Recipe] = Recipe) -> None:
    """Add an option for every field of ``recipe`` (a group of ``parser``); see the module docstring."""
    g = parser.add_argument_group("recipe (defaults: the paper's recipe for the dataset; see docs/training.md)")
    for name, hint in field_types(recipe).items():
        kwargs = recipe_option(name, hint)
        if name in _CHOICES:
            kwargs.pop("metavar", None)  # argparse shows {a,b,c}
            kwargs["choices"] = _CHOICES[name]
        flag = "--" + name.replace("_", "-")
        help_text = field_help(recipe).get(name) or describe(hint)
        # None means "not given": only options typed on the command line override the recipe.
        g.add_argument(
            flag,
            *_ALIASES.get(name, []),
            dest=_PREFIX + name,
            default=None,
            help=help_text.replace("%", "%%"),
            **kwargs,
        )


def given_recipe_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe fields typed on the command line, as ``{field: value}``."""
    return {k[len(_PREFIX) :]: v for k, v in vars(args).items() if k.startswith(_PREFIX) and v is not None}


@functools.cache
def field_help(recipe: type[Recipe] = Recipe) -> dict[str, str]:
    """Each field's description in the ``Args:`` section of ``recipe``'s docstring (or of the class it
    extends, for a field it inherits), as one line of plain text.

    Example:
        >>> field_help()["lr"]
        'base learning rate.'
    """
    described: dict[str, str] = {}
    for cls in reversed(recipe.__mro__):  # a subclass's own words win
        if dataclasses.is_dataclass(cls) and "__doc__" in vars(cls):
            described |= _args_section(cls.__doc__ or "")
    fields = {f.name for f in dataclasses.fields(recipe)}
    return {name: _plain(text) for name, text in described.items() if name in fields}


def _args_section(docstring: str) -> dict[str, str]:
    """``{name: description}`` of a Google-style docstring's ``Args:`` section, continuation lines joined."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_args = False
    for line in inspect.cleandoc(docstring).splitlines():
        entry = re.match(r"^    (\w+): (.*)$", line)
        if line.strip() == "Args:":
            in_args = True
        elif not in_args or not line.strip():
            continue
        elif entry:  # "    name: text", one indent in
            current = out.setdefault(entry.group(1), [entry.group(2)])
        elif line.startswith("     ") and current is not None:  # its continuation, indented deeper
            current.append(line.strip())
        else:  # the next section ("Returns:", ...) ends the arguments
            break
    return {name: " ".join(words) for name, words in out.items()}


def _plain(text: str) -> str:
    """reStructuredText markup as plain text (``"x"`` -> x, :func:`~a.b` -> b, :mod:`a.b` -> a.b), and
    "``None`` = ..." as what it means on a command line, where None cannot be typed: the option not given."""
    text = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"\1", text)
    text = re.sub(r":\w+:`([^`]+)`", r"\1", text)
    text = re.sub(r"``None`` = ", "not given: ", text)
    text = re.sub(r'``"([^"`]*)"``', r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)
