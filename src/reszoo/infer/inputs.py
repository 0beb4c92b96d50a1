"""What a model expects of its inputs: its pre-processing and its class names, from its weights record.

A model loaded by reszoo carries a weights record (``model.pretrained_weights``) that states the
pre-processing it was trained with (mean, std, crop and resize sizes, interpolation) and, where
known, its class names. :func:`input_transform` turns that record into the pre-processing of one
image under one of the paper's test protocols; a model without a record gets the defaults of its
stem (CIFAR or ImageNet). :mod:`reszoo.infer.evaluation` and :mod:`reszoo.infer.prediction` both read images
this way, so a prediction sees exactly what an evaluation sees.

Example:
    >>> import reszoo
    >>> from reszoo.infer.inputs import preprocessing_of
    >>> preprocessing_of(reszoo.create_model("resnet20"))["crop_size"]
    32
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from reszoo.data.constants import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from reszoo.data.transforms import PAPER_TEST_SCALES, eval_transform, model_resize_size, ten_crop_transform
from reszoo.models.resnet import ResNetConfig
from reszoo.utils.checks import check_choice, check_int
from reszoo.utils.choices import EVAL_PROTOCOLS as PROTOCOLS
from reszoo.weights.records import WeightsInfo

__all__ = ["class_names_of", "input_transform", "multi_scale_sizes", "preprocessing_of"]

# ImageNet's 256 -> 224 (resize, then crop): the same proportion at other input sizes.
_RESIZE_RATIO = 256 / 224


def preprocessing_of(model: nn.Module) -> dict[str, Any]:
    """The evaluation pre-processing fields of ``model``: its weights record's, else the defaults per stem.

    Without a record (a model built in Python): a CIFAR-stem net takes the CIFAR-10 statistics at
    its input size, an ImageNet-stem net the ImageNet statistics and a 256 -> 224 resize and
    crop (in proportion at other sizes).

    Returns:
        ``mean``, ``std``, ``crop_size``, ``resize_size`` (``None``: the image as it is),
        ``interpolation``, as :meth:`reszoo.weights.WeightsInfo.preprocessing` gives them.
    """
    w = getattr(model, "pretrained_weights", None)
    if isinstance(w, WeightsInfo):
        return w.preprocessing()
    config = getattr(model, "config", None)
    size = config.image_size if isinstance(config, ResNetConfig) else 224
    cifar = isinstance(config, ResNetConfig) and config.stem == "cifar"
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if cifar else (IMAGENET_MEAN, IMAGENET_STD)
    return _fields(mean, std, size, model_resize_size(size=size, cifar_style=cifar))


def _fields(mean: Sequence[float], std: Sequence[float], crop: int, resize: int | None) -> dict[str, Any]:
    return {"mean": list(mean), "std": list(std), "crop_size": crop, "resize_size": resize, "interpolation": "bilinear"}


def multi_scale_sizes(crop_size: int) -> tuple[int, ...]:
    """The paper's multi-scale test sizes (224, 256, 384, 480, 640 for a 224 crop), in proportion at other sizes."""
    check_int("crop_size", crop_size, minimum=1)
    return tuple(round(s * crop_size / 224) for s in PAPER_TEST_SCALES)


def input_transform(model: nn.Module, *, protocol: str = "center-crop") -> Callable[[Any], torch.Tensor]:
    """The pre-processing of one image (PIL or tensor) for ``model`` under ``protocol``.

    ``"center-crop"``: shorter side resized to the record's ``resize_size`` (to the crop size
    where it has none, as CIFAR records: a 32 x 32 image passes unchanged), centre crop,
    normalise; what ``reszoo.data.transforms.model_eval_transform`` does for image folders.
    ``"ten-crop"``: ten crops ``(10, C, crop, crop)`` from the image resized to ``resize_size``,
    or to 256/224 of the crop where that leaves no room (CIFAR: 37 for 32). ``"multi-scale"``: the
    whole image, normalised (:func:`evaluate` resizes it to each scale).
    """
    check_choice("protocol", protocol, PROTOCOLS)
    p = preprocessing_of(model)
    crop, resize = p["crop_size"], p["resize_size"]
    norm = {"mean": p["mean"], "std": p["std"]}
    if protocol == "ten-crop":
        resize = resize if resize is not None and resize > crop else round(crop * _RESIZE_RATIO)
        return ten_crop_transform(resize_size=resize, crop_size=crop, interpolation=p["interpolation"], **norm)
    if protocol == "multi-scale":
        return eval_transform(crop_size=crop, resize_size=None, **norm)
    return eval_transform(crop_size=crop, resize_size=resize or crop, interpolation=p["interpolation"], **norm)


def class_names_of(model: nn.Module, num_classes: int | None = None) -> tuple[str, ...] | None:
    """The model's class names (its weights record's), or ``None`` where it has none."""
    w = getattr(model, "pretrained_weights", None)
    names = w.class_names if isinstance(w, WeightsInfo) else None
    if names is not None and num_classes is not None and len(names) != num_classes:
        return None  # a record for another head (e.g. the head was replaced after loading)
    return names
