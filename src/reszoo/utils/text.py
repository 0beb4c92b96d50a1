"""Plain text for people: aligned tables, short numbers, names in a natural order.

Example:
    >>> print(format_table(["model", "params"], [["resnet20", "269,722"], ["resnet110", "1,727,962"]]))
    model      params
    ---------  ---------
    resnet20     269,722
    resnet110  1,727,962
    >>> sorted(["resnet110", "resnet20"], key=sort_key)
    ['resnet20', 'resnet110']
"""

from __future__ import annotations

__all__ = ["format_table", "human", "sort_key"]


def sort_key(name: str) -> tuple[str, int, str]:
    """Sort names by family, then by the depth in their digits: resnet20 < resnet110 < resnet1202."""
    prefix = name.rstrip("0123456789")
    digits = name[len(prefix) :]
    return (prefix, int(digits) if digits else 0, name)


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_table(headers: list[str], rows: list[list[str]], *, markdown: bool = False) -> str:
    """Align columns; numbers (cells starting with a digit) are right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def fmt(cells: list[str]) -> str:
        parts = [
            str(c).rjust(w) if str(c)[:1].isdigit() else str(c).ljust(w) for c, w in zip(cells, widths, strict=True)
        ]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    sep = ("|" + "|".join("-" * (w + 2) for w in widths) + "|") if markdown else "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), sep, *(fmt(r) for r in rows)])
