"""reszoo.utils.plaindata: strict field types and the plain-data round trip of settings dataclasses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.utils.plaindata import PlainData, describe, field_types


class Base:
    pass


class Child(Base):
    pass


@dataclass(frozen=True)
class Settings(PlainData):
    kind = "settings"  # a class attribute, not a field

    flag: bool = False
    maybe: bool | None = None
    count: int = 1
    rate: float = 0.5
    name: str = "x"
    path: str | None = None
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, str] = (1, "a")
    fn: str | Callable[..., object] = "relu"
    cls: str | type[Base] = "base"


def test_fields_and_descriptions():
    assert Settings.field_names()[:3] == ("flag", "maybe", "count")
    words = {name: describe(hint) for name, hint in field_types(Settings).items()}
    assert words["flag"] == "True or False"
    assert words["maybe"] == "True, False or None"
    assert words["sizes"] == "a tuple of integers"
    assert words["fn"] == "a string or a callable"
    assert words["cls"] == "a string or a Base subclass"


def test_values_of_the_right_type_are_kept_and_normalised():
    s = Settings(flag=True, maybe=None, count=3, rate=2, sizes=[4, 5], fn=print, cls=Child)
    assert (s.rate, type(s.rate)) == (2.0, float)  # a float field takes an int
    assert s.sizes == (4, 5)  # lists become tuples: the object stays hashable
    assert hash(s) == hash(Settings(flag=True, count=3, rate=2.0, sizes=(4, 5), fn=print, cls=Child))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("flag", "false"),
        ("flag", 0),
        ("flag", None),
        ("maybe", "true"),
        ("count", True),
        ("count", 1.0),
        ("count", "1"),
        ("count", [1]),
        ("rate", "0.5"),
        ("rate", False),
        ("name", 3),
        ("name", None),
        ("path", 1),
        ("sizes", 3),
        ("sizes", (1, "2")),
        ("sizes", "12"),
        ("pair", (1, 2)),
        ("pair", (1, "a", 2)),
        ("fn", 3),
        ("cls", int),
    ],
)
def test_wrong_types_are_refused_naming_the_field(field, value):
    with pytest.raises(ArgumentTypeError, match=rf"^{field} must be .*; received {field}="):
        Settings(**{field: value})


def test_replace_to_dict_from_dict_round_trip():
    s = Settings().replace(count=4, sizes=(7,))
    data = s.to_dict()
    assert data["sizes"] == [7] and data["pair"] == [1, "a"]
    assert Settings.from_dict(json.loads(json.dumps(data))) == s
    with pytest.raises(InvalidArgumentError, match=r"Unknown settings field\(s\) \['colour'\]; valid fields: .*'flag'"):
        s.replace(colour=1)
    with pytest.raises(InvalidArgumentError, match=r"\['colour'\]"):
        Settings.from_dict({"colour": 1})
    with pytest.raises(ArgumentTypeError, match=r"data must be a dict.*received data='count=1' \(str\)"):
        Settings.from_dict("count=1")
    with pytest.raises(InvalidArgumentError, match=r"Settings field fn=.* is a callable"):
        Settings(fn=print).to_dict()


def test_text_is_not_parsed_here():
    # Text from a CLI or a JSON string goes through reszoo.utils.checks.coerce first; the dataclass
    # itself never reads "false" as a bool.
    from reszoo.utils.checks import coerce

    assert Settings(flag=coerce("flag", "false", "bool")).flag is False
    with pytest.raises(ArgumentTypeError, match="flag='false'"):
        Settings.from_dict({"flag": "false"})
