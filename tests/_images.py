"""A tiny real-image data set, drawn with PIL at test time: folders of PNG and JPEG files.

Three classes of simple shapes (``circle``, ``square``, ``triangle``), each drawn at a random
position, size and colour on a random background, so that a small network must learn the shape
(colour says nothing about the class). Every image is a real file that PIL writes and
torchvision/PIL read back, in the ImageFolder layout that ``reszoo train --data folder`` reads:

    root/train/<class>/*.png|*.jpg      layout="split" (also root/val/<class>/...)
    root/<class>/*.png|*.jpg            layout="single" (one tree; the run holds out a share)

Example:
    >>> import tempfile
    >>> root = make_image_folder(tempfile.mkdtemp(), per_class=2, val_per_class=1)
    >>> sorted(p.name for p in (root / "train").iterdir())
    ['circle', 'square', 'triangle']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")


def draw_shape(shape: str, *, size: int = 32, rng: random.Random, mode: str = "RGB") -> Image.Image:
    """One image of ``shape`` ("circle", "square" or "triangle") in PIL ``mode``."""
    if shape not in CLASSES:
        raise ValueError(f"shape must be one of {CLASSES}, received {shape!r}")

    def colour() -> tuple[int, int, int]:
        return tuple(rng.randrange(256) for _ in range(3))  # type: ignore[return-value]

    background = colour()
    fill = colour()
    while sum(abs(a - b) for a, b in zip(fill, background, strict=True)) < 200:  # keep the shape visible
        fill = colour()
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    extent = rng.uniform(0.45, 0.8) * size
    cx = rng.uniform(extent / 2, size - extent / 2)
    cy = rng.uniform(extent / 2, size - extent / 2)
    half = extent / 2
    if shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    else:
        draw.polygon(((cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)), fill=fill)
    return img.convert(mode) if mode != "RGB" else img


def write_images(
    folder: Path,
    shape: str,
    count: int,
    *,
    size: int,
    rng: random.Random,
    formats: Sequence[str] = ("png", "jpg"),
    modes: Sequence[str] = ("RGB",),
    start: int = 0,
) -> list[Path]:
    """``count`` images of ``shape`` in ``folder``, cycling through ``formats`` and PIL ``modes``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        fmt = formats[i % len(formats)]
        mode = modes[i % len(modes)]
        img = draw_shape(shape, size=size, rng=rng, mode=mode)
        if fmt == "jpg" and img.mode not in ("RGB", "L"):
            img = img.convert("RGB")  # JPEG holds no alpha or palette
        path = folder / f"{shape}_{start + i:04d}.{fmt}"
        img.save(path, quality=95) if fmt == "jpg" else img.save(path)
        paths.append(path)
    return paths


def make_image_folder(
    root: str | Path,
    *,
    classes: Sequence[str] = CLASSES,
    per_class: int = 40,
    val_per_class: int = 10,
    size: int = 32,
    layout: str = "split",
    seed: int = 0,
    formats: Sequence[str] = ("png", "jpg"),
    modes: Sequence[str] = ("RGB",),
) -> Path:
    """Write the image set under ``root`` and return ``root``.

    Args:
        root: the folder (created).
        classes: shape names, a subset of :data:`CLASSES`.
        per_class: training images per class (``layout="single"``: all images per class).
        val_per_class: validation images per class (``layout="split"`` only).
        size: image side in pixels.
        layout: ``"split"`` (``train/`` and ``val/``) or ``"single"`` (one tree of class folders).
        seed: the images drawn follow it.
        formats: file formats, cycled (``"png"``, ``"jpg"``).
        modes: PIL modes, cycled (``"RGB"``, ``"L"`` grayscale, ``"RGBA"``, ``"P"`` palette).
    """
    if layout not in ("split", "single"):
        raise ValueError(f"layout must be 'split' or 'single', received {layout!r}")
    root = Path(root)
    rng = random.Random(seed)
    for shape in classes:
        if layout == "single":
            write_images(root / shape, shape, per_class, size=size, rng=rng, formats=formats, modes=modes)
            continue
        write_images(root / "train" / shape, shape, per_class, size=size, rng=rng, formats=formats, modes=modes)
        write_images(
            root / "val" / shape,
            shape,
            val_per_class,
            size=size,
            rng=rng,
            formats=formats,
            modes=modes,
            start=per_class,
        )
    return root


# -- a tiny model of these images ------------------------------------------------------------------

# The normalisation the tiny shapes model says it was trained with (not ImageNet's or CIFAR's, so a
# test sees whether the model's own record is what pre-processing reads).
SHAPES_MEAN, SHAPES_STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def shapes_weights(num_classes: int = 3, **fields):
    """A weights record for the tiny shapes net: the class names and its own normalisation."""
    from reszoo import weights as W

    base = dict(
        name="tiny-shapes",
        arch=None,
        dataset="folder",
        num_classes=num_classes,
        mean=SHAPES_MEAN,
        std=SHAPES_STD,
        crop_size=32,
        categories=CLASSES,
    )
    return W.WeightsInfo(**{**base, **fields})


def shapes_entry(num_classes: int = 3, **fields):
    """A catalog entry for the tiny shapes net (``source=`` says where its file is): what the record says,
    plus the registered architecture and config its weights fit."""
    from conftest import TINY_OVERRIDES
    from reszoo import weights as W

    info = vars(shapes_weights(num_classes=num_classes))
    overrides = tuple({**TINY_OVERRIDES, "num_classes": num_classes}.items())
    return W.Weights(**{**info, "arch": "resnet20", "converter": "reszoo", "config_overrides": overrides, **fields})


def shapes_model(seed: int = 0, num_classes: int = 3, **fields):
    """The tiny resnet20-shaped net with random weights (seeded) and :func:`shapes_weights` attached, eval mode."""
    import torch

    from conftest import TINY_OVERRIDES
    from reszoo import ResNet, ResNetConfig

    torch.manual_seed(seed)
    model = ResNet(ResNetConfig(**TINY_OVERRIDES, num_classes=num_classes)).eval()
    model.pretrained_weights = shapes_weights(num_classes=num_classes, **fields)
    return model
