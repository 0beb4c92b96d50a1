"""Evaluate any weights: top-1 / top-5 and per-class accuracy, beside the published figure, with images/s.

:func:`evaluate` runs a model over a test set under one of the paper's test protocols:

- ``"center-crop"``: the model's own evaluation pre-processing (``model.pretrained_weights.transforms()``);
- ``"ten-crop"``: four corners and the centre, and their flips, logits averaged
  (:func:`reszoo.data.transforms.ten_crop_transform`);
- ``"multi-scale"``: the whole image at several shorter-side scales, fully convolutional, logits
  averaged (:func:`reszoo.data.transforms.multi_scale_predict`).

The test set is a torch ``Dataset`` or ``DataLoader`` of your own, or built from a dataset id
(``"cifar10"``, ``"cifar100"``, ``"imagenet"``, ``"folder"``) and a root folder, with the
pre-processing the model's weights record states (:mod:`reszoo.infer.inputs`).
:func:`reszoo.infer.loading.load_for_evaluation` turns a name into a model: a weight entry, an
``hf-hub:`` repo, a folder written by ``save_pretrained`` or a run folder of ``reszoo train``.

Example::

    from reszoo.infer.evaluation import evaluate
    from reszoo.infer.loading import load_for_evaluation
    model = load_for_evaluation("resnet56-cifar10")
    result = evaluate(model, "cifar10", root="data/")
    print(result.top1, result.published)
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from reszoo.data.datasets import cifar_dataset, default_num_workers, imagenet_dataset
from reszoo.data.imagefolder import ImageFiles, scan_folder
from reszoo.data.transforms import multi_scale_predict
from reszoo.errors import InvalidArgumentError
from reszoo.infer.inputs import class_names_of, input_transform, multi_scale_sizes, preprocessing_of
from reszoo.utils.accelerator import accelerator
from reszoo.utils.checks import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_ints,
    check_number,
    check_path,
    type_error,
    value_error,
)
from reszoo.utils.choices import EVAL_DATASETS as DATA_IDS
from reszoo.utils.choices import EVAL_SPLITS as SPLITS
from reszoo.utils.devices import resolve_device
from reszoo.weights.records import Metric, WeightsInfo

__all__ = ["ClassAccuracy", "EvalResult", "evaluate"]


# -- the result -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassAccuracy:
    """One class's share of a test set: its name, how many images, how many the model got right (top-1)."""

    name: str
    images: int
    correct: int

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy on this class, in %."""
        return 100.0 * self.correct / self.images if self.images else 0.0


@dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate` measured, as plain data (:meth:`to_dict` is its JSON form).

    Attributes:
        top1: top-1 accuracy, in % (as published figures are).
        top5: top-5 accuracy in %, or ``None`` for a model with fewer than 5 classes.
        per_class: top-1 per class that has images, in label order.
        images: images evaluated (not crops or scales).
        seconds: wall time of the pass (loading, pre-processing and the model), after set-up.
        images_per_s: ``images / seconds``.
        device: where the model ran.
        protocol: ``"center-crop"``, ``"ten-crop"`` or ``"multi-scale"``.
        weights: the model's weights record name, if it has one.
        published: the weights' published figures for this test set (empty when there are none,
            or when the test set is not the one they were measured on).
        data: what was evaluated (``"cifar10:test"``, ``"folder:val"``, ``"Dataset"``, ...).
    """

    top1: float
    top5: float | None
    per_class: tuple[ClassAccuracy, ...]
    images: int
    seconds: float
    images_per_s: float
    device: str
    protocol: str
    weights: str | None = None
    published: tuple[Metric, ...] = ()
    data: str = "Dataset"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (what ``reszoo evaluate --json`` writes)."""
        return {
            "weights": self.weights,
            "data": self.data,
            "protocol": self.protocol,
            "images": self.images,
            "top1": self.top1,
            "top5": self.top5,
            "published": [vars(m) for m in self.published],
            "per_class": [{**vars(c), "accuracy": c.accuracy} for c in self.per_class],
            "seconds": self.seconds,
            "images_per_s": self.images_per_s,
            "device": self.device,
        }


# -- the test set ---------------------------------------------------------------------------------


def _num_outputs(model: nn.Module) -> int | None:
    fc = getattr(model, "fc", None)
    return fc.out_features if isinstance(fc, nn.Linear) else None


def _held_out(model: nn.Module, val_fraction: Any, seed: Any) -> dict[str, Any]:
    """The held-out share of a one-tree folder and its seed: as given, else the run's, else 0.1 and 0."""
    recipe = getattr(model, "run_recipe", None) or {}  # set by reszoo.infer.loading.load_run
    if val_fraction is None:
        val_fraction = recipe.get("val_fraction", 0.1) if recipe.get("data") == "folder" else 0.1
    if seed is None:
        seed = recipe.get("seed", 0) if recipe.get("data") == "folder" else 0
    return {
        "val_fraction": check_number("val_fraction", val_fraction, minimum=0, maximum=1),
        "seed": check_int("seed", seed, minimum=0),
    }


def _folder_dataset(
    model: nn.Module, root: str, split: str, transform: Callable[[Any], Any], held_out: dict[str, Any]
) -> Dataset:
    """An image folder's split, its labels numbered as the model's classes (by name, where it has
    names: the folder may hold any of them, one or more, in any order)."""
    outputs = _num_outputs(model)
    names = class_names_of(model, outputs)
    if names is not None:
        return ImageFiles(scan_folder(root, split=split, classes=names, subset=True, **held_out), transform=transform)
    found = scan_folder(root, split=split, **held_out)
    if outputs is not None and len(found.classes) != outputs:
        raise InvalidArgumentError(
            f"{root} holds {len(found.classes)} classes ({', '.join(found.classes[:5])}...) but the model "
            f"has {outputs} outputs and no class names to match them by."
        )
    return ImageFiles(found, transform=transform)


def _dataset(model: nn.Module, data: str, root: str, split: str, protocol: str, held_out: dict[str, Any]) -> Dataset:
    """The test set a dataset id names, pre-processed for ``model`` under ``protocol``."""
    transform = input_transform(model, protocol=protocol)
    if data == "folder":
        return _folder_dataset(model, root, split, transform, held_out)
    if data == "imagenet":
        return imagenet_dataset(root, split=split, transform=transform)
    return cifar_dataset(root, name=data, train=split == "train", transform=transform)


def _collate_list(batch: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    # Multi-scale keeps each whole image at its own size; evaluate groups equal sizes into batches.
    return [x for x, _ in batch], torch.as_tensor([y for _, y in batch], dtype=torch.int64)


def _loader(
    dataset: Dataset, *, batch_size: int, num_workers: int | None, limit: int | None, lists: bool
) -> DataLoader:
    if limit is not None and limit < len(dataset):  # type: ignore[arg-type]
        dataset = Subset(dataset, range(limit))
    workers = default_num_workers() if num_workers is None else num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate_list if lists else None,
        pin_memory=torch.cuda.is_available(),
    )


def _published(model: nn.Module, data: Any, split: str | None) -> tuple[Metric, ...]:
    """The weights' published figures, where the test set is the one they were measured on."""
    w = getattr(model, "pretrained_weights", None)
    if not isinstance(w, WeightsInfo):
        return ()
    if isinstance(data, str) and (data != w.dataset or split != SPLITS[data][0]):
        return ()
    return w.metrics


# -- the pass -------------------------------------------------------------------------------------


class _Tally:
    """Top-1, top-5 and per-class counts, kept on the model's device (no sync per batch)."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.images = 0
        self.per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.top5 = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        k = min(5, self.num_classes)
        top = logits.topk(k, dim=1).indices
        hit = top == labels[:, None]
        self.per_class += torch.bincount(labels, minlength=self.num_classes)
        self.correct += torch.bincount(labels[hit[:, 0]], minlength=self.num_classes)
        self.top5 += hit.any(dim=1).sum()
        self.images += labels.shape[0]


def _check_labels(labels: Any, outputs: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise InvalidArgumentError(
            f"The test set must give (images, integer labels) pairs; received labels of type {type(labels).__name__}"
            f"{f' {labels.dtype} shape {tuple(labels.shape)}' if isinstance(labels, torch.Tensor) else ''}."
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= outputs):
        raise InvalidArgumentError(
            f"The test set has label {int(labels.max())} (or below 0) but the model has {outputs} outputs; "
            "is it the model for this data?"
        )
    return labels


def _grouped(fn: Callable[[torch.Tensor], torch.Tensor], images: list[torch.Tensor]) -> torch.Tensor:
    """``fn`` over images of mixed sizes: one call per size, results back in order."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, x in enumerate(images):
        groups[tuple(x.shape)].append(i)
    out: list[torch.Tensor | None] = [None] * len(images)
    for idx in groups.values():
        logits = fn(torch.stack([images[i] for i in idx]))
        for j, i in enumerate(idx):
            out[i] = logits[j]
    return torch.stack(out)  # type: ignore[arg-type]


def _logits(
    model: nn.Module, images: Any, device: torch.device, protocol: str, scales: tuple[int, ...]
) -> torch.Tensor:
    """The model's logits for one batch under ``protocol`` (crops or scales averaged)."""
    if protocol == "multi-scale":
        images = [x.to(device, non_blocking=True) for x in images] if isinstance(images, list) else images.to(device)
        run = lambda x: multi_scale_predict(model, x, scales=scales)  # noqa: E731
        return _grouped(run, images) if isinstance(images, list) else run(images)
    images = images.to(device, non_blocking=True)
    if protocol == "ten-crop":
        if images.ndim != 5:
            raise InvalidArgumentError(
                f"ten_crop needs batches of crops (N, crops, C, H, W); received shape {tuple(images.shape)}. Build "
                "the dataset with reszoo.infer.inputs.input_transform(model, protocol='ten-crop')."
            )
        n, crops = images.shape[:2]
        return model(images.flatten(0, 1)).float().view(n, crops, -1).mean(1)
    return model(images).float()


def _run(
    model: nn.Module, loader: Any, *, device: torch.device, protocol: str, scales: tuple[int, ...], limit: int | None
) -> tuple[_Tally, float]:
    """One pass over ``loader`` (up to ``limit`` images): the counts and the seconds it took, synchronised."""
    tally: _Tally | None = None
    start = time.perf_counter()
    with torch.inference_mode():
        for images, labels in loader:
            logits = _logits(model, images, device, protocol, scales)
            labels = _check_labels(labels, logits.shape[1])
            tally = tally or _Tally(logits.shape[1], device)
            keep = labels.shape[0] if limit is None else limit - tally.images
            tally.add(logits[:keep], labels[:keep].to(device))
            if limit is not None and tally.images >= limit:
                break
    if tally is None or tally.images == 0:
        raise InvalidArgumentError("The test set is empty: there is nothing to evaluate.")
    accelerator(device).synchronize(device)
    return tally, time.perf_counter() - start


# -- evaluate -------------------------------------------------------------------------------------


def _protocol(ten_crop: Any, multi_scale: Any) -> str:
    if check_bool("ten_crop", ten_crop) and check_bool("multi_scale", multi_scale):
        raise InvalidArgumentError("ten_crop and multi_scale are two test protocols; choose one.")
    check_bool("multi_scale", multi_scale)
    return "ten-crop" if ten_crop else "multi-scale" if multi_scale else "center-crop"


def _test_set(
    model: nn.Module, data: Any, *, root: Any, split: Any, protocol: str, held_out: dict[str, Any], **loading: Any
) -> tuple[Any, str, str | None]:
    """(batches, what they are, the split) for ``data``: a DataLoader as it is, else one built for the model."""
    if isinstance(data, (DataLoader, Dataset)):
        if root is not None or split is not None:
            raise InvalidArgumentError(
                "root and split apply to a dataset id; received them with a Dataset or DataLoader."
            )
        if isinstance(data, DataLoader):
            return data, "DataLoader", None
        return _loader(data, lists=False, **loading), "Dataset", None
    if not isinstance(data, str):
        raise type_error("data", data, f"a torch Dataset or DataLoader, or one of {', '.join(DATA_IDS)}")
    check_choice("data", data, DATA_IDS)
    if root is None:
        raise value_error("root", root, f"the folder that holds the {data} data")
    root = check_path("root", root)
    split = check_choice("split", SPLITS[data][0] if split is None else split, SPLITS[data])
    dataset = _dataset(model, data, root, split, protocol, held_out)
    return _loader(dataset, lists=protocol == "multi-scale", **loading), f"{data}:{split}", split


def _class_names(model: nn.Module, loader: Any, num_classes: int) -> tuple[str, ...]:
    """The model's class names, else the test set's (``.classes``, as torchvision's datasets have), else ``class N``."""
    names = class_names_of(model, num_classes)
    dataset = getattr(loader, "dataset", None)
    dataset = dataset.dataset if isinstance(dataset, Subset) else dataset
    names = names or getattr(dataset, "classes", None)
    if names is None or len(names) != num_classes:
        return tuple(f"class {i}" for i in range(num_classes))
    return tuple(str(n) for n in names)


def evaluate(
    model: nn.Module,
    data: Dataset | DataLoader | str,
    *,
    root: str | os.PathLike[str] | None = None,
    split: str | None = None,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    ten_crop: bool = False,
    multi_scale: bool = False,
    scales: Sequence[int] | None = None,
    num_workers: int | None = None,
    limit: int | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
) -> EvalResult:
    """Top-1 / top-5 and per-class accuracy of ``model`` on a test set, with its throughput.

    Args:
        model: a classifier (a reszoo ResNet's weights record gives the pre-processing, class names
            and published figures); run in eval mode on ``device``, its training mode put back after.
        data: a ``Dataset`` of (image tensor, label) or a ``DataLoader`` of batches, already
            pre-processed; or ``"cifar10"``, ``"cifar100"``, ``"imagenet"`` (a folder with
            ``val/<wnid>/``) or ``"folder"`` (an image folder, :mod:`reszoo.data.imagefolder`), read
            from ``root`` with the model's own pre-processing (:func:`input_transform`).
        root: the data's folder (dataset ids only).
        split: ``"test"``/``"train"`` for CIFAR, ``"val"``/``"train"`` for ImageNet,
            ``"val"``/``"train"``/``"all"`` for a folder; default: the first.
        batch_size: images per batch (dataset ids and Datasets).
        device: ``None``/``"auto"``: the best device present.
        ten_crop: the 10-crop test (corners, centre and their flips; logits averaged).
        multi_scale: the paper's fully-convolutional multi-scale test (logits averaged over scales).
        scales: the shorter-side sizes of the multi-scale test; default :func:`multi_scale_sizes`.
        num_workers: DataLoader workers (``None``: ``reszoo.data.datasets.default_num_workers()``).
        limit: evaluate the first ``limit`` images only (a quick check).
        val_fraction: ``"folder"`` in one tree (no ``train/``/``val/``): the held-out share of each
            class that ``split="val"`` reads. ``None``: the run's own when the model comes from a
            run folder trained on that folder (:func:`reszoo.infer.loading.load_run`), else 0.1.
        seed: the held-out draw's seed, likewise (``None``: the run's, else 0).

    Returns:
        An :class:`EvalResult` (accuracies in %, the published figures beside them).

    Raises:
        InvalidArgumentError, ArgumentTypeError: bad arguments; a folder whose classes are not
            the model's; labels outside the model's outputs.
        MissingInputError: the data is not in ``root``.

    Example::

        result = evaluate(load_for_evaluation("resnet20-cifar10"), "cifar10", root="data/")
        print(f"{result.top1:.2f}% (published {result.published[0].value}%)")
    """
    check_instance("model", model, nn.Module, what="a torch.nn.Module (e.g. reszoo.load_pretrained(name))")
    protocol = _protocol(ten_crop, multi_scale)
    loading = _loading(batch_size, num_workers, limit)
    scales = check_ints("scales", scales, minimum=1, optional=True) or multi_scale_sizes(
        preprocessing_of(model)["crop_size"]
    )
    device = resolve_device(device)
    held_out = _held_out(model, val_fraction, seed)
    loader, label, split = _test_set(
        model, data, root=root, split=split, protocol=protocol, held_out=held_out, **loading
    )
    was_training = model.training
    model.eval().to(device)
    try:
        tally, seconds = _run(model, loader, device=device, protocol=protocol, scales=scales, limit=limit)
    finally:
        model.train(was_training)
    return _result(
        model,
        tally,
        seconds,
        names=_class_names(model, loader, tally.num_classes),
        device=device,
        protocol=protocol,
        published=_published(model, data, split),
        label=label,
    )


def _loading(batch_size: Any, num_workers: Any, limit: Any) -> dict[str, Any]:
    return {
        "batch_size": check_int("batch_size", batch_size, minimum=1),
        "num_workers": check_int("num_workers", num_workers, minimum=0, optional=True),
        "limit": check_int("limit", limit, minimum=1, optional=True),
    }


def _result(
    model: nn.Module,
    tally: _Tally,
    seconds: float,
    *,
    names: tuple[str, ...],
    device: torch.device,
    protocol: str,
    published: tuple[Metric, ...],
    label: str,
) -> EvalResult:
    """The counts of a pass as an :class:`EvalResult` (accuracies in %)."""
    w = getattr(model, "pretrained_weights", None)
    counts, correct = tally.per_class.tolist(), tally.correct.tolist()
    return EvalResult(
        top1=100.0 * sum(correct) / tally.images,
        top5=100.0 * int(tally.top5) / tally.images if tally.num_classes >= 5 else None,
        per_class=tuple(
            ClassAccuracy(names[i], n, ok) for i, (n, ok) in enumerate(zip(counts, correct, strict=True)) if n
        ),
        images=tally.images,
        seconds=seconds,
        images_per_s=tally.images / seconds if seconds > 0 else float("inf"),
        device=str(device),
        protocol=protocol,
        weights=w.name if isinstance(w, WeightsInfo) else None,
        published=published,
        data=label,
    )
