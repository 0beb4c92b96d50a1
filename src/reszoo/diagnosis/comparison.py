"""Two networks side by side, block by block, with the first place they differ marked: the
comparison people make by eye from two ``torchinfo`` summaries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from reszoo.diagnosis.architecture import shortcut_variant
from reszoo.diagnosis.layers import order_text
from reszoo.diagnosis.structure import Block, Structure, describe_ops, read_structure
from reszoo.diagnosis.trace import one_thread, trace_model, unwrap
from reszoo.utils.checks import type_error

_COLUMN = 60


@dataclass
class Row:
    """One line of the comparison: a part of each network, and whether they are the same."""

    label: str
    left: str
    right: str
    same: bool


@dataclass
class Comparison:
    """The rows of a side-by-side comparison and the first that differs (``None``: the same network)."""

    left: str
    right: str
    rows: list[Row]
    input_shape: tuple[int, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def first_difference(self) -> int | None:
        return next((i for i, r in enumerate(self.rows) if not r.same), None)

    @property
    def same(self) -> bool:
        return self.first_difference is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "left": self.left,
            "right": self.right,
            "input_shape": list(self.input_shape),
            "first_difference": self.first_difference,
            "notes": self.notes,
            "rows": [{"label": r.label, "left": r.left, "right": r.right, "same": r.same} for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def report(self) -> str:
        first = self.first_difference
        head = f"   {'':<10} {self.left[:_COLUMN]:<{_COLUMN}} | {self.right}"
        lines = [head, "-" * len(head)]
        for i, r in enumerate(self.rows):
            mark = ">>" if i == first else (" *" if not r.same else "  ")
            lines.append(f"{mark} {r.label:<10} {r.left[:_COLUMN]:<{_COLUMN}} | {r.right}")
        if first is None:
            lines.append(f"\nsame structure: {len(self.rows)} rows, no difference")
        else:
            r = self.rows[first]
            n = sum(not x.same for x in self.rows)
            lines.append(f"\nfirst difference at {r.label}: {r.left} | {r.right}  ({n} rows differ, marked *)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _block_key(b: Block) -> tuple:
    return (
        b.kind,
        b.in_shape[1:2],
        b.out_shape[1:],
        b.stride,
        b.pattern(),
        b.post_pattern(),
        b.shortcut_kind(),
        shortcut_variant(b),
        b.strided_conv,
    )


def _shortcut_text(b: Block) -> str:
    kind = b.shortcut_kind()
    if kind == "projection":
        conv = next(o for o in b.shortcut if o.kind == "conv")
        k, s = conv.attrs.get("kernel", (1,))[0], max(conv.attrs.get("stride", (1,)))
        pool = "pool+" if any(o.kind == "pool" for o in b.shortcut) else ""
        return f"proj {pool}{k}x{k}/{s}" + ("+bn" if any(o.kind == "norm" for o in b.shortcut) else "")
    return {"identity": "id", "none": "none", "unknown": "?", "zero-pad": "zero-pad"}.get(kind, b.shortcut_detail())


def _block_text(b: Block) -> str:
    sc = _shortcut_text(b)
    stride = f"/{b.stride}" if b.stride > 1 else ""
    return f"{b.in_shape[1]}->{b.out_shape[1]}{stride} {order_text(b)} [sc {sc}]"


def _rows(a: Structure, b: Structure) -> list[Row]:
    stem = (describe_ops(a.stem), describe_ops(b.stem))
    rows = [Row("stem", *stem, stem[0] == stem[1] and a.stem_reduction == b.stem_reduction)]
    for i in range(max(len(a.blocks), len(b.blocks))):
        x = a.blocks[i] if i < len(a.blocks) else None
        y = b.blocks[i] if i < len(b.blocks) else None
        label = (x or y).name or f"block {i}"
        same = x is not None and y is not None and _block_key(x) == _block_key(y)
        rows.append(Row(label[:10], _block_text(x) if x else "-", _block_text(y) if y else "-", same))
    head = (f"{describe_ops(a.head)} ({a.num_classes})", f"{describe_ops(b.head)} ({b.num_classes})")
    rows.append(Row("head", *head, head[0] == head[1]))
    rows.append(Row("params", f"{a.params:,}", f"{b.params:,}", a.params == b.params))
    return rows


def _model(spec: Any) -> tuple[nn.Module, str, Any]:
    """A model from a registered name (built on the meta device: structure only) or a module."""
    if isinstance(spec, str):
        from reszoo.models._factory import create_model
        from reszoo.models.registry import default_config, get_model_fn

        get_model_fn(spec)
        with torch.device("meta"):
            return create_model(spec), spec, default_config(spec)
    if isinstance(spec, nn.Module):
        model = unwrap(spec)
        return model, type(model).__name__, getattr(model, "config", None)
    raise type_error("model", spec, "a torch.nn.Module or a registered model name")


def compare(a: Any, b: Any, *, input_size: tuple[int, ...] | None = None) -> Comparison:
    """Two networks side by side, block by block.

    Args:
        a, b: ``nn.Module`` instances or registered names (``"resnet56"``).
        input_size: ``(C, H, W)`` to run both at; default: a reszoo model's own size (the first
            one with a config), else 3x224x224.

    Returns:
        A :class:`Comparison`: ``print`` it, or read ``first_difference`` and ``rows``.

    Example:
        >>> import reszoo
        >>> reszoo.diagnosis.compare("resnet20", reszoo.create_model("resnet20", shortcut="B")).first_difference
        4
    """
    with one_thread():
        return _compare(a, b, input_size)


def _compare(a: Any, b: Any, input_size: Any) -> Comparison:
    (ma, na, ca), (mb, nb, cb) = _model(a), _model(b)
    if input_size is None:
        config = ca or cb
        input_size = tuple(config.input_size) if config is not None else (3, 224, 224)
    shape = (1, *tuple(input_size)[-3:])
    ta, tb = trace_model(ma, shape), trace_model(mb, shape)
    if ta.method != tb.method:  # read both the same way
        ta, tb = trace_model(ma, shape, capture=False), trace_model(mb, shape, capture=False)
    sa = read_structure(ta, params=sum(p.numel() for p in ma.parameters()))
    sb = read_structure(tb, params=sum(p.numel() for p in mb.parameters()))
    notes = sorted(set(ta.notes + tb.notes + sa.notes + sb.notes))
    return Comparison(na, nb, _rows(sa, sb), shape, notes)
