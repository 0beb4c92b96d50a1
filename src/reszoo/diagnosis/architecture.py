"""Architecture findings: the user's network read from its trace, set beside the reference's.

Blocks are aligned stage by stage (block ``j`` of stage ``i`` with block ``j`` of the reference's
stage ``i``), so one difference (a projection shortcut, a ReLU before the addition) is reported
once with every block it affects, not once per block.
"""

from __future__ import annotations

from collections import Counter

from reszoo.diagnosis.findings import Finding
from reszoo.diagnosis.reference import Reference
from reszoo.diagnosis.structure import Block, Structure, describe_ops
from reszoo.diagnosis.trace import CAPTURE

# Parameter-free ways of taking every second pixel: the same function.
_STRIDED_SUBSAMPLE = ("slice", "avg_pool2d(k=1")


def aligned(user: Structure, ref: Structure) -> list[tuple[Block, Block]]:
    """Blocks paired stage by stage (by position overall when the stage counts differ)."""
    us, rs = user.stages, ref.stages
    if len(us) != len(rs):
        return list(zip(user.blocks, ref.blocks, strict=False))
    return [pair for u, r in zip(us, rs, strict=True) for pair in zip(u.blocks, r.blocks, strict=False)]


def _names(blocks: list[Block], limit: int = 6) -> list[str]:
    names = [b.name or f"block {b.index}" for b in blocks]
    return names[:limit] + ([f"... ({len(names) - limit} more)"] if len(names) > limit else [])


def stem_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    ur, rr = user.stem_reduction, ref.stem_reduction
    yours, theirs = describe_ops(user.stem), describe_ops(ref.stem)
    size = user.trace.input_shape[-1]
    evidence = {
        "yours": yours,
        "reference": theirs,
        "reduction": ur,
        "reference_reduction": rr,
        "first_block_input": f"{size // ur}x{size // ur}",
        "reference_first_block_input": f"{size // rr}x{size // rr}",
        "last_feature_map": _last_map(user),
        "reference_last_feature_map": _last_map(ref),
    }
    width = ref.stem_convs[0].attrs.get("out") if ref.stem_convs else 16
    if reference.cifar and ur > rr:
        return [
            Finding(
                "stem-imagenet-on-cifar",
                "error",
                f"Your stem ({yours}) shrinks {size}x{size} images {ur}x before the first block, so the last stage "
                f"works on {_last_map(user)} maps. The paper's CIFAR networks start with one 3x3 convolution, "
                f"stride 1, and no pooling (maps of 32, 16 and 8 pixels; section 4.2).",
                evidence,
                f"nn.Conv2d(3, {width}, kernel_size=3, stride=1, padding=1, bias=False) as the stem, and no max-pool.",
            )
        ]
    if ur != rr:
        return [
            Finding(
                "stem-mismatch",
                "warning",
                f"Your stem ({yours}) reduces the input {ur}x; {reference.name}'s ({theirs}) reduces it {rr}x.",
                evidence,
                f"Build the stem as {reference.name}'s: {theirs}.",
            )
        ]
    shape = [(o.kind, o.attrs.get("kernel"), o.attrs.get("stride")) for o in user.stem if o.kind in ("conv", "pool")]
    ref_shape = [(o.kind, o.attrs.get("kernel"), o.attrs.get("stride")) for o in ref.stem if o.kind in ("conv", "pool")]
    if _normalise(shape) != _normalise(ref_shape):
        return [
            Finding(
                "stem-mismatch",
                "info",
                f"Your stem ({yours}) is built differently from {reference.name}'s ({theirs}), with the same "
                f"overall stride {ur}.",
                evidence,
                f"Nothing to fix if intended (e.g. a deep stem, 'ResNet-C'); {reference.name} uses {theirs}.",
            )
        ]
    return []


def _normalise(parts: list[tuple]) -> list[tuple]:
    def one(v):
        return v[0] if isinstance(v, (tuple, list)) and v else v

    return [(k, one(a), one(b)) for k, a, b in parts]


def _last_map(s: Structure) -> str:
    if not s.blocks:
        return "?"
    h = s.blocks[-1].out_shape[-1]
    return f"{h}x{h}"


def stage_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    """``block-type``, ``depth-mismatch``, ``width-mismatch``, ``stage-stride``."""
    return (
        _block_type(user, ref, reference)
        + _depth(user, ref, reference)
        + _width(user, ref, reference)
        + _stage_sizes(user, ref, reference)
    )


def _block_type(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    kinds, ref_kinds = sorted({b.kind for b in user.blocks}), sorted({b.kind for b in ref.blocks})
    if not (user.residual and ref.residual) or kinds == ref_kinds:
        return []
    return [
        Finding(
            "block-type",
            "error",
            f"Your blocks are {'/'.join(kinds)}; {reference.name}'s are {'/'.join(ref_kinds)}.",
            {"yours": kinds, "reference": ref_kinds, "convs_per_block": sorted({len(b.convs) for b in user.blocks})},
            f"Use {'/'.join(ref_kinds)} blocks, as {reference.name} (basic: 3x3, 3x3; bottleneck: 1x1, 3x3, 1x1 x4).",
        )
    ]


def _depth(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    # Residual networks are compared in blocks; a plain one (or against one) in convolutions per stage.
    blocks = user.residual and ref.residual
    unit = "blocks" if blocks else "convolutions"

    def per_stage(s: Structure) -> list[int]:
        return [len(st.blocks) if blocks else sum(len(b.convs) for b in st.blocks) for st in s.stages]

    depths, ref_depths = per_stage(user), per_stage(ref)
    if depths == ref_depths:
        return []
    return [
        Finding(
            "depth-mismatch",
            "error",
            f"Your network has {depths} {unit} per stage (depth {user.depth} as the paper counts); "
            f"{reference.name} has {ref_depths} (depth {ref.depth}).",
            {f"{unit}_per_stage": depths, "reference": ref_depths, "depth": user.depth, "reference_depth": ref.depth},
            f"Build {ref_depths} {unit} per stage.",
        )
    ]


def _width(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    widths, ref_widths = [s.width for s in user.stages], [s.width for s in ref.stages]
    stem, ref_stem = [o.attrs.get("out") for o in user.stem_convs][:1], [o.attrs.get("out") for o in ref.stem_convs][:1]
    if widths == ref_widths and stem == ref_stem:
        return []
    return [
        Finding(
            "width-mismatch",
            "error",
            f"Your stages output {widths} channels (stem {stem}); {reference.name}'s output {ref_widths} "
            f"(stem {ref_stem}).",
            {"widths": widths, "reference": ref_widths, "stem": stem, "reference_stem": ref_stem},
            f"Use widths {ref_widths} and a stem of {ref_stem} filters.",
        )
    ]


def _stage_sizes(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    sizes, ref_sizes = [s.size for s in user.stages], [s.size for s in ref.stages]
    if user.stem_reduction != ref.stem_reduction or len(sizes) != len(ref_sizes) or sizes == ref_sizes:
        return []  # another stem or stage count: their own findings say so
    strides, ref_strides = [s.stride for s in user.stages], [s.stride for s in ref.stages]
    return [
        Finding(
            "stage-stride",
            "warning",
            f"Your stages work on {sizes}-pixel maps; {reference.name}'s on {ref_sizes} (strides {strides} vs "
            f"{ref_strides}).",
            {"sizes": sizes, "reference": ref_sizes, "strides": strides, "reference_strides": ref_strides},
            "Stride 1 in the first stage, stride 2 in the first block of each later stage.",
        )
    ]


def _projection_params(block: Block) -> int:
    n = 0
    for o in block.shortcut:
        if o.kind == "conv":
            k = o.attrs.get("kernel", (1, 1))
            n += o.attrs["in"] * o.attrs["out"] // o.attrs.get("groups", 1) * k[0] * k[-1] + o.attrs["out"] * bool(
                o.attrs.get("bias")
            )
        elif o.kind == "norm" and len(o.shape) > 1:
            n += 2 * o.shape[1]
    return n


def shortcut_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    if ref.residual and not user.residual:
        if not all(b.additions_seen for b in user.blocks) and user.blocks:
            return []  # hooks alone: additions are invisible, nothing can be said
        return [
            Finding(
                "shortcut-missing",
                "error",
                f"No addition of two paths runs in your network: it is a plain network. {reference.name} adds a "
                f"shortcut in each of its {len(ref.blocks)} blocks (the paper's plain nets train worse as they "
                "deepen).",
                {"additions": 0, "reference_additions": len(ref.blocks)},
                "End each block with out = relu(out + shortcut(x)).",
            )
        ]
    if user.residual and not ref.residual:
        return [
            Finding(
                "shortcut-extra",
                "warning",
                f"Your network adds shortcuts in {len(user.blocks)} blocks; {reference.name} is a plain network.",
                {"additions": len(user.blocks), "reference_additions": 0},
                f"Remove the shortcuts, or compare with the residual counterpart of {reference.name}.",
            )
        ]
    return _shortcut_kinds(aligned(user, ref), reference)


def _shortcut_kinds(pairs: list[tuple[Block, Block]], reference: Reference) -> list[Finding]:
    def kind(b: Block) -> str:
        return b.shortcut_kind()

    projected = [(u, r) for u, r in pairs if kind(u) == "projection" and kind(r) != "projection"]
    padded = [(u, r) for u, r in pairs if kind(u) in ("zero-pad", "other") and kind(r) == "projection"]
    variants = [
        (u, r) for u, r in pairs if kind(u) == kind(r) != "identity" and shortcut_variant(u) != shortcut_variant(r)
    ]
    return _projected(projected, reference) + _padded(padded, reference) + _variants(variants, reference)


def _pair_evidence(pairs: list[tuple[Block, Block]]) -> dict:
    return {
        "blocks": _names([u for u, _ in pairs]),
        "yours": pairs[0][0].shortcut_detail(),
        "reference": pairs[0][1].shortcut_detail(),
    }


def _projected(pairs: list[tuple[Block, Block]], reference: Reference) -> list[Finding]:
    if not pairs:
        return []
    kinds = Counter(r.shortcut_kind() for _, r in pairs)
    zero_pad = bool(kinds.get("zero-pad"))
    option = "parameter-free (option A: subsample, zero-pad the new channels)" if zero_pad else "identity"
    return [
        Finding(
            "shortcut-projection",
            "warning",
            f"{len(pairs)} of your shortcuts are projections ({pairs[0][0].shortcut_detail()}); {reference.name}'s "
            f"are {option} there ({', '.join(f'{n} {k}' for k, n in kinds.items())}).",
            {**_pair_evidence(pairs), "parameters_difference": sum(_projection_params(u) for u, _ in pairs)},
            "Use F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)) where the shape changes, the identity elsewhere."
            if zero_pad
            else "Use the identity where input and output shapes match.",
        )
    ]


def _padded(pairs: list[tuple[Block, Block]], reference: Reference) -> list[Finding]:
    if not pairs:
        return []
    return [
        Finding(
            "shortcut-zero-pad",
            "warning",
            f"{len(pairs)} of your shortcuts are parameter-free ({pairs[0][0].shortcut_detail()}) where "
            f"{reference.name} projects ({pairs[0][1].shortcut_detail()}); option B beats A on ImageNet "
            "(Table 3: 24.52% vs 25.03% top-1 error for ResNet-34).",
            {**_pair_evidence(pairs), "parameters_difference": -sum(_projection_params(r) for _, r in pairs)},
            "nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=s, bias=False), nn.BatchNorm2d(c_out)) where the shape "
            "changes.",
        )
    ]


def _variants(pairs: list[tuple[Block, Block]], reference: Reference) -> list[Finding]:
    if not pairs:
        return []
    theirs = pairs[0][1].shortcut_detail()
    return [
        Finding(
            "shortcut-variant",
            "info",
            f"{len(pairs)} shortcuts are built as {pairs[0][0].shortcut_detail()}; {reference.name} builds them as "
            f"{theirs}. Same option, another operation.",
            _pair_evidence(pairs),
            f"Nothing to fix if intended; {reference.name} uses {theirs}.",
        )
    ]


def shortcut_variant(b: Block) -> tuple:
    """What matters in how a shortcut is built: the subsampling and the convolution, not where zeros go."""
    parts = []
    for part in b.shortcut_detail().split(" + "):
        if part.startswith(_STRIDED_SUBSAMPLE) or part in ("pad", "cat", "identity"):
            parts.append("strided" if part.startswith(_STRIDED_SUBSAMPLE) else "zeros")
        elif "norm" in part.lower():
            parts.append("norm")
        else:
            parts.append(part)
    return tuple(sorted(set(parts)))


def stride_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    pairs = [
        (u, r)
        for u, r in aligned(user, ref)
        if u.stride > 1 and r.stride > 1 and u.kind == r.kind and u.strided_conv != r.strided_conv
    ]
    if not pairs:
        return []
    u, r = pairs[0]

    def where(b: Block) -> str:
        if b.strided_conv is None:
            return "no convolution of the branch (the stride comes from elsewhere)"
        k = b.convs[b.strided_conv].attrs.get("kernel", (0,))[0]
        return f"the {_ordinal(b.strided_conv)} convolution ({k}x{k})"

    message = (
        f"In {len(pairs)} downsampling blocks your stride is on {where(u)}; {reference.name} puts it on {where(r)}."
    )
    if u.kind == "bottleneck":
        v = "v1, the paper's" if u.strided_conv == 0 else "v1.5, torchvision's"
        message += (
            f" Yours is ResNet {v} layout; v1.5 (stride on the 3x3) is about 0.5% top-1 better and ~5-10% slower "
            "(NVIDIA DeepLearningExamples), and all released ImageNet weights use it."
        )
    return [
        Finding(
            "stride-placement",
            "warning",
            message,
            {
                "blocks": _names([u for u, _ in pairs]),
                "yours": describe_ops(u.branch),
                "reference": describe_ops(r.branch),
            },
            f"Give the stride to {where(r)} of each downsampling block"
            + (" (stride_in_1x1=False in reszoo)." if u.kind == "bottleneck" and r.strided_conv == 1 else "."),
        )
    ]


def _ordinal(i: int) -> str:
    return ("first", "second", "third", "fourth")[i] if i < 4 else f"#{i + 1}"


def head_findings(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    out = []
    yours, theirs = describe_ops(user.head), describe_ops(ref.head)
    evidence = {"yours": yours, "reference": theirs}
    pool, linears = user.head_pool(), user.linears
    # Hooks alone do not see a functional pooling (F.avg_pool2d, x.mean): only a trace can say there is none.
    if pool != ref.head_pool() and user.trace.method == CAPTURE:
        inputs = linears[0].attrs.get("in") if linears else None
        words = {"none": "flattens the feature map without pooling", "max": "max-pools", "avg": "average-pools"}
        out.append(
            Finding(
                "head-mismatch",
                "warning",
                f"Your head {words[pool]} ({yours}; the classifier takes {inputs} inputs); {reference.name} "
                f"average-pools globally and classifies the {ref.blocks[-1].out_shape[1] if ref.blocks else '?'} "
                "channels.",
                {**evidence, "classifier_inputs": inputs},
                "nn.AdaptiveAvgPool2d(1), torch.flatten(x, 1), then one nn.Linear.",
            )
        )
    if len(linears) > len(ref.linears):
        out.append(
            Finding(
                "head-mismatch",
                "warning",
                f"Your head has {len(linears)} fully connected layers ({yours}); {reference.name} has "
                f"{len(ref.linears)} (no hidden layer, no dropout).",
                {**evidence, "linears": [(o.attrs.get("in"), o.attrs.get("out")) for o in linears]},
                "One nn.Linear(channels, classes) after the global average pool.",
            )
        )
    out += _softmax(user, evidence)
    if user.num_classes != ref.num_classes:
        out.append(
            Finding(
                "head-mismatch",
                "info",
                f"Your classifier has {user.num_classes} outputs; {reference.name} has {ref.num_classes}.",
                {**evidence, "classes": user.num_classes, "reference_classes": ref.num_classes},
                "Nothing to fix if your dataset has that many classes.",
            )
        )
    return out


def _softmax(user: Structure, evidence: dict) -> list[Finding]:
    """A network that ends in softmax: with nn.CrossEntropyLoss (which applies log-softmax itself) it trains
    on softmax twice; log_softmax is right only with nn.NLLLoss."""
    ends = [o for o in user.head if o.kind == "softmax"]
    if not ends:
        return []
    log = ends[-1].name.lower().replace("_", "") == "logsoftmax"
    return [
        Finding(
            "head-mismatch",
            "info" if log else "warning",
            f"Your network ends in {ends[-1].name}; the paper's ends in the fully connected layer (the softmax "
            "is in the loss). "
            + (
                "With log_softmax use nn.NLLLoss, not nn.CrossEntropyLoss."
                if log
                else "With nn.CrossEntropyLoss, a softmax in the model squashes the logits and slows training."
            ),
            {**evidence, "ends_with": ends[-1].name},
            "Return the logits and train with nn.CrossEntropyLoss.",
        )
    ]


def param_findings(user: Structure, ref: Structure, reference: Reference, explained: int) -> list[Finding]:
    """``param-count``: the difference, with the part other findings explain (projections, biases)."""
    fc_in = ref.linears[-1].attrs.get("in", 0) if ref.linears else 0
    expected = ref.params + ((user.num_classes or 0) - (ref.num_classes or 0)) * (fc_in + 1)
    diff = user.params - expected
    if diff == 0:
        return []
    unexplained = diff - explained
    severity = "warning" if abs(unexplained) > 0.01 * expected else "info"
    return [
        Finding(
            "param-count",
            severity,
            f"Your model has {user.params:,} parameters; {reference.name} has {expected:,}"
            + (f" (with your {user.num_classes} classes)" if user.num_classes != ref.num_classes else "")
            + f": {diff:+,} ({diff / expected:+.2%})"
            + (f", of which {explained:+,} come from the findings above." if explained else "."),
            {
                "yours": user.params,
                "reference": expected,
                "difference": diff,
                "relative": round(diff / expected, 5),
                "explained_by_other_findings": explained,
            },
            "Follow the other findings; the count then matches.",
        )
    ]
