"""Data findings: normalisation, augmentation in training and evaluation, and the input size.

The reference is reszoo's own pre-processing for the reference's dataset
(:func:`reszoo.data.transforms.cifar_train_transform` and friends), read with the same code as the
user's pipelines, so the expected padding, flip, crop size and constants are reszoo's values.
"""

from __future__ import annotations

from typing import Any

from reszoo.data.constants import DATASETS
from reszoo.diagnosis.findings import Finding
from reszoo.diagnosis.pipeline import Pipeline, read_pipeline
from reszoo.diagnosis.reference import Reference

TOLERANCE = 2e-3  # constants are often written with 3-4 digits (0.201 for 0.2010)
# The raw image a dataset hands to its transform: CIFAR's 32x32; a typical ImageNet photo (H, W).
_RAW = {"cifar": (32, 32), "imagenet": (375, 500)}


def _known_constants(reference: Reference) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Constants people use, each with what it is: the data's, other datasets', the per-image-std variant."""
    from reszoo.weights.catalog import get_weights

    known = {f"{d.id}'s statistics": (d.mean, d.std) for d in DATASETS.values()}
    # The often-copied CIFAR-10 std (0.2023, 0.1994, 0.2010) is the mean of per-image stds
    # (kuangliu/pytorch-cifar#16); reszoo records it with the weights trained on it.
    known["CIFAR-10's mean with the per-image std 0.2023/0.1994/0.2010"] = (
        get_weights("resnet20-cifar10-b").mean,
        get_weights("resnet20-cifar10-b").std,
    )
    known["0.5/0.5 (the PyTorch tutorial's)"] = ((0.5,) * 3, (0.5,) * 3)
    known["no normalisation (inputs in [0, 1])"] = ((0.0,) * 3, (1.0,) * 3)
    return known


def _close(a: tuple, b: tuple, tol: float = TOLERANCE) -> bool:
    return len(a[0]) == len(b[0]) and all(
        abs(x - y) <= tol for u, v in zip(a, b, strict=True) for x, y in zip(u, v, strict=True)
    )


def _values(p: Pipeline | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if p is None:
        return None
    return p.effective or p.normalize


def _name(values: tuple, known: dict[str, tuple]) -> str | None:
    return next((name for name, v in known.items() if _close(values, v)), None)


def _fmt(values: tuple) -> str:
    return f"mean {tuple(round(v, 4) for v in values[0])}, std {tuple(round(v, 4) for v in values[1])}"


def normalization_findings(
    train: Pipeline | None, evaluation: Pipeline | None, reference: Reference, weights: tuple | None
) -> list[Finding]:
    out = []
    tv, ev = _values(train), _values(evaluation)
    data = reference.mean_std
    known = _known_constants(reference)
    fix = f"v2.Normalize({data[0]}, {data[1]}) in both transforms (reszoo.data.constants)"
    if tv and ev and not _close(tv, ev):
        out.append(
            Finding(
                "normalization",
                "error",
                f"Training and evaluation normalise differently: train {_fmt(tv)}, eval {_fmt(ev)}. The network is "
                "tested on inputs shifted from those it was trained on.",
                {"train": tv, "eval": ev},
                "Use the same Normalize in both transforms.",
            )
        )
    values = ev or tv
    if values is None:
        return out
    evidence = {"yours": values, "data": data, "measured_on_probe": bool((evaluation or train).effective)}
    if weights is not None:
        return out + _against_weights(values, weights, evidence)
    name = _name(values, known)
    usual = name is not None or _close(values, data, 0.05)
    if name == f"{reference.dataset}'s statistics" or (usual and out):
        return out  # the data's own, or (train and eval differ) nothing worth a second finding
    if usual:
        return out + [
            Finding(
                "normalization",
                "info",
                f"Your transforms normalise with {name or _fmt(values)}; {reference.dataset}'s own statistics are "
                f"{_fmt(data)}. Used consistently in training and evaluation, BatchNorm absorbs the difference.",
                evidence,
                fix,
            )
        ]
    return out + [
        Finding(
            "normalization",
            "warning",
            f"Your transforms normalise with {_fmt(values)}, far from {reference.dataset}'s statistics "
            f"({_fmt(data)}): normalised pixels are not near mean 0, std 1 (a mean given on the 0-255 scale, or "
            "no scaling to [0, 1]?).",
            evidence,
            fix,
        )
    ]


def _against_weights(values: tuple, weights: tuple, evidence: dict) -> list[Finding]:
    """Pretrained weights expect the constants they were trained with, whatever the data's are."""
    if _close(values, weights):
        return []
    return [
        Finding(
            "normalization",
            "warning",
            f"Your transforms use {_fmt(values)}; the pretrained weights were trained with {_fmt(weights)}, "
            "so every input is shifted from what they expect.",
            {**evidence, "weights": weights},
            f"v2.Normalize({weights[0]}, {weights[1]}), the weights' constants.",
        )
    ]


def _translates(p: Pipeline) -> bool:
    crop = p.crop or {}
    return (
        bool(p.scale_aug)
        or (crop.get("kind") == "RandomCrop" and crop.get("padding", 0) > 0)
        or "RandomAffine" in p.extra
    )


def augmentation_findings(train: Pipeline, ref: Pipeline, reference: Reference) -> list[Finding]:
    missing = []
    if reference.cifar and not _translates(train):
        missing.append(f"a random crop after padding {ref.crop['padding']} pixels (random translation)")
    if not reference.cifar and not train.scale_aug:
        missing.append("scale augmentation (a random-size crop)")
    if train.flip is None:
        missing.append("a random horizontal flip")
    evidence = {"steps": train.steps, "outputs_vary_between_seeds": train.varies}
    out = []
    if missing and not (train.opaque and train.varies):
        out.append(
            Finding(
                "augmentation-missing",
                "warning",
                f"Your training transform ({' -> '.join(train.steps) or 'nothing recognised'}) lacks "
                f"{' and '.join(missing)}; the paper trains with {' -> '.join(ref.steps)}"
                + ("" if train.varies else " (its output did not change over 6 seeds: no random augmentation at all)")
                + ".",
                evidence,
                f"v2.RandomCrop({ref.crop['size']}, padding={ref.crop['padding']}), v2.RandomHorizontalFlip() "
                "(reszoo.data.transforms.cifar_train_transform)"
                if reference.cifar
                else "v2.RandomResizedCrop(224), v2.RandomHorizontalFlip() (reszoo: imagenet_train_transform)",
            )
        )
    out += _differs(train, ref, reference, evidence)
    return out


def _differs(train: Pipeline, ref: Pipeline, reference: Reference, evidence: dict) -> list[Finding]:
    notes = []
    crop, ref_crop = train.crop or {}, ref.crop or {}
    if reference.cifar and crop.get("kind") == "RandomCrop" and crop.get("padding") not in (0, ref_crop.get("padding")):
        notes.append(f"crop padding {crop.get('padding')} instead of {ref_crop.get('padding')}")
    mode = crop.get("padding_mode")
    if reference.cifar and crop.get("padding") and mode not in (None, "constant"):
        notes.append(f"{mode} padding instead of zeros")
    if train.scale_aug and train.scale_aug != ref.scale_aug:
        notes.append(f"{train.scale_aug} instead of {ref.scale_aug or 'a padded random crop'}")
    extra = [e for e in train.extra if e not in ref.extra]
    if extra:
        notes.append(f"extra augmentation: {', '.join(extra)}")
    if train.flip is not None and abs(train.flip - 0.5) > 1e-9:
        notes.append(f"flip probability {train.flip}")
    if not notes:
        return []
    return [
        Finding(
            "augmentation-differs",
            "info",
            f"Your training augmentation differs from the paper's ({' -> '.join(ref.steps)}): {'; '.join(notes)}. "
            "Not a known cause of lower accuracy; it changes what you compare with the paper.",
            {**evidence, "differences": notes},
            "Match the paper's augmentation to reproduce its numbers.",
        )
    ]


def eval_findings(evaluation: Pipeline) -> list[Finding]:
    if not (evaluation.random or evaluation.varies):
        return []
    return [
        Finding(
            "augmentation-in-eval",
            "error",
            f"Your evaluation transform is random ({', '.join(evaluation.random) or 'opaque steps'}"
            + (", and its output changed between seeds" if evaluation.varies else "")
            + "): test accuracy is measured on augmented views and changes from run to run. The paper evaluates "
            "the original image (CIFAR) or a fixed centre crop.",
            {
                "steps": evaluation.steps,
                "random_steps": evaluation.random,
                "outputs_vary_between_seeds": evaluation.varies,
            },
            "Evaluate with ToImage, ToDtype, Normalize only (CIFAR), or Resize + CenterCrop (ImageNet).",
        )
    ]


def size_findings(pipes: dict[str, Pipeline], input_size: Any, reference: Reference) -> list[Finding]:
    expected = reference.image_size
    sizes = {k: p.output_size[-1] for k, p in pipes.items() if p.output_size}
    if input_size is not None:
        sizes["input_size"] = input_size if isinstance(input_size, int) else tuple(input_size)[-1]
    wrong = {k: v for k, v in sizes.items() if v != expected}
    if not wrong:
        return _squashed(pipes.get("eval"), reference)
    size = max(wrong.values())
    message = (
        f"Your model sees {size}x{size} inputs ({', '.join(f'{k} {v}' for k, v in wrong.items())}); "
        f"{reference.name} takes {expected}x{expected}."
    )
    if reference.cifar and size > expected:
        message += (
            f" Resizing CIFAR's 32x32 images to {size} gives the CIFAR network {(size / expected) ** 2:.0f}x the "
            "pixels and compute, last-stage maps of "
            f"{size // 4}x{size // 4} instead of 8x8, and no new detail: the paper feeds the 32x32 image as it is."
        )
    return [
        Finding(
            "input-size",
            "warning",
            message,
            {"sizes": sizes, "reference": expected},
            f"Feed {expected}x{expected} images" + (" (no Resize in a CIFAR pipeline)." if reference.cifar else "."),
        )
    ]


def _squashed(evaluation: Pipeline | None, reference: Reference) -> list[Finding]:
    """An evaluation that resizes to a fixed (H, W) with no crop changes every image's aspect ratio."""
    if evaluation is None or reference.cifar or any(r.startswith("CenterCrop") for r in evaluation.resize):
        return []
    fixed = [r for r in evaluation.resize if r.startswith(("Resize((", "Resize([")) and "," in r]
    if not fixed:
        return []
    return [
        Finding(
            "input-size",
            "info",
            f"Your evaluation resizes every image to a fixed size ({fixed[0]}) without a crop, which changes its "
            "aspect ratio; the reference resizes the shorter side and takes the centre crop.",
            {"steps": evaluation.steps, "resize": evaluation.resize},
            "v2.Resize(256), v2.CenterCrop(224) (reszoo.data.transforms.imagenet_eval_transform).",
        )
    ]


def data_findings(
    reference: Reference,
    *,
    train_transform: Any,
    eval_transform: Any,
    input_size: Any,
    weights: tuple | None,
    notes: list[str],
) -> list[Finding]:
    """Every data finding for the transforms given (and the input size, if given)."""
    raw = _RAW["cifar" if reference.cifar else "imagenet"]
    pipes: dict[str, Pipeline] = {}
    for key, transform in (("train", train_transform), ("eval", eval_transform)):
        if transform is not None:
            pipes[key] = read_pipeline(transform, image_size=raw)
            if pipes[key].error:
                notes.append(f"the {key} transform failed on a {raw[0]}x{raw[1]} probe image: {pipes[key].error}")
    out = normalization_findings(pipes.get("train"), pipes.get("eval"), reference, weights)
    if "train" in pipes:
        out += augmentation_findings(
            pipes["train"], read_pipeline(reference.train_transform(), image_size=raw), reference
        )
    if "eval" in pipes:
        out += eval_findings(pipes["eval"])
    out += size_findings(pipes, input_size, reference)
    return out
