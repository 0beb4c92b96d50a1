"""A recorded forward pass read as a ResNet: stem, residual blocks, stages, head.

A residual block is found where two paths meet in an addition (``out += shortcut``): its input
is the latest node both paths descend from, the path with more convolutions is the residual
branch, the other the shortcut (no nodes: identity). What runs between one block's addition and
the next block's input (normally the ReLU) belongs to the block; what runs before the first
block is the stem, after the last the head. A network without additions (a plain network, or a
trace recorded with hooks alone) is grouped by module path instead: the convolutions of one
module form a unit.

The same reading applies to the user's model and to the reference, so the two can be compared
block by block.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from reszoo.diagnosis.trace import CAPTURE, Op, Trace

# Kinds of node that only pass a tensor on (an nn.Identity shortcut, a view, a copy).
PASSTHROUGH = ("reshape",)
# Kinds of node that may follow an addition inside a block (the "second nonlinearity" and friends).
ELEMENTWISE = ("act", "norm", "mul", "dropout")


# Layer names as one word each, however they were called (module, function, in place).
_ACT_NAMES = {"relu_": "relu", "leakyrelu": "leaky_relu", "leaky_relu_": "leaky_relu", "elu_": "elu"}
_NORM_NAMES = {
    "batch_norm": "batchnorm", "batchnorm2d": "batchnorm", "syncbatchnorm": "batchnorm", "group_norm": "groupnorm",
    "layer_norm": "layernorm", "instance_norm": "instancenorm", "instancenorm2d": "instancenorm",
}  # fmt: skip


def act_name(o: Op) -> str:
    """``relu`` for ``nn.ReLU``, ``F.relu``, ``torch.relu_``; ``leaky_relu``, ``gelu``, ... likewise."""
    name = o.name.lower().strip("_")
    return _ACT_NAMES.get(name, name)


def norm_name(o: Op) -> str:
    """``batchnorm``, ``groupnorm``, ``layernorm``, ``instancenorm``, whichever way it was called."""
    name = o.name.lower()
    return _NORM_NAMES.get(name, name)


def pool_name(o: Op) -> str:
    """``avg_pool2d`` for ``nn.AvgPool2d`` and ``F.avg_pool2d``; ``max_pool2d``, ``adaptive_avg_pool2d`` likewise."""
    name = "".join(f"_{c.lower()}" if c.isupper() else c for c in o.name).lstrip("_")
    return name.replace("_pool_2d", "_pool2d").replace("_pool2d_with_indices", "_pool2d")


def _square(value: Any) -> Any:
    """``2`` for ``2`` and ``(2, 2)``; anything else as it is."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def _word(o: Op) -> str:
    """One node as one word, the same for a module and its functional form."""
    if o.kind == "conv":
        k, s = o.attrs.get("kernel", (0,))[0], max(o.attrs.get("stride", (1,)))
        return f"conv{k}x{k}" + (f"/{s}" if s > 1 else "")
    if o.kind == "norm":
        return {"batchnorm": "bn", "groupnorm": "gn", "layernorm": "ln", "instancenorm": "in"}.get(norm_name(o), o.name)
    if o.kind == "act":
        return act_name(o)
    if o.kind in ("pool", "reduce"):
        return "maxpool" if "max" in o.name.lower() else "avgpool"
    if o.kind == "linear":
        return "fc"
    return o.name.strip("_")


@dataclass
class Block:
    """One residual block (or, in a plain network, one module's group of convolutions).

    Attributes:
        index: 0-based position in the network.
        name: the module path of the block (where its addition ran), e.g. ``"layer2.0"``.
        branch: the residual branch's nodes in order.
        shortcut: the shortcut's nodes in order (empty for an identity).
        post: what runs after the addition and before the next block (normally the ReLU).
        add: the addition node; ``None`` where no addition was seen.
        in_shape, out_shape: the block's input and output shapes.
    """

    index: int
    name: str
    branch: list[Op]
    shortcut: list[Op]
    post: list[Op]
    add: Op | None
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    additions_seen: bool = True  # False in a trace recorded with hooks alone

    @property
    def convs(self) -> list[Op]:
        return [o for o in self.branch if o.kind == "conv"]

    @property
    def stride(self) -> int:
        if len(self.in_shape) < 4 or len(self.out_shape) < 4 or not self.out_shape[-1]:
            return 1
        return max(1, round(self.in_shape[-1] / self.out_shape[-1]))

    @property
    def kind(self) -> str:
        """``"basic"`` (3x3, 3x3), ``"bottleneck"`` (1x1, 3x3, 1x1), or the kernel sizes joined."""
        kernels = [o.attrs.get("kernel", (0,))[0] for o in self.convs]
        if kernels == [3, 3]:
            return "basic"
        if kernels == [1, 3, 1]:
            return "bottleneck"
        return "-".join(f"{k}x{k}" for k in kernels) or "no conv"

    @property
    def strided_conv(self) -> int | None:
        """Position on the branch of the convolution that carries the block's stride."""
        for i, o in enumerate(self.convs):
            if max(o.attrs.get("stride", (1,))) > 1:
                return i
        return None

    def pattern(self) -> tuple[str, ...]:
        """The branch's order of layers, e.g. ``("conv", "norm", "act", "conv", "norm")``."""
        return tuple(o.kind for o in self.branch if o.kind in ("conv", "norm", "act", "dropout"))

    def post_pattern(self) -> tuple[str, ...]:
        return tuple(o.kind for o in self.post if o.kind in ELEMENTWISE)

    def shortcut_kind(self) -> str:
        """``"none"`` (no addition), ``"identity"``, ``"projection"``, ``"zero-pad"``, ``"other"``, or
        ``"unknown"`` (hooks alone saw no projection, and cannot see an addition)."""
        if self.add is None:
            if any(o.kind == "conv" for o in self.shortcut):
                return "projection"
            return "none" if self.additions_seen else "unknown"
        kinds = {o.kind for o in self.shortcut} - set(PASSTHROUGH)
        if not kinds:
            return "identity"
        if "conv" in kinds:
            return "projection"
        if kinds & {"pad", "cat"}:
            return "zero-pad"
        return "other"

    def shortcut_detail(self) -> str:
        """How the shortcut is built, in words: ``"1x1 conv/2 + BatchNorm2d"``, ``"slice ::2 + pad 8+8"``."""
        parts = []
        for o in self.shortcut:
            if o.kind == "conv":
                k, s = o.attrs.get("kernel", (1,))[0], max(o.attrs.get("stride", (1,)))
                parts.append(f"{k}x{k} conv/{s}" + (" +bias" if o.attrs.get("bias") else ""))
            elif o.kind == "norm":
                parts.append(o.name)
            elif o.kind == "pool":
                k, st = _square(o.attrs.get("kernel")), _square(o.attrs.get("stride"))
                parts.append(f"{pool_name(o)}(k={k}, s={st if st is not None else k})")
            elif o.kind == "slice":
                parts.append(f"slice {o.attrs.get('index', '')}")
            elif o.kind in ("pad", "cat", "act", "resize"):
                parts.append(o.name)
        return " + ".join(parts) or "identity"


@dataclass
class Stage:
    """Consecutive blocks with the same output shape."""

    blocks: list[Block]

    @property
    def width(self) -> int:
        return self.blocks[-1].out_shape[1]

    @property
    def size(self) -> int:
        return self.blocks[-1].out_shape[-1]

    @property
    def stride(self) -> int:
        return self.blocks[0].stride


@dataclass
class Structure:
    """A network read from its trace."""

    trace: Trace
    stem: list[Op]
    blocks: list[Block]
    head: list[Op]
    params: int
    residual: bool
    notes: list[str] = field(default_factory=list)

    @property
    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        for b in self.blocks:
            if stages and stages[-1].blocks[-1].out_shape == b.out_shape:
                stages[-1].blocks.append(b)
            else:
                stages.append(Stage([b]))
        return stages

    @property
    def stem_convs(self) -> list[Op]:
        return [o for o in self.stem if o.kind == "conv"]

    @property
    def stem_reduction(self) -> int:
        """How much the stem shrinks the input (1 for the CIFAR stem, 4 for the ImageNet one)."""
        first = self.blocks[0].in_shape if self.blocks else (self.stem[-1].shape if self.stem else ())
        if len(first) < 4 or not first[-1]:
            return 1
        return max(1, round(self.trace.input_shape[-1] / first[-1]))

    @property
    def linears(self) -> list[Op]:
        return [o for o in self.head if o.kind == "linear"]

    @property
    def num_classes(self) -> int | None:
        return self.trace.ops[self.trace.output].shape[-1] if self.trace.ops[self.trace.output].shape else None

    @property
    def depth(self) -> int:
        """Weighted layers on the main path, as the paper counts them (stem convs + branch convs + fc)."""
        return len(self.stem_convs) + sum(len(b.convs) for b in self.blocks) + len(self.linears)

    def ops(self, kind: str) -> list[Op]:
        """Every node of ``kind`` on the main path, shortcuts included."""
        every = self.stem + [o for b in self.blocks for o in (*b.branch, *b.shortcut, *b.post)] + self.head
        return [o for o in every if o.kind == kind]

    def head_pool(self) -> str:
        """How the head pools: ``"avg"``, ``"max"``, ``"none"`` (features flattened as they are)."""
        for o in self.head:
            if o.kind in ("pool", "reduce"):
                return "max" if "max" in o.name else "avg"
            if o.kind == "linear":
                break
        return "none"

    def summary(self) -> str:
        """One line: ``stem conv3x3/1 16 | [9, 9, 9] basic, widths 16/32/64 at 32/16/8 px | ...``."""
        stem = " + ".join(_stem_part(o) for o in self.stem if o.kind in ("conv", "pool")) or "none"
        stages = self.stages
        kinds = sorted({b.kind for b in self.blocks})
        body = (
            f"{[len(s.blocks) for s in stages]} {'/'.join(kinds)} blocks, widths "
            f"{'/'.join(str(s.width) for s in stages)} at {'/'.join(str(s.size) for s in stages)} px"
            if stages
            else "no blocks"
        )
        counts: dict[str, int] = {}
        for b in self.blocks:
            counts[b.shortcut_kind()] = counts.get(b.shortcut_kind(), 0) + 1
        shortcuts = ", ".join(f"{n} {k}" for k, n in counts.items()) or "none"
        head = " + ".join(_head_part(o) for o in self.head if o.kind in ("pool", "reduce", "linear", "dropout"))
        return f"stem {stem} | {body} | shortcuts: {shortcuts} | head {head or 'none'} | {self.params:,} params"


def _stem_part(o: Op) -> str:
    k = o.attrs.get("kernel")
    k = k[0] if isinstance(k, tuple) else k
    s = o.attrs.get("stride")
    s = s[0] if isinstance(s, tuple) else s
    if o.kind == "conv":
        return f"conv{k}x{k}/{s} {o.attrs.get('out')}"
    return f"{o.name.replace('2d', '').lower()} {k}/{s}"


def _head_part(o: Op) -> str:
    if o.kind == "linear":
        return f"fc {o.attrs.get('in', '?')}->{o.attrs.get('out', o.shape[-1])}"
    if o.kind == "dropout":
        return f"dropout {o.attrs.get('p')}"
    return "max-pool" if "max" in o.name else "avg-pool"


def _fork(ops: list[Op], a: int, b: int) -> tuple[int, set[int], set[int]]:
    """The latest node both ``a`` and ``b`` descend from, and the nodes only ``a`` / only ``b`` reach back to.

    Nodes are visited latest first, so each node's mark is complete when it is reached: the first
    node marked from both sides is the fork.
    """
    marks: dict[int, int] = {a: 1}
    marks[b] = marks.get(b, 0) | 2
    heap = [-i for i in marks]
    heapq.heapify(heap)
    only: dict[int, set[int]] = {1: set(), 2: set()}
    while heap:
        i = -heapq.heappop(heap)
        mark = marks[i]
        if mark == 3:
            return i, only[1], only[2]
        only[mark].add(i)
        for j in ops[i].inputs:
            if j not in marks:
                heapq.heappush(heap, -j)
            marks[j] = marks.get(j, 0) | mark
    return 0, only[1], only[2]


def _is_merge(ops: list[Op], o: Op) -> bool:
    if o.kind != "add" or len(o.inputs) != 2 or len(o.shape) != 4:
        return False
    return all(ops[i].shape == o.shape for i in o.inputs)


def _residual_blocks(trace: Trace, live: set[int]) -> tuple[list[Op], list[Block], list[Op]]:
    ops = trace.ops
    merges = []
    for o in ops:
        if o.index in live and _is_merge(ops, o):
            fork, side_a, side_b = _fork(ops, *o.inputs)
            convs_a = sum(ops[i].kind == "conv" for i in side_a)
            convs_b = sum(ops[i].kind == "conv" for i in side_b)
            branch, shortcut = (
                (side_a, side_b) if (convs_a, len(side_a)) >= (convs_b, len(side_b)) else (side_b, side_a)
            )
            merges.append((o, fork, branch, shortcut))
    inner = {i for _, _, branch, shortcut in merges for i in branch | shortcut}
    merges = [m for m in merges if m[0].index not in inner]  # an addition inside another block's branch
    blocks = []
    for k, (add, fork, branch, shortcut) in enumerate(merges):
        end = merges[k + 1][1] if k + 1 < len(merges) else None
        if end is None:  # the last block keeps the elementwise layers that follow its addition
            after = sorted(i for i in live if i > add.index)
            post_idx = []
            for i in after:
                if ops[i].kind in PASSTHROUGH:  # e.g. the nn.Identity drop inside timm's BatchNormAct2d
                    continue
                if ops[i].kind not in ELEMENTWISE or ops[i].kind == "dropout":
                    break
                post_idx.append(i)
        else:
            post_idx = sorted(i for i in live if add.index < i <= end)
        blocks.append(
            Block(
                index=k,
                name=add.module,
                branch=[ops[i] for i in sorted(branch)],
                shortcut=[ops[i] for i in sorted(shortcut)],
                post=[ops[i] for i in post_idx],
                add=add,
                in_shape=ops[fork].shape,
                out_shape=ops[post_idx[-1]].shape if post_idx else add.shape,
            )
        )
    stem = [ops[i] for i in sorted(live) if 0 < i <= merges[0][1]]
    last = blocks[-1].post[-1].index if blocks[-1].post else blocks[-1].add.index
    head = [ops[i] for i in sorted(live) if i > last]
    return stem, blocks, head


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _unit_paths(convs: list[Op]) -> dict[int, str]:
    """The module path of the unit each convolution belongs to: its parent, or higher while that holds one conv
    (so ``layer2.0.downsample.0`` belongs to ``layer2.0``, beside ``layer2.0.conv1``)."""
    paths = [c.module for c in convs]

    def count(prefix: str) -> int:
        return sum(p.startswith(prefix + ".") for p in paths)

    units = {}
    for c in convs:
        key = _parent(c.module)
        while key and count(key) < 2:
            key = _parent(key)
        units[c.index] = key
    return units


def _split(group: list[Op]) -> list[list[Op]]:
    """One unit per convolution, each with the layers that follow it."""
    units: list[list[Op]] = []
    for o in group:
        if o.kind == "conv" or not units:
            units.append([])
        units[-1].append(o)
    return units


def _grouped_blocks(trace: Trace, live: set[int]) -> tuple[list[Op], list[Block], list[Op]]:
    """Units of a network without additions: the first convolution is the stem; the convolutions of one
    module form a unit (one unit per convolution where a module holds more than a block's four)."""
    ops = [trace.ops[i] for i in sorted(live) if i > 0]
    convs = [o for o in ops if o.kind == "conv"]
    if len(convs) < 2:  # no block at all: the head starts at the first pooling or classifier after the convs
        after = convs[0].index if convs else 0
        start = next((o.index for o in ops if o.index > after and o.kind in ("pool", "reduce", "linear")), None)
        return [o for o in ops if start is None or o.index < start], [], [o for o in ops if start and o.index >= start]
    units = _unit_paths(convs[1:])
    stem = [o for o in ops if o.index < convs[1].index]
    groups: list[tuple[str, list[Op]]] = []
    for o in ops[len(stem) :]:
        key = groups[-1][0] if groups else ""
        if o.kind == "conv" and key != units[o.index]:
            groups.append((units[o.index], [o]))
        elif o.kind in ("linear", "pool", "reduce") and o.module != key and not o.module.startswith(key + "."):
            groups.append((_parent(o.module), [o]))
        else:
            groups[-1][1].append(o)
    last = max(i for i, (_, g) in enumerate(groups) if any(o.kind == "conv" for o in g))
    head = [o for _, g in groups[last + 1 :] for o in g]
    blocks: list[Block] = []
    for name, group in groups[: last + 1]:
        parts = [group] if sum(o.kind == "conv" for o in group) <= 4 else _split(group)
        for part in parts:
            blocks.append(_unit(len(blocks), part, trace, name if len(parts) == 1 else part[0].module))
    return stem, blocks, head


def _unit(index: int, nodes: list[Op], trace: Trace, name: str | None = None) -> Block:
    """A block without a recorded addition; a convolution reading the block's input beside the branch is its
    shortcut."""
    start = trace.ops[nodes[0].inputs[0]] if nodes[0].inputs else nodes[0]
    shortcut = [o for o in nodes[1:] if o.kind == "conv" and start.index in o.inputs]
    if shortcut:
        shortcut += [o for o in nodes if o.kind == "norm" and shortcut[0].index in o.inputs]
    branch = [o for o in nodes if o not in shortcut]
    name = name if name is not None else _parent(nodes[0].module)
    out_shape = next((o.shape for o in reversed(nodes) if len(o.shape) == 4), nodes[-1].shape)
    return Block(index, name, branch, shortcut, [], None, start.shape, out_shape, trace.method == CAPTURE)


def read_structure(trace: Trace, *, params: int) -> Structure:
    """Read a trace as stem, blocks and head (see the module docstring).

    Args:
        trace: a recorded forward pass.
        params: the model's parameter count (for the summary and the ``param-count`` finding).
    """
    # Hooks alone do not see an in-place addition, so a projection shortcut looks dead: keep every node.
    live = trace.live() if trace.method == CAPTURE else set(range(len(trace.ops)))
    residual = trace.method == CAPTURE and any(_is_merge(trace.ops, trace.ops[i]) for i in live)
    if residual:
        stem, blocks, head = _residual_blocks(trace, live)
    else:
        stem, blocks, head = _grouped_blocks(trace, live)
    _classifier_convs_as_linear(head)
    structure = Structure(trace, stem, blocks, head, params, residual)
    if trace.method != CAPTURE:
        structure.notes.append("blocks grouped by module path: additions are not visible to hooks")
    return structure


def _classifier_convs_as_linear(head: list[Op]) -> None:
    """A 1x1 convolution on globally pooled features is a fully connected layer (timm's ``ClassifierHead``
    with ``use_conv=True``, as in its ResNetV2): it is read as the classifier, not as a convolution."""
    pooled = False
    for o in head:
        if o.kind in ("pool", "reduce") and (len(o.shape) < 4 or o.shape[-2:] == (1, 1)):
            pooled = True
        elif pooled and o.kind == "conv" and tuple(o.attrs.get("kernel", ())) == (1, 1):
            o.kind = "linear"


def describe_ops(ops: list[Op]) -> str:
    """Nodes in words, the same for modules and functions: ``"conv3x3/2 -> bn -> relu -> maxpool"``."""
    kinds = ("conv", "norm", "act", "pool", "reduce", "dropout", "pad", "cat", "slice", "add", "linear")
    return " -> ".join(_word(o) for o in ops if o.kind in kinds)


def as_dict(structure: Structure) -> dict[str, Any]:
    """The structure as JSON-ready data: stem, stages with their blocks, head."""
    return {
        "summary": structure.summary(),
        "stem": describe_ops(structure.stem),
        "stages": [
            {
                "width": s.width,
                "size": s.size,
                "blocks": [
                    {
                        "name": b.name,
                        "kind": b.kind,
                        "stride": b.stride,
                        "branch": describe_ops(b.branch),
                        "shortcut": b.shortcut_kind(),
                        "shortcut_detail": b.shortcut_detail(),
                        "after_add": describe_ops(b.post),
                    }
                    for b in s.blocks
                ],
            }
            for s in structure.stages
        ],
        "head": describe_ops(structure.head),
        "params": structure.params,
        "depth": structure.depth,
    }
