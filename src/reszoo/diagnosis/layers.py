"""Layer findings: the order of convolution, norm and activation in each block, which norm and
activation run, convolution biases before a norm, and dropout."""

from __future__ import annotations

from collections import Counter

from reszoo.diagnosis.architecture import aligned
from reszoo.diagnosis.findings import Finding
from reszoo.diagnosis.reference import Reference
from reszoo.diagnosis.structure import PASSTHROUGH, Block, Structure, act_name, norm_name
from reszoo.diagnosis.trace import Op

_SHORT = {"conv": "conv", "norm": "bn", "act": "relu", "dropout": "dropout"}
_ENDS = ("conv", "add", "cat", "linear", "pool", "reduce")


def order_text(b: Block) -> str:
    """A block's order in words: ``conv-bn-relu-conv-bn | add | relu``."""
    branch = "-".join(_SHORT[k] for k in b.pattern())
    post = "-".join(_SHORT[k] for k in b.post_pattern())
    return f"{branch} | add" + (f" | {post}" if post else "")


def _without_norms(pattern: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in pattern if k != "norm")


def _difference(u: Block, r: Block) -> str | None:
    up, rp, upost, rpost = u.pattern(), r.pattern(), u.post_pattern(), r.post_pattern()
    if (up, upost) == (rp, rpost):
        return None
    if up[:1] == ("norm",) and rp[:1] == ("conv",):
        return "pre-activation order (norm and ReLU before each convolution)"
    if u.kind != r.kind:
        return None  # another block type: block-type says so, the orders are not comparable
    if _without_norms(up) == _without_norms(rp) and upost == rpost:
        return None  # only norms are missing: norm-missing says so
    if up[-1:] == ("act",) and rp[-1:] == ("norm",):
        if "act" not in upost and "act" in rpost:
            return "ReLU moved from after the addition onto the branch, before it"
        return "ReLU on the branch before the addition"
    if "act" not in upost and "act" in rpost:
        return "no ReLU after the addition"
    if "act" in upost and "act" not in rpost:
        return "a ReLU after the addition"
    return "another order"


def order_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    if not (user.residual and ref.residual):
        return []  # without additions there is no "before" or "after" the addition to compare
    pairs = [(u, r, _difference(u, r)) for u, r in aligned(user, ref)]
    differing = [(u, r, d) for u, r, d in pairs if d is not None]
    if not differing:
        return []
    kinds = Counter(d for _, _, d in differing)
    u, r, d = differing[0]
    return [
        Finding(
            "activation-order",
            "warning",
            f"{len(differing)} of your {len(user.blocks)} blocks run {order_text(u)} ({d}); {reference.name}'s run "
            f"{order_text(r)}: the paper's block is F(x) + x followed by the second ReLU (Fig. 2).",
            {
                "blocks": [b.name for b, _, _ in differing[:6]],
                "yours": order_text(u),
                "reference": order_text(r),
                "kinds": dict(kinds),
            },
            "out = bn2(conv2(relu(bn1(conv1(x))))); out = relu(out + shortcut(x)): no ReLU on the branch after bn2.",
        )
    ]


def activation_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    yours = Counter(act_name(o) for o in user.ops("act"))
    theirs = Counter(act_name(o) for o in ref.ops("act"))
    other = {k: n for k, n in yours.items() if k not in theirs}
    if not other:
        return []
    return [
        Finding(
            "activation-type",
            "warning",
            f"Your network uses {', '.join(f'{k} ({n}x)' for k, n in yours.items())}; {reference.name} uses "
            f"{', '.join(theirs) or 'none'}.",
            {"yours": dict(yours), "reference": dict(theirs)},
            f"Use {'/'.join(theirs) or 'ReLU'} (nn.ReLU(inplace=True)).",
        )
    ]


def _consumers(ops: list[Op]) -> dict[int, list[Op]]:
    out: dict[int, list[Op]] = {}
    for o in ops:
        for i in o.inputs:
            out.setdefault(i, []).append(o)
    return out


def _normed(conv: Op, consumers: dict[int, list[Op]], ops: list[Op]) -> bool:
    """A norm runs on the convolution's output before the next convolution, addition or pooling, or
    (pre-activation) on its input, through activations."""
    seen, todo = set(), [conv.index]
    while todo:
        for nxt in consumers.get(todo.pop(), []):
            if nxt.kind == "norm":
                return True
            if nxt.kind not in _ENDS and nxt.index not in seen:
                seen.add(nxt.index)
                todo.append(nxt.index)
    before = conv.inputs[0] if conv.inputs else None
    while before is not None and ops[before].kind in ("act", "dropout", *PASSTHROUGH):
        before = ops[before].inputs[0] if ops[before].inputs else None
    return before is not None and ops[before].kind == "norm"


def norm_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    out = []
    uc, rc = _consumers(user.trace.ops), _consumers(ref.trace.ops)
    bare = [c for c in user.ops("conv") if not _normed(c, uc, user.trace.ops)]
    ref_bare = [c for c in ref.ops("conv") if not _normed(c, rc, ref.trace.ops)]
    if len(bare) > len(ref_bare):
        out.append(
            Finding(
                "norm-missing",
                "warning",
                f"{len(bare)} of your {len(user.ops('conv'))} convolutions have no norm after them; {reference.name} "
                f"normalises {'every one' if not ref_bare else f'all but {len(ref_bare)}'} (BN right after each "
                "convolution, before the activation).",
                {
                    "convs_without_norm": [c.module or c.name for c in bare[:8]],
                    "count": len(bare),
                    "reference_count": len(ref_bare),
                },
                "Follow each convolution with nn.BatchNorm2d(out_channels).",
            )
        )
    yours = Counter(norm_name(o) for o in user.ops("norm"))
    theirs = Counter(norm_name(o) for o in ref.ops("norm"))
    if yours and set(yours) - set(theirs):
        out.append(
            Finding(
                "norm-type",
                "warning",
                f"Your network normalises with {', '.join(f'{k} ({n}x)' for k, n in yours.items())}; "
                f"{reference.name} with {', '.join(theirs)}.",
                {"yours": dict(yours), "reference": dict(theirs)},
                "Use nn.BatchNorm2d.",
            )
        )
    biased = [c for c in user.ops("conv") if c.attrs.get("bias") and _normed(c, uc, user.trace.ops)]
    if biased:
        out.append(
            Finding(
                "conv-bias",
                "info",
                f"{len(biased)} of your convolutions have a bias and a BatchNorm right after: BN subtracts the "
                f"batch mean, so the bias has no effect ({sum(c.attrs.get('out', 0) for c in biased):,} parameters "
                f"that do nothing); {reference.name}'s convolutions have none.",
                {
                    "convs": [c.module or c.name for c in biased[:8]],
                    "count": len(biased),
                    "parameters_difference": sum(c.attrs.get("out", 0) for c in biased),
                },
                "nn.Conv2d(..., bias=False) before a BatchNorm.",
            )
        )
    return out


def dropout_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    drops = [o for o in user.ops("dropout") if (o.attrs.get("p") or 0) > 0]
    if not drops or ref.ops("dropout"):
        return []
    return [
        Finding(
            "dropout",
            "warning",
            f"Your network has {len(drops)} dropout layers (p = {sorted({o.attrs.get('p') for o in drops})}); "
            f"{reference.name} has none: the paper uses no dropout, BN regularises.",
            {"where": [o.module or o.name for o in drops[:8]], "p": sorted({o.attrs.get("p") for o in drops})},
            "Remove the dropout layers.",
        )
    ]
