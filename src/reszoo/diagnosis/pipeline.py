"""Pre-processing read two ways: by looking inside the pipeline, and by running it on probe images.

Inspection walks ``Compose`` / ``RandomApply`` / ``nn.Sequential`` pipelines of torchvision's
v1 and v2 transforms (and reszoo's, which are v2) and names what it finds by class: crops and
their padding, flips, ``Normalize`` and its constants, resizes, other augmentations. Probes
work on any callable, opaque lambdas included: the output size of a probe image at the
dataset's size; whether outputs change between seeds (random augmentation); and the
normalisation actually applied, solved from a black and a white image (``out = (x - mean) / std``
at x = 0 and 1). The caller's random state is put back afterwards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import nn

from reszoo.errors import ArgumentTypeError

# Class names of random augmentations beyond crop and flip (torchvision v1/v2, reszoo).
EXTRA_AUGMENTATIONS = (
    "ColorJitter",
    "AutoAugment",
    "RandAugment",
    "TrivialAugmentWide",
    "AugMix",
    "RandomErasing",
    "RandomRotation",
    "RandomAffine",
    "RandomPerspective",
    "GaussianBlur",
    "RandomGrayscale",
    "RandomVerticalFlip",
    "PCALighting",
    "RandomPhotometricDistort",
    "RandomEqualize",
    "RandomInvert",
    "RandomPosterize",
    "RandomSolarize",
    "RandomAdjustSharpness",
    "RandomAutocontrast",
    "ElasticTransform",
)
CROPS = ("RandomCrop", "RandomResizedCrop", "RandomZoomOut", "RandomIoUCrop")
# Steps that change colours, so a constant probe image no longer reads the normalisation.
COLOUR = (
    "ColorJitter",
    "AutoAugment",
    "RandAugment",
    "TrivialAugmentWide",
    "AugMix",
    "PCALighting",
    "RandomGrayscale",
    "RandomPhotometricDistort",
    "RandomErasing",
    "RandomEqualize",
    "RandomInvert",
    "RandomPosterize",
    "RandomSolarize",
    "RandomAdjustSharpness",
    "RandomAutocontrast",
)


# Other libraries' classes that do what a torchvision transform does, read as that transform (timm's
# create_transform builds these).
ALIASES = {
    "RandomResizedCropAndInterpolation": "RandomResizedCrop",
    "ResizeKeepRatio": "Resize",
    "CenterCropOrPad": "CenterCrop",
    "MaybeToTensor": "ToTensor",
}


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) and value else value


def _padding(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (list, tuple)):
        return int(max(value)) if value else 0
    return int(value)


@dataclass
class Pipeline:
    """What inspection found in a transform, plus what the probes measured."""

    steps: list[str] = field(default_factory=list)
    crop: dict[str, Any] | None = None
    scale_aug: str | None = None  # the scale augmentation's class (RandomResizedCrop, RandomShortestSize, ...)
    flip: float | None = None
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    random: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    resize: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    output_size: tuple[int, ...] | None = None
    varies: bool | None = None
    effective: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    error: str | None = None

    @property
    def colour(self) -> bool:
        return any(s in COLOUR for s in self.steps)


def _children(t: Any) -> list[Any] | None:
    if isinstance(t, nn.Sequential):
        return list(t.children())
    inner = getattr(t, "transforms", None)
    if isinstance(inner, (list, tuple, nn.ModuleList)):
        return list(inner)
    return None


def _walk(t: Any, p: Pipeline, *, prob: float = 1.0) -> None:
    children = _children(t)
    name = type(t).__name__
    if children is not None:
        chance = float(getattr(t, "p", 1.0)) if name == "RandomApply" else 1.0
        if name in ("RandomApply", "RandomChoice", "RandomOrder"):
            p.random.append(name)
        for c in children:
            _walk(c, p, prob=prob * chance)
        return
    p.steps.append(name)
    _read_step(ALIASES.get(name, name), t, p, prob)


def _read_step(name: str, t: Any, p: Pipeline, prob: float) -> None:
    chance = float(getattr(t, "p", 1.0)) * prob
    if name in ("RandomShortestSize", "RandomResize"):  # a random resize before the crop: scale augmentation
        p.random.append(name)
        p.scale_aug = name
    elif name in CROPS:
        p.random.append(name)
        if name != "RandomCrop":
            p.scale_aug = name
        size = getattr(t, "size", None) or getattr(t, "min_size", None)
        padding = _padding(getattr(t, "padding", None)) + (p.crop or {}).get("pre_pad", 0)  # a Pad before counts
        p.crop = {
            "kind": name,
            "size": _first(size),
            "padding": padding,
            "padding_mode": getattr(t, "padding_mode", None),
            "scale": getattr(t, "scale", None),
        }
    elif name == "Pad":
        p.crop = {"kind": "Pad", "pre_pad": _padding(getattr(t, "padding", None))}
    elif name == "RandomHorizontalFlip":
        if chance > 0:
            p.flip = chance
            p.random.append(name)
    elif name == "Normalize":
        p.normalize = (tuple(float(v) for v in t.mean), tuple(float(v) for v in t.std))
    elif name == "ImageClassification":  # torchvision's weights.transforms(): resize, centre crop, normalise
        p.resize += [f"Resize({t.resize_size})", f"CenterCrop({t.crop_size})"]
        p.normalize = (tuple(float(v) for v in t.mean), tuple(float(v) for v in t.std))
    elif name in ("Resize", "CenterCrop", "FiveCrop", "TenCrop"):
        p.resize.append(f"{name}({getattr(t, 'size', '')})")
    elif name in EXTRA_AUGMENTATIONS:
        if chance > 0:
            p.extra.append(name)
            p.random.append(name)
    elif name in ("Lambda",) or (not name[:1].isupper() and callable(t)):
        p.opaque.append(name if name != "Lambda" else f"Lambda({getattr(getattr(t, 'lambd', None), '__name__', '?')})")
    elif name.startswith("Random"):
        p.random.append(name)


def probe_image(size: tuple[int, int], *, value: int | None = None) -> PIL.Image.Image:
    """A deterministic RGB probe (H, W): gradients and noise, or one constant ``value``."""
    h, w = size
    if value is not None:
        return PIL.Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) % 256], -1).astype(np.int64)
    img = np.clip(img + rng.integers(-20, 21, size=img.shape), 0, 255).astype(np.uint8)
    return PIL.Image.fromarray(img)


def apply(transform: Any, image: PIL.Image.Image) -> torch.Tensor:
    """The transform's output for a PIL image (or, if it refuses PIL, for the image as a uint8 tensor)."""
    try:
        out = transform(image)
    except Exception:
        tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        out = transform(tensor)
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ArgumentTypeError(
            f"the transform returned {type(out).__name__}, not a tensor (is ToTensor/ToImage missing?)"
        )
    out = out.as_subclass(torch.Tensor)
    return out[0] if out.ndim == 4 else out


def seeded(transform: Any, image: PIL.Image.Image, seeds: range) -> list[torch.Tensor]:
    """The outputs for each seed of torch's, Python's and NumPy's generators, which are put back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    outs = []
    try:
        with torch.random.fork_rng(devices=[]):
            for s in seeds:
                torch.manual_seed(s)
                random.seed(s)
                np.random.seed(s)
                outs.append(apply(transform, image))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return outs


def _effective(transform: Any, size: tuple[int, int]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """mean and std as applied, from the centre pixel of a black and a white image."""
    black = seeded(transform, probe_image(size, value=0), range(1))[0]
    white = seeded(transform, probe_image(size, value=255), range(1))[0]
    if not black.is_floating_point() or black.ndim != 3:
        return None
    h, w = black.shape[-2] // 2, black.shape[-1] // 2
    b, wt = black[:, h, w].double(), white[:, h, w].double()
    if bool((wt - b).abs().min() < 1e-12):
        return None
    std = 1 / (wt - b)
    mean = -b * std
    return tuple(round(float(v), 4) + 0.0 for v in mean), tuple(round(float(v), 4) + 0.0 for v in std)


def read_pipeline(transform: Any, *, image_size: tuple[int, int]) -> Pipeline:
    """Inspect ``transform`` and probe it with images of ``image_size`` (the dataset's raw (H, W))."""
    p = Pipeline()
    _walk(transform, p)
    try:
        outs = seeded(transform, probe_image(image_size), range(6))
        p.output_size = tuple(outs[0].shape)
        p.varies = any(o.shape != outs[0].shape or not torch.equal(o, outs[0]) for o in outs[1:])
        if not p.colour:
            p.effective = _effective(transform, image_size)
    except Exception as err:
        p.error = f"{type(err).__name__}: {err}"
    return p
