"""The batch streams a training run reads: synthetic, CIFAR on the device, ImageNet from folders.

:func:`make_batches` turns a :class:`~reszoo.recipes.Recipe` into a :class:`Batches`: an endless,
resumable stream of training batches and a finite pass over the evaluation set, both already on
the device and in the run's memory format, sharded over the processes of a distributed run. The
data seen at an iteration depends only on ``(seed, epoch, iteration)``, so a resumed run reads
exactly what an uninterrupted one would have read.

Example:
    >>> task = SyntheticTask(num_classes=10, image_shape=(3, 8, 8), seed=0)
    >>> x, y = task.batch(0, 4)
    >>> tuple(x.shape), tuple(y.shape)
    ((4, 3, 8, 8), (4,))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.checks import check_int, check_ints, check_number
from reszoo.constants import NUM_CLASSES
from reszoo.errors import InvalidArgumentError
from reszoo.recipes import Recipe

Batch = tuple[torch.Tensor, torch.Tensor]

__all__ = ["Batches", "SyntheticTask", "make_batches", "model_classes"]


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
        evaluate: ``evaluate()`` yields this process's share of the evaluation set, once.
        num_classes: classes of the dataset.
    """

    train: Callable[[int], Iterator[Batch]]
    evaluate: Callable[[], Iterator[Batch]]
    num_classes: int


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
) -> Batches:
    """The batch streams of ``recipe`` for ``model`` on ``device``, this process's shard of them.

    Reads (or downloads, with ``recipe.download``) the dataset now, so a missing dataset is an
    error before a run writes anything.

    Args:
        recipe: what to read (``data``, ``data_root``, batch sizes, seed).
        model: the model, for its class count and (synthetic data) its input size.
        device: where batches are delivered.
        rank: this process's rank.
        world: number of processes (``recipe.batch_size`` is split over them).
        channels_last: deliver batches in channels-last memory format.

    Returns:
        A :class:`Batches`.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if recipe.data == "synthetic":
        return _synthetic(recipe, model, device=device, rank=rank, world=world, fmt=fmt)
    if recipe.data in ("cifar10", "cifar100"):
        return _cifar(recipe, device=device, rank=rank, world=world, channels_last=channels_last)
    return _imagenet(recipe, device=device, world=world, fmt=fmt)


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

    return Batches(train, evaluate, task.num_classes)


def _cifar(recipe: Recipe, *, device: torch.device, rank: int, world: int, channels_last: bool) -> Batches:
    from reszoo import data as rdata
    from reszoo import transforms as rt

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
    )


def _imagenet(recipe: Recipe, *, device: torch.device, world: int, fmt: torch.memory_format) -> Batches:
    from torch.utils.data import DistributedSampler

    from reszoo import data as rdata
    from reszoo import transforms as rt

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

    def to_device(batches: Iterator[Any]) -> Iterator[Batch]:
        for x, y in batches:
            yield x.to(device, non_blocking=True, memory_format=fmt), y.to(device, non_blocking=True)

    return Batches(
        lambda start: to_device(_epoch_batches(train_loader, start, set_epoch)),
        lambda: to_device(iter(val_loader)),
        NUM_CLASSES["imagenet"],
    )


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
