"""The batch streams a training run reads: synthetic, CIFAR on the device, ImageNet, image folders, your data.

:func:`make_batches` turns a :class:`~reszoo.train.recipes.Recipe` into a :class:`Batches`: an endless,
resumable stream of training batches and a finite pass over the evaluation set, both already on
the device and in the run's memory format, sharded over the processes of a distributed run. The
data seen at an iteration depends only on ``(seed, epoch, iteration)``, so a resumed run reads
exactly what an uninterrupted one would have read. For a ``Dataset`` (an image folder, or one
given to ``fit``) that holds for the random augmentation too: each sample is augmented under a
random state fixed by ``(seed, epoch, index)`` (``reszoo.data.datasets.SeededSamples``), and a resume
starts the epoch's sampler at its position without loading the batches before it.

Example:
    >>> task = SyntheticTask(num_classes=10, image_shape=(3, 8, 8), seed=0)
    >>> x, y = task.batch(0, 4)
    >>> tuple(x.shape), tuple(y.shape)
    ((4, 3, 8, 8), (4,))
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.data.constants import NUM_CLASSES
from reszoo.errors import InvalidArgumentError
from reszoo.train.recipes import Recipe
from reszoo.utils.checks import check_int, check_ints, check_number
from reszoo.weights.records import WeightsInfo

Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = ["Batches", "SyntheticTask", "data_weights", "make_batches", "model_classes"]


class SyntheticTask:
    """A learnable synthetic classification task generated on the fly on the device.

    Each class has a fixed smooth random pattern (4x4 noise upsampled to the image size, drawn from
    ``seed``); an image is its class's pattern plus Gaussian noise of std ``noise``. Batch ``i`` of
    rank ``r`` is a pure function of ``(seed, i, r)``, so a resumed run sees exactly the same data.

    Args:
        num_classes: classes.
        image_shape: ``(C, H, W)``.
        seed: seed of the patterns and the samples.
        noise: noise standard deviation (the patterns have unit variance).
        device: where batches are made.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        image_shape: tuple[int, int, int],
        seed: int = 0,
        noise: float = 1.0,
        device: Any = "cpu",
    ) -> None:
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.image_shape = check_ints("image_shape", image_shape, length=3, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self.noise = check_number("noise", noise, minimum=0)
        self.device = torch.device(device)
        c, h, w = self.image_shape
        g = torch.Generator().manual_seed(seed)
        coarse = torch.randn(num_classes, c, 4, 4, generator=g)
        patterns = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        patterns = patterns / patterns.flatten(1).std(dim=1).view(-1, 1, 1, 1)
        self.patterns = patterns.to(self.device)
        self._generator = torch.Generator(device=self.device)  # reseeded per batch, made once

    def batch(self, index: int, batch_size: int, *, stream: int = 0) -> Batch:
        """Batch number ``index`` of ``stream`` (rank for training; evaluation uses its own streams)."""
        g = self._generator
        # Plain arithmetic, not hash(): the same batches on every Python version and platform.
        g.manual_seed(((self.seed * 1_000_003 + stream + 1) * 2_147_483_647 + index) % 2**63)
        y = torch.randint(0, self.num_classes, (batch_size,), generator=g, device=self.device)
        noise = torch.randn((batch_size, *self.image_shape), generator=g, device=self.device)
        return self.patterns.index_select(0, y) + self.noise * noise, y


@dataclass
class Batches:
    """The data of a run.

    Attributes:
        train: ``train(start)`` yields the training batches from iteration ``start`` on, forever.
        evaluate: ``evaluate()`` yields this process's share of the evaluation set, once; None
            when there is no evaluation set.
        num_classes: classes of the dataset (None where unknown: a dataset of your own).
        per_epoch: training batches per epoch (None for the endless synthetic stream).
        classes: class names (an image folder's).
        recipe: the recipe with what the data decides filled in: ``mean``/``std`` of a folder,
            ``iterations`` from ``epochs``.
    """

    train: Callable[[int], Iterator[Batch]]
    evaluate: Callable[[], Iterator[Batch]] | None
    num_classes: int | None
    per_epoch: int | None = None
    classes: tuple[str, ...] | None = None
    recipe: Recipe = field(default_factory=Recipe)


def model_classes(model: nn.Module) -> int:
    """How many classes ``model`` predicts: its ``fc`` layer's outputs, else ``model.config.num_classes``."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc.out_features
    config = getattr(model, "config", None)
    if config is None:
        raise InvalidArgumentError(f"Cannot tell how many classes {type(model).__name__} predicts (no .fc or .config).")
    return config.num_classes


def make_batches(
    recipe: Recipe,
    model: nn.Module,
    *,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    channels_last: bool = False,
    train_data: Any = None,
    eval_data: Any = None,
) -> Batches:
    """The batch streams of ``recipe`` for ``model`` on ``device``, this process's shard of them.

    Reads (or downloads, with ``recipe.download``) the dataset now, so a missing dataset is an
    error before a run writes anything.

    Args:
        recipe: what to read (``data``, ``data_root``, batch sizes, seed).
        model: the model, for its class count and (synthetic data, folders) its input size.
        device: where batches are delivered.
        rank: this process's rank.
        world: number of processes (``recipe.batch_size`` is split over them).
        channels_last: deliver batches in channels-last memory format.
        train_data: ``data="custom"``: a map-style ``Dataset`` or a ``DataLoader`` of ``(images, labels)``.
        eval_data: ``data="custom"``: the same for evaluation, or None (no evaluation).

    Returns:
        A :class:`Batches`; its ``recipe`` has ``mean``/``std`` (folders) and ``iterations``
        (from ``epochs``) filled in.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    where = dict(device=device, rank=rank, world=world, fmt=fmt)
    if recipe.data == "synthetic":
        batches = _synthetic(recipe, model, device=device, rank=rank, world=world, fmt=fmt)
    elif recipe.data in ("cifar10", "cifar100"):
        batches = _cifar(recipe, device=device, rank=rank, world=world, channels_last=channels_last)
    elif recipe.data == "imagenet":
        batches = _imagenet(recipe, device=device, world=world, fmt=fmt)
    elif recipe.data == "folder":
        batches = _folder(recipe, model, **where)
    else:
        batches = _custom(recipe, train_data, eval_data, **where)
    _check_classes(recipe, model, batches)
    # A folder's recipe gains the mean/std it was read with; every recipe gains iterations from epochs.
    batches.recipe = _with_epochs(batches.recipe if recipe.data == "folder" else recipe, batches.per_epoch)
    return batches


def _with_epochs(recipe: Recipe, per_epoch: int | None) -> Recipe:
    if recipe.epochs is None:
        return recipe
    if per_epoch is None:
        raise InvalidArgumentError(
            f"epochs needs a training set of known size; data={recipe.data!r} is an endless stream: set iterations."
        )
    return recipe.replace(iterations=recipe.epochs * per_epoch, epochs=None)


def _check_classes(recipe: Recipe, model: nn.Module, batches: Batches) -> None:
    if batches.num_classes is None or batches.num_classes == model_classes(model):
        return
    names = f" ({', '.join(batches.classes)})" if batches.classes else ""
    where = f"the folder {recipe.data_root}" if recipe.data == "folder" else "the training data"
    raise InvalidArgumentError(
        f"{where} has {batches.num_classes} classes{names} but the model predicts {model_classes(model)}; "
        f"build it with num_classes={batches.num_classes}"
        + (" (reszoo train sets it from the folder)." if recipe.data == "folder" else ".")
    )


def _synthetic(
    recipe: Recipe, model: nn.Module, *, device: torch.device, rank: int, world: int, fmt: torch.memory_format
) -> Batches:
    config = getattr(model, "config", None)
    task = SyntheticTask(
        num_classes=model_classes(model),
        image_shape=config.input_size if config is not None else (3, 32, 32),
        seed=recipe.seed,
        noise=recipe.synthetic_noise,
        device=device,
    )
    per_rank = recipe.batch_size // world

    def train(start: int) -> Iterator[Batch]:
        for it in itertools.count(start):
            x, y = task.batch(it, per_rank, stream=rank)
            yield x.contiguous(memory_format=fmt), y

    def evaluate() -> Iterator[Batch]:
        # Rank r takes evaluation chunks r, r + world, ...: every image is counted exactly once.
        size, total = recipe.eval_batch_size, recipe.synthetic_eval_images
        for i in range(rank, math.ceil(total / size), world):
            x, y = task.batch(i, min(size, total - i * size), stream=-1)
            yield x.contiguous(memory_format=fmt), y

    return Batches(train, evaluate, task.num_classes, per_epoch=None)


def _cifar(recipe: Recipe, *, device: torch.device, rank: int, world: int, channels_last: bool) -> Batches:
    from reszoo.data import datasets as rdata
    from reszoo.data import transforms as rt

    images, labels = rdata.load_cifar_tensors(recipe.data_root, name=recipe.data, train=True, download=recipe.download)
    if recipe.val_split:
        from torch.utils.data import TensorDataset

        tr, va = rdata.paper_split(TensorDataset(labels), seed=recipe.seed)
        test_images, test_labels = images[va.indices], labels[va.indices]
        images, labels = images[tr.indices], labels[tr.indices]
    else:
        test_images, test_labels = rdata.load_cifar_tensors(recipe.data_root, name=recipe.data, train=False)
    # The whole set lives on the device and is augmented a batch at a time there, so a GPU run is
    # not bound by DataLoader workers (CIFAR is 150 MB as uint8).
    mean, std = rt.normalization(recipe.data)
    common = dict(mean=mean, std=std, seed=recipe.seed, device=device, channels_last=channels_last)
    common.update(rank=rank, world_size=world)
    train_loader = rdata.DeviceCifarLoader(images, labels, batch_size=recipe.batch_size // world, train=True, **common)
    eval_loader = rdata.DeviceCifarLoader(
        test_images, test_labels, batch_size=recipe.eval_batch_size, train=False, **common
    )
    return Batches(
        lambda start: _epoch_batches(train_loader, start, train_loader.set_epoch),
        lambda: iter(eval_loader),
        NUM_CLASSES[recipe.data],
        per_epoch=len(train_loader),
    )


def _imagenet(recipe: Recipe, *, device: torch.device, world: int, fmt: torch.memory_format) -> Batches:
    from torch.utils.data import DistributedSampler

    from reszoo.data import datasets as rdata
    from reszoo.data import transforms as rt

    train_ds = rdata.imagenet_dataset(recipe.data_root, split="train", transform=rt.imagenet_train_transform())
    val_ds = rdata.imagenet_dataset(recipe.data_root, split="val", transform=rt.imagenet_eval_transform())
    common = dict(num_workers=recipe.num_workers, distributed=world > 1, seed=recipe.seed)
    train_loader = rdata.make_loader(train_ds, batch_size=recipe.batch_size // world, train=True, **common)
    # Evaluation shards with DistributedSampler, which pads the last shard by repeating a few
    # images (at most world - 1 of 50,000): a negligible bias, noted in docs/training.md.
    val_loader = rdata.make_loader(val_ds, batch_size=recipe.eval_batch_size, train=False, **common)

    def set_epoch(epoch: int) -> None:
        # The shuffle order (sampler or generator) and the workers' augmentation seeds of an
        # epoch follow from (seed, epoch) alone.
        sampler = train_loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        if train_loader.generator is not None:
            train_loader.generator.manual_seed(recipe.seed * 1_000_003 + epoch)

    return Batches(
        lambda start: _to_device(_epoch_batches(train_loader, start, set_epoch), device, fmt),
        lambda: _to_device(iter(val_loader), device, fmt),
        NUM_CLASSES["imagenet"],
        per_epoch=len(train_loader),
    )


def _to_device(batches: Iterator[Any], device: torch.device, fmt: torch.memory_format) -> Iterator[Batch]:
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise InvalidArgumentError(
                f"a batch must be (images, labels); received a {type(batch).__name__}"
                + (f" of {len(batch)} items." if isinstance(batch, (tuple, list)) else ".")
            )
        x, y = batch
        yield x.to(device, non_blocking=True, memory_format=fmt), y.to(device, non_blocking=True)


def _epoch_batches(loader: Sized, start: int, set_epoch: Callable[[int], None]) -> Iterator[Batch]:
    # The data order of epoch e depends only on (seed, e), so resuming at iteration `start` means:
    # replay epoch start // len(loader) and skip the batches already trained on.
    n = len(loader)
    if n == 0:
        raise InvalidArgumentError(
            f"The training set is smaller than one batch (batch {getattr(loader, 'batch_size', '?')} per process)."
        )
    epoch, skip = divmod(start, n)
    while True:
        set_epoch(epoch)
        yield from itertools.islice(loader, skip, None)  # type: ignore[call-overload]
        skip = 0
        epoch += 1


# -- image folders and your own data -------------------------------------------------------------


def _folder(
    recipe: Recipe, model: nn.Module, *, device: torch.device, rank: int, world: int, fmt: torch.memory_format
) -> Batches:
    from reszoo.data import imagefolder as folders
    from reszoo.data import transforms as rt

    config = model.config  # checked by fit: a reszoo ResNet
    shape = dict(size=config.image_size, cifar_style=config.stem == "cifar")
    scan = dict(val_fraction=recipe.val_fraction, seed=recipe.seed)
    train_split = folders.scan_folder(recipe.data_root, split="train", **scan)
    eval_split = None
    if folders.is_split_layout(recipe.data_root) or recipe.val_fraction > 0:
        eval_split = folders.scan_folder(recipe.data_root, split="val", classes=train_split.classes, **scan)
    mean, std = _normalization(recipe, model, train_split, shape)
    recipe = recipe.replace(mean=mean, std=std)
    norm = dict(mean=recipe.mean, std=recipe.std)
    train_ds = folders.ImageFiles(train_split, rt.model_train_transform(**shape, **norm))
    eval_ds = eval_split and folders.ImageFiles(eval_split, rt.model_eval_transform(**shape, **norm))
    batches = _dataset_batches(recipe, train_ds, eval_ds, device=device, rank=rank, world=world, fmt=fmt)
    batches.num_classes, batches.classes, batches.recipe = len(train_split.classes), train_split.classes, recipe
    return batches


# A channel whose spread is under a tenth of one 8-bit grey level is constant for all a model can
# learn from it, and dividing by its std would blow its rounding noise up (or divide by zero).
_FLAT_STD = 0.1 / 255
_CHANNELS = ("red", "green", "blue")
_STATS_IMAGES = 2000  # the statistics of a folder are measured on at most this many of its images


def _normalization(recipe: Recipe, model: nn.Module, split: Any, shape: dict[str, Any]) -> tuple[Any, Any]:
    """The recipe's mean/std, else the pretrained weights', else measured on the training images.

    A measured channel that is constant (every image's blue at 0, say) is normalised with std 1.0,
    with a warning that says what was measured: it carries no information, and dividing by its
    std of 0 would fail (or, for a nearly constant one, amplify noise).
    """
    from reszoo.data.imagefolder import image_stats
    from reszoo.data.transforms import model_resize

    if recipe.mean is not None:
        return recipe.mean, recipe.std
    weights = getattr(model, "pretrained_weights", None)
    if isinstance(weights, WeightsInfo):
        return weights.mean, weights.std
    mean, std = image_stats(split, model_resize(**shape), limit=_STATS_IMAGES, seed=recipe.seed)
    flat = [i for i, s in enumerate(std) if s < _FLAT_STD]
    if flat:
        names = " and ".join(_CHANNELS[i] if i < 3 else f"channel {i}" for i in flat)
        fixed = tuple(1.0 if i in flat else s for i, s in enumerate(std))
        warnings.warn(
            f"The images in {recipe.data_root} have a constant {names} channel: measured mean "
            f"{_rounded(mean)}, std {_rounded(std)} over {min(len(split.samples), _STATS_IMAGES)} training images. It "
            f"carries nothing to learn from and its std cannot divide, so it is normalised with std 1.0 "
            f"(std={_rounded(fixed)}, recorded in the run). To choose the normalisation yourself, give both "
            "mean and std (reszoo train --mean M,M,M --std S,S,S).",
            UserWarning,
            stacklevel=2,
        )
        std = fixed
    return mean, std


def _rounded(values: Any) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def _custom(
    recipe: Recipe, train_data: Any, eval_data: Any, *, device: torch.device, rank: int, world: int, fmt: Any
) -> Batches:
    from torch.utils.data import DataLoader

    where = dict(device=device, rank=rank, world=world, fmt=fmt)
    if isinstance(train_data, DataLoader):
        batches = _loader_batches(recipe, train_data, world=world, device=device, fmt=fmt)
    else:
        batches = _dataset_batches(recipe, train_data, None, **where)
    if isinstance(eval_data, DataLoader):
        _check_loader("eval_data", eval_data, world)
        batches.evaluate = lambda: _to_device(iter(eval_data), device, fmt)
    elif eval_data is not None:
        batches.evaluate = _dataset_eval(recipe, eval_data, **where)
    classes = getattr(getattr(train_data, "dataset", train_data), "classes", None)
    if isinstance(classes, (list, tuple)) and classes:
        batches.num_classes = len(classes)
    return batches


def _dataset_batches(
    recipe: Recipe, train_ds: Any, eval_ds: Any, *, device: torch.device, rank: int, world: int, fmt: Any
) -> Batches:
    """Loaders over map-style datasets: seeded order and augmentation, sharded, resumable mid-epoch."""
    from torch.utils.data import DataLoader

    from reszoo.data.datasets import EpochSampler, SeededSamples

    sampler = EpochSampler(train_ds, num_replicas=world, rank=rank, seed=recipe.seed)
    per_rank = recipe.batch_size // world
    train_loader = DataLoader(
        SeededSamples(train_ds, seed=recipe.seed),
        batch_size=per_rank,
        sampler=sampler,
        drop_last=True,
        **_loader_options(recipe, device),
    )
    per_epoch = sampler.num_samples // per_rank
    if per_epoch == 0:
        raise InvalidArgumentError(
            f"The training set ({len(train_ds)} images) is smaller than one batch ({per_rank} per process); "
            "lower batch_size."
        )

    def train(start: int) -> Iterator[Batch]:
        epoch, skip = divmod(start, per_epoch)
        while True:
            sampler.set_epoch(epoch, start=skip * per_rank)  # the skipped batches are never loaded
            yield from _to_device(iter(train_loader), device, fmt)
            skip, epoch = 0, epoch + 1

    evaluate = None
    if eval_ds is not None:
        evaluate = _dataset_eval(recipe, eval_ds, device=device, rank=rank, world=world, fmt=fmt)
    return Batches(train, evaluate, None, per_epoch=per_epoch, recipe=recipe)


def _loader_options(recipe: Recipe, device: torch.device) -> dict[str, Any]:
    from reszoo.data.datasets import default_num_workers

    workers = default_num_workers() if recipe.num_workers is None else recipe.num_workers
    # A generator of its own: the loader then draws its workers' base seed from it, not from torch's
    # global random state (which a checkpoint holds, and model code such as drop-path uses).
    generator = torch.Generator().manual_seed(recipe.seed)
    return dict(
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0, generator=generator
    )


def _dataset_eval(
    recipe: Recipe, eval_ds: Any, *, device: torch.device, rank: int, world: int, fmt: Any
) -> Callable[[], Iterator[Batch]]:
    """One pass over this process's share of ``eval_ds`` (every sample counted once over the processes)."""
    from torch.utils.data import DataLoader

    from reszoo.data.datasets import ShardSampler

    shard = ShardSampler(len(eval_ds), num_replicas=world, rank=rank)
    loader = DataLoader(eval_ds, batch_size=recipe.eval_batch_size, sampler=shard, **_loader_options(recipe, device))
    return lambda: _to_device(iter(loader), device, fmt)


def _check_loader(name: str, loader: Any, world: int) -> None:
    """A DataLoader given to fit: map-style, and sharded by a DistributedSampler under DDP."""
    from torch.utils.data import DistributedSampler, IterableDataset

    if isinstance(loader.dataset, IterableDataset):
        raise InvalidArgumentError(
            f"{name} is a DataLoader over an IterableDataset, which has no length or positions to resume "
            "from; give a map-style Dataset (len() and indexing)."
        )
    sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
    if world > 1 and not isinstance(sampler, DistributedSampler):
        raise InvalidArgumentError(
            f"{name} is a DataLoader without a DistributedSampler, but this run has {world} processes: every "
            "process would read the whole set. Give a Dataset (fit shards it) or a DataLoader with "
            "sampler=DistributedSampler(dataset)."
        )


def _loader_batches(
    recipe: Recipe, loader: Any, *, world: int, device: torch.device, fmt: torch.memory_format
) -> Batches:
    """A DataLoader as given; per epoch its sampler's set_epoch and its generator reseeded from (seed, epoch)."""
    _check_loader("train_data", loader, world)
    sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler

    def set_epoch(epoch: int) -> None:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if loader.generator is not None:
            loader.generator.manual_seed(recipe.seed * 1_000_003 + epoch)

    return Batches(
        lambda start: _to_device(_epoch_batches(loader, start, set_epoch), device, fmt),
        None,
        None,
        per_epoch=len(loader),
        recipe=recipe,
    )


def data_weights(
    model: nn.Module, recipe: Recipe, classes: tuple[str, ...], *, arch: str | None, base: WeightsInfo | None
) -> WeightsInfo:
    """The weights record of a model trained on an image folder: its classes and pre-processing.

    Attached as ``model.pretrained_weights``, it travels into ``model/config.json``
    (``reszoo.weights.hub.save_pretrained``), so a later ``load_pretrained`` knows the class names and
    the normalisation the model was trained with.
    """
    from reszoo.data.transforms import model_resize_size

    config = model.config
    folder = Path(recipe.data_root or ".").expanduser().resolve().name
    start = f"fine-tuned from {base.name}" if base is not None else "trained from scratch"
    return WeightsInfo(
        name=f"{arch or 'resnet'}-{folder}",
        arch=arch,
        dataset="folder",
        num_classes=len(classes),
        mean=tuple(recipe.mean),  # type: ignore[arg-type]
        std=tuple(recipe.std),  # type: ignore[arg-type]
        crop_size=config.image_size,
        resize_size=model_resize_size(size=config.image_size, cifar_style=config.stem == "cifar"),
        origin="reszoo train",
        notes=f"{start} on the image folder {recipe.data_root} ({len(classes)} classes) by reszoo.",
        categories=tuple(classes),
        license=base.license if base is not None else None,
    )
