"""Predict images: the top-k classes of each, with names and probabilities.

:func:`predict` takes image files, folders (searched recursively), glob patterns, PIL images or
tensors, pre-processes them as the model's weights record states (the centre crop of
:func:`reszoo.infer.inputs.input_transform`), runs them in batches and returns one
:class:`Prediction` per image. Class names come from the weights record (CIFAR-10/100 names,
ImageNet's from torchvision's own list, a fine-tuned folder's class names), else ``class N``.

Unreadable files follow the rule of image folders (:mod:`reszoo.data.imagefolder`): a file PIL cannot
read is skipped, with one warning that counts them and names the first three, and the other
images are still predicted; when no image can be read at all, :class:`~reszoo.errors.MissingInputError`
says why. Every image is converted to RGB (grayscale repeated, palette expanded, alpha dropped,
16-bit greyscale scaled to 8 bits: :func:`reszoo.data.imagefiles.to_rgb`).

Example::

    from reszoo.infer.loading import load_for_evaluation
    from reszoo.infer.prediction import predict
    model = load_for_evaluation("resnet50-imagenet")
    for p in predict(model, ["cat.jpg", "photos/"], topk=3):
        print(p.source, p.classes)        # cat.jpg (('tabby', 0.61), ('tiger cat', 0.22), ...)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import PIL.Image
import torch
from torch import nn

from reszoo.data.imagefiles import find_images, load_rgb, to_rgb
from reszoo.errors import InvalidArgumentError, MissingInputError
from reszoo.infer.inputs import class_names_of, input_transform
from reszoo.utils.checks import check_instance, check_int, type_error
from reszoo.utils.devices import resolve_device

__all__ = ["Prediction", "predict"]

_IMAGES = "image paths, folders or glob patterns, PIL images or (C, H, W) / (N, C, H, W) tensors, or a list of them"


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image.

    Attributes:
        source: the image's file path, or its position among the inputs (a PIL image or tensor).
        classes: ``(class name, probability)`` pairs, most probable first.
        indices: the class indices of ``classes`` (the model's outputs).
    """

    source: str | int
    classes: tuple[tuple[str, float], ...]
    indices: tuple[int, ...]

    @property
    def top(self) -> tuple[str, float]:
        """The most probable class and its probability."""
        return self.classes[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"image": ..., "top": [{"class", "index", "probability"}, ...]}``."""
        top = [
            {"class": name, "index": i, "probability": p}
            for (name, p), i in zip(self.classes, self.indices, strict=True)
        ]
        return {"image": self.source, "top": top}


# -- the inputs -------------------------------------------------------------------------------------


def _items(images: Any) -> list[tuple[str | int, Any]]:
    """(source, file path / PIL image / (C, H, W) tensor) for every image the inputs name, in order."""
    if isinstance(images, (str, os.PathLike, PIL.Image.Image, torch.Tensor)):
        images = [images]
    if isinstance(images, (bytes, dict)) or not isinstance(images, Sequence) or not images:
        raise type_error("images", images, _IMAGES)
    items: list[tuple[str | int, Any]] = []
    for position, item in enumerate(images):
        if isinstance(item, (str, os.PathLike)):
            items += [(path, path) for path in find_images([item])]
        elif isinstance(item, PIL.Image.Image):
            items.append((len(items), item))
        elif isinstance(item, torch.Tensor) and item.ndim in (3, 4):
            items += [(len(items) + i, x) for i, x in enumerate(item if item.ndim == 4 else [item])]
        else:
            raise type_error(f"images[{position}]", item, _IMAGES)
    return items


def _rgb(item: Any) -> Any:
    """A PIL image or tensor as an RGB image (files are read by ``load_rgb``)."""
    if isinstance(item, PIL.Image.Image):
        return to_rgb(item)
    if isinstance(item, torch.Tensor):
        if item.shape[0] == 1:
            return item.expand(3, *item.shape[1:])
        if item.shape[0] != 3:
            raise InvalidArgumentError(
                f"A tensor image must have 1 or 3 channels (C, H, W); received shape {tuple(item.shape)}."
            )
        return item
    return load_rgb(item)


def _batches(
    items: list[tuple[str | int, Any]],
    transform: Callable[[Any], torch.Tensor],
    batch_size: int,
    skipped: list[tuple[str | int, MissingInputError]],
) -> Iterator[tuple[list[str | int], torch.Tensor]]:
    """Pre-processed batches of ``batch_size`` readable images; unreadable files go to ``skipped``."""
    for start in range(0, len(items), batch_size):
        sources, tensors = [], []
        for source, item in items[start : start + batch_size]:
            try:
                tensors.append(transform(_rgb(item)))
            except MissingInputError as err:  # load_rgb: the file is gone or PIL cannot decode it
                skipped.append((source, err))
                continue
            sources.append(source)
        if tensors:
            yield sources, torch.stack(tensors)


def _report_skipped(skipped: list[tuple[str | int, MissingInputError]], total: int) -> None:
    """One warning that counts the unreadable files and names three; an error when none could be read."""
    if not skipped:
        return
    if len(skipped) == total:
        others = f" (and {total - 1} more unreadable)" if total > 1 else ""
        raise MissingInputError(f"No image could be read: {skipped[0][1]}{others}")
    names = ", ".join(str(source) for source, _ in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    warnings.warn(f"Skipped {len(skipped)} of {total} images that PIL cannot read: {names}{more}.", stacklevel=3)


# -- predict --------------------------------------------------------------------------------------


def predict(
    model: nn.Module,
    images: Any,
    *,
    topk: int = 5,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> list[Prediction]:
    """The ``topk`` most probable classes of each image, with names and softmax probabilities.

    Args:
        model: a classifier; its weights record (``model.pretrained_weights``) gives the
            pre-processing and the class names (see :func:`reszoo.infer.inputs.input_transform`).
            It runs in eval mode on ``device`` (and stays there); its training mode is put back after.
        images: a path, folder (recursive), glob pattern, PIL image or tensor (uint8, or float in
            [0, 1], not normalised: ``(C, H, W)`` or a batch ``(N, C, H, W)``), or a list of them.
        topk: classes per image (at most the model's classes).
        batch_size: images per forward pass; the results do not depend on it.
        device: ``None``/``"auto"``: the best device present.

    Returns:
        One :class:`Prediction` per readable image, in the order given (a folder's or pattern's
        files sorted).

    Raises:
        MissingInputError: a path or pattern that names no image, or no image that can be read.
        InvalidArgumentError, ArgumentTypeError: bad arguments.

    Example::

        [p.top for p in predict(model, "photos/*.jpg", topk=1)]
    """
    check_instance("model", model, nn.Module, what="a torch.nn.Module (e.g. reszoo.load_pretrained(name))")
    topk = check_int("topk", topk, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    device = resolve_device(device)
    items = _items(images)
    transform = input_transform(model)
    was_training = model.training
    model.eval().to(device)
    skipped: list[tuple[str | int, MissingInputError]] = []
    out: list[Prediction] = []
    try:
        with torch.inference_mode():
            for sources, batch in _batches(items, transform, batch_size, skipped):
                probs = model(batch.to(device)).float().softmax(dim=1)
                out += _top(model, sources, probs, topk)
    finally:
        model.train(was_training)
    _report_skipped(skipped, len(items))
    return out


def _top(model: nn.Module, sources: list[str | int], probs: torch.Tensor, topk: int) -> list[Prediction]:
    names = class_names_of(model, probs.shape[1]) or tuple(f"class {i}" for i in range(probs.shape[1]))
    values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [
        Prediction(
            source=source,
            classes=tuple((names[i], p) for i, p in zip(idx, val, strict=True)),
            indices=tuple(idx),
        )
        for source, idx, val in zip(sources, indices.cpu().tolist(), values.cpu().tolist(), strict=True)
    ]
