"""The diagnosis as text: a header with both networks, the findings most severe first, then notes."""

from __future__ import annotations

import textwrap
from typing import Any

# Typed loosely on purpose: findings.py imports this module to print a Diagnosis, so this one does
# not import findings.py back (not even for annotations: that would be an import cycle).

WIDTH = 100
_INDENT = " " * 12


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _wrap(label: str, text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"  {label:<10}", subsequent_indent=_INDENT) or [f"  {label}"]


def format_finding(f: Any) -> list[str]:
    """One :class:`Finding`: its severity and id, the message, each piece of evidence, the fix and the source."""
    lines = [f"{f.severity.upper():<8}{f.id} ({f.category})"]
    lines += textwrap.wrap(f.message, WIDTH, initial_indent="  ", subsequent_indent="  ")
    for i, (key, value) in enumerate(f.evidence.items()):
        lines += _wrap("evidence" if i == 0 else "", f"{key}: {_value(value)}")
    lines += _wrap("fix", f.fix)
    lines += _wrap("source", f.source)
    return lines


def format_report(d: Any) -> str:
    """The whole report of a :class:`Diagnosis` (what ``print(diagnosis)`` shows)."""
    t = d.trace
    shape = "x".join(map(str, t.get("input_shape", [])))
    lines = [
        f"reszoo diagnose: {d.model} vs {d.reference} ({t.get('dataset', '?')})",
        f"traced: {t.get('method')}, one forward pass at {shape}, {t.get('nodes')} nodes, {t.get('modules')} modules, "
        f"{t.get('seconds', 0):.2f} s",
    ]
    for who in ("yours", "reference"):
        summary = d.structure.get(who, {}).get("summary")
        if summary:
            lines += textwrap.wrap(summary, WIDTH, initial_indent=f"  {who + ':':<11}", subsequent_indent=_INDENT)
    counts = ", ".join(f"{n} {s}{'s' if s != 'info' and n != 1 else ''}" for s, n in d.counts().items())
    lines += ["", f"result: {counts}" + ("" if d.findings else ": matches the reference"), ""]
    for f in d.findings:
        lines += format_finding(f) + [""]
    if d.notes:
        lines.append("not checked / notes:")
        for note in d.notes:
            lines += textwrap.wrap(note, WIDTH, initial_indent="  - ", subsequent_indent="    ")
    lines.append(f"(diagnosed in {d.seconds:.2f} s)")
    return "\n".join(lines)
