"""Datasets and loaders: CIFAR-10/100 and ImageNet through ``torchvision.datasets``.

Two ways to feed CIFAR:

- ``cifar_dataset`` + ``make_loader``: the usual per-image ``v2`` transform in DataLoader workers.
- ``load_cifar_tensors`` + ``DeviceCifarLoader``: the whole dataset held on the device as uint8
  (150 MB for CIFAR's 50,000 images) and augmented a batch at a time with
  ``reszoo.data.augment.batch_random_crop_flip``; no workers, no host-to-device copies per step.

Example:
    >>> import torch
    >>> from reszoo.data import DeviceCifarLoader
    >>> images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    >>> loader = DeviceCifarLoader(images, torch.arange(10), batch_size=4, mean=(0.5,) * 3, std=(0.25,) * 3, train=True)
    >>> len(loader), [tuple(x.shape) for x, _ in loader]
    (2, [(4, 3, 32, 32), (4, 3, 32, 32)])
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from reszoo.data.augment import batch_random_crop_flip
from reszoo.errors import InvalidArgumentError, MissingInputError
from reszoo.utils.accelerator import accelerator
from reszoo.utils.checks import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_mean_std,
    check_path,
    is_int,
    type_error,
    value_error,
)

CIFAR_NAMES = ("cifar10", "cifar100")
IMAGENET_SPLITS = ("train", "val")

__all__ = [
    "CIFAR_NAMES",
    "DeviceCifarLoader",
    "EpochSampler",
    "SeededSamples",
    "ShardSampler",
    "cifar_dataset",
    "default_num_workers",
    "imagenet_dataset",
    "load_cifar_tensors",
    "make_loader",
    "paper_split",
]


def _cifar_class(name: str) -> type:
    from torchvision import datasets

    check_choice("dataset", name, CIFAR_NAMES)
    return datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100


def _cifar_missing(cls: type, root: Path, reason: str) -> MissingInputError:
    return MissingInputError(
        f"{reason} Expected the extracted folder {root / cls.base_folder} (from {cls.filename}). "
        f"Get it with download=True (or --download on the command line) while online, or download "
        f"{cls.url} yourself and put the archive in {root} (it is checked and extracted on the next "
        "call with download=True) or extract it there."
    )


def cifar_dataset(
    root: str | os.PathLike[str],
    *,
    name: str = "cifar10",
    train: bool = True,
    transform: Callable[[Any], Any] | None = None,
    download: bool = False,
) -> Dataset:
    """CIFAR-10 or CIFAR-100 through ``torchvision.datasets``.

    Args:
        root: folder that holds (or will hold) ``cifar-10-batches-py`` / ``cifar-100-python``.
        name: ``"cifar10"`` or ``"cifar100"``.
        train: the 50,000-image training set, else the 10,000-image test set.
        transform: applied to each PIL image, e.g. ``reszoo.data.transforms.cifar_train_transform()``.
        download: download and extract the archive (checked against its md5) if it is missing.

    Returns:
        A ``torchvision.datasets.CIFAR10`` / ``CIFAR100``.

    Raises:
        MissingInputError: (a ``FileNotFoundError``) the files are missing (or the download
            failed), with where they are expected and how to get them.
    """
    cls = _cifar_class(name)
    check_bool("train", train)
    check_bool("download", download)
    root = Path(check_path("root", root)).expanduser()
    if not download and not (root / cls.base_folder).is_dir():
        raise _cifar_missing(cls, root, f"{name} not found and download=False.")
    try:
        return cls(str(root), train=train, transform=transform, download=download)
    except RuntimeError as err:
        # torchvision says "Dataset not found or corrupted" when a file is missing or fails its md5.
        raise _cifar_missing(cls, root, f"{name} in {root} is incomplete or corrupted ({err}).") from None
    except OSError as err:
        # Offline or a failed download: a short message, not a urllib traceback.
        raise _cifar_missing(cls, root, f"Could not download {name} ({type(err).__name__}: {err}).") from None


def load_cifar_tensors(
    root: str | os.PathLike[str], *, name: str = "cifar10", train: bool = True, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole CIFAR split as tensors, ready for ``DeviceCifarLoader``.

    Args:
        root: dataset folder (see ``cifar_dataset``).
        name: ``"cifar10"`` or ``"cifar100"``.
        train: training or test split.
        download: download if missing.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N,)``, on the CPU.
    """
    ds = cifar_dataset(root, name=name, train=train, download=download)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return images, labels


def paper_split(dataset: Dataset, *, val_size: int = 5000, seed: int = 0) -> tuple[Subset, Subset]:
    """The paper's train/validation split (45k/5k of CIFAR's 50k training images), fixed by a seed.

    Args:
        dataset: the full training set (anything with ``__len__``).
        val_size: images held out for validation.
        seed: the permutation seed; the same seed always gives the same split.

    Returns:
        ``(train_subset, val_subset)``, disjoint, together covering the dataset.

    Example:
        >>> import torch
        >>> train, val = paper_split(torch.utils.data.TensorDataset(torch.arange(10)), val_size=3)
        >>> len(train), len(val)
        (7, 3)
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n < 2:
        raise InvalidArgumentError(f"paper_split needs a dataset of at least 2 items; received one of {n}.")
    expected = f"an integer in 1..{n - 1} for a dataset of {n}"
    if not is_int(val_size):
        raise type_error("val_size", val_size, expected)
    if not 0 < val_size < n:
        raise value_error("val_size", val_size, expected)
    check_int("seed", seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, perm[val_size:]), Subset(dataset, perm[:val_size])


def imagenet_dataset(
    root: str | os.PathLike[str], *, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> Dataset:
    """ImageNet (ILSVRC-2012) as a ``torchvision.datasets.ImageFolder`` over ``root/split``.

    Args:
        root: folder with ``train/`` and ``val/``, each holding one sub-folder per class (wnid).
        split: ``"train"`` or ``"val"``.
        transform: applied to each PIL image.

    Returns:
        An ``ImageFolder``.
    """
    check_choice("split", split, IMAGENET_SPLITS)
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise MissingInputError(
            f"ImageNet {split} images not found: expected {folder} with one sub-folder per class "
            "(e.g. n01440764/). ImageNet cannot be downloaded automatically: get ILSVRC2012_img_train.tar "
            "and ILSVRC2012_img_val.tar from https://image-net.org, extract them, and sort the validation "
            "images into class folders."
        )
    from torchvision.datasets import ImageFolder

    return ImageFolder(str(folder), transform=transform)


def default_num_workers() -> int:
    """DataLoader workers for this process: its share of the CPUs it may use, at most 8.

    Under torchrun each of the ``LOCAL_WORLD_SIZE`` processes of a node starts its own workers,
    so the CPUs are divided between them (at least one worker each). Beyond about 8 workers per
    GPU, decoding stops being the bottleneck and the extra processes only cost memory.

    Returns:
        The number of workers.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        cpus = os.cpu_count() or 1
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    per_node = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, min(8, cpus // per_node))


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    train: bool,
    num_workers: int | None = None,
    distributed: bool = False,
    seed: int = 0,
    drop_last: bool | None = None,
) -> DataLoader:
    """A DataLoader with sensible defaults for training or evaluation.

    Shuffles when ``train`` (with a seeded generator, so the order and the workers' random
    augmentation are reproducible), drops the last partial batch when training, pins memory when
    CUDA is present and keeps workers alive between epochs. With ``distributed=True`` a
    ``DistributedSampler`` shards the data; call ``loader.sampler.set_epoch(epoch)`` each epoch.

    Args:
        dataset: a map-style dataset.
        batch_size: images per batch (per process when distributed).
        train: shuffle and drop the last partial batch.
        num_workers: worker processes; ``default_num_workers()`` if None.
        distributed: shard with ``torch.utils.data.DistributedSampler`` (needs an initialised
            process group).
        seed: seed of the shuffle order.
        drop_last: override the default (``train``).

    Returns:
        A ``torch.utils.data.DataLoader``.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("num_workers", num_workers, minimum=0, optional=True)
    check_bool("train", train)
    workers = default_num_workers() if num_workers is None else num_workers
    drop = train if drop_last is None else drop_last
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=train, seed=seed, drop_last=drop)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def _check_dataset(images: Any, labels: Any) -> None:
    check_instance("images", images, torch.Tensor, what="a uint8 tensor (N, C, H, W)")
    check_instance("labels", labels, torch.Tensor, what="an integer tensor (N,)")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
        raise InvalidArgumentError(
            f"images must be uint8 (N, C, H, W) with N >= 1; received dtype {images.dtype}, "
            f"shape {tuple(images.shape)}."
        )
    if labels.shape != images.shape[:1]:
        raise InvalidArgumentError(f"labels must have shape ({images.shape[0]},); received {tuple(labels.shape)}.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InvalidArgumentError(f"labels must be integer class indices; received dtype {labels.dtype}.")


class DeviceCifarLoader:
    """Iterate normalised CIFAR batches from a uint8 dataset held on the device.

    Each pass draws its order and augmentation from ``seed`` and the epoch, so a run is
    reproducible. Iterating advances the epoch; ``set_epoch(e)`` makes the next pass epoch ``e``.
    With ``world_size > 1`` each rank takes every ``world_size``-th image of the shuffled order
    (training truncates to a multiple of ``world_size`` so every rank runs the same number of
    steps; evaluation wraps around to pad, as ``DistributedSampler`` does).

    Args:
        images: uint8 ``(N, 3, H, W)`` images (from ``load_cifar_tensors``).
        labels: int64 ``(N,)`` labels.
        batch_size: images per batch (per rank).
        mean: per-channel mean (inputs scaled to [0, 1]).
        std: per-channel standard deviation.
        train: shuffle and augment (random crop with 4-pixel zero padding and flip).
        shuffle: override the default (``train``).
        drop_last: override the default (``train``).
        seed: seed for the order and augmentation.
        device: where to hold the data; the images' device if None.
        channels_last: return batches in channels-last memory format.
        rank: this process's rank.
        world_size: number of processes.
        padding: crop padding for the augmentation.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool,
        shuffle: bool | None = None,
        drop_last: bool | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        padding: int = 4,
    ) -> None:
        _check_dataset(images, labels)
        check_int("batch_size", batch_size, minimum=1)
        check_int("world_size", world_size, minimum=1)
        check_int("rank", rank, minimum=0, maximum=world_size - 1)
        mean, std = check_mean_std(mean, std)
        if len(mean) != images.shape[1]:
            raise InvalidArgumentError(f"mean and std need {images.shape[1]} values; received mean={mean}, std={std}.")
        check_int("padding", padding, minimum=0)
        check_bool("train", train)
        logical = torch.device(device) if device is not None else images.device
        # The device's own generator (its random stream) and where tensors go: the device itself,
        # unless a test's stand-in accelerator answers for it.
        self._accelerator, self._logical_device = accelerator(logical), logical
        self.device = self._accelerator.tensor_device(logical)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        # Fold the 1/255 scaling into the constants: one subtract and one multiply per batch.
        m = torch.as_tensor(mean, dtype=torch.float32, device=self.device) * 255.0
        s = torch.as_tensor(std, dtype=torch.float32, device=self.device) * 255.0
        self._mean = m.view(1, -1, 1, 1)
        self._inv_std = (1.0 / s).view(1, -1, 1, 1)
        self.batch_size = batch_size
        self.train = train
        self.shuffle = train if shuffle is None else shuffle
        self.drop_last = train if drop_last is None else drop_last
        self.seed = seed
        self.channels_last = channels_last
        self.rank = rank
        self.world_size = world_size
        self.padding = padding
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use ``epoch``'s order and augmentation.

        Args:
            epoch: the epoch number.
        """
        self.epoch = int(epoch)

    def _num_samples(self) -> int:
        n = self.images.shape[0]
        if self.world_size == 1:
            return n
        return n // self.world_size if self.train else math.ceil(n / self.world_size)

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _indices(self, epoch: int) -> torch.Tensor:
        n = self.images.shape[0]
        if self.shuffle:
            # The order is drawn on the CPU so it is the same on every device and every rank.
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            total = self._num_samples() * self.world_size
            # Truncate (training) or wrap around to pad (evaluation), as DistributedSampler does.
            order = order.repeat(math.ceil(total / n))[:total][self.rank :: self.world_size]
        return order.to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        order = self._indices(epoch)
        gen = None
        if self.train:
            # One generator per epoch on the data's device: crops and flips are drawn there, with no
            # host sync per batch.
            seed = (self.seed * 1_000_003 + epoch) * 4099 + self.rank
            gen = self._accelerator.generator(self._logical_device, seed)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images.index_select(0, idx)
            if self.train:
                x = batch_random_crop_flip(x, padding=self.padding, generator=gen)
            x = (x.float() - self._mean) * self._inv_std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels.index_select(0, idx)


class EpochSampler(torch.utils.data.DistributedSampler):
    """A ``DistributedSampler`` (shuffled by ``(seed, epoch)``) that can start part-way into an epoch.

    ``set_epoch(epoch, start=k)`` skips the first ``k`` samples of this process's share without
    loading them, so a resumed run continues at the very sample an uninterrupted one would read.
    Each index comes as ``(epoch, index)``, for :class:`SeededSamples`. Works without a process
    group (``num_replicas`` and ``rank`` are given).
    """

    def __init__(self, dataset: Sized, *, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)  # type: ignore[arg-type]
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(torch.utils.data.Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order: every sample evaluated exactly once over the processes."""

    def __init__(self, size: int, *, num_replicas: int, rank: int) -> None:
        self.indices = range(rank, size, num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SeededSamples(Dataset):
    """``dataset[index]`` under a random state fixed by ``(seed, epoch, index)``.

    Random augmentation then depends on which sample of which epoch is read, not on how many were
    read before, in which worker or process: a resumed run, or one with another ``num_workers``,
    sees the very same augmented images. torch's and Python's global random states are set for
    the call and put back after. Takes the ``(epoch, index)`` pairs of :class:`EpochSampler`.
    """

    def __init__(self, dataset: Dataset, *, seed: int) -> None:
        self.dataset = dataset
        self.seed = check_int("seed", seed, minimum=0)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        # Plain arithmetic, not hash(): the same draws on every Python version and platform.
        state = ((self.seed * 1_000_003 + epoch) * 2_147_483_647 + index) % 2**63
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(state)
            random.seed(state)
            try:
                return self.dataset[index]
            finally:
                random.setstate(python_state)
