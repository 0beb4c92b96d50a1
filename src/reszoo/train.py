"""A minimal training helper: the paper's recipes as plain data and one loop that runs them.

Schedules count iterations, as the paper does (He et al. 2015, section 4.2: "divide it by 10 at
32k and 48k iterations, and terminate training at 64k iterations"). A run writes, under ``out``:
``recipe.json`` and ``run.json`` (what was asked), ``history.jsonl`` (one JSON record per log or
evaluation step), ``checkpoint.pt`` (everything needed to continue exactly; replaced atomically) and,
at the end, ``model/`` written by ``reszoo.hub.save_pretrained`` and ``summary.json``.

Example:
    >>> from reszoo import train
    >>> recipe = train.cifar_recipe(depth=110)
    >>> [train.learning_rate(recipe, i) for i in (0, 399, 400, 32_000, 48_000)]
    [0.01, 0.01, 0.1, 0.010000000000000002, 0.0010000000000000002]
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.fileio import atomic_path
from reszoo.bench import preferred_memory_format
from reszoo.hub import tensors_digest

DATASETS = ("synthetic", "cifar10", "cifar100", "imagenet")
SCHEDULES = ("step", "plateau")
DEVICES = ("auto", "cpu", "cuda", "mps")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.jsonl"
CHECKPOINT_FORMAT = 1

__all__ = [
    "DATASETS",
    "SCHEDULES",
    "FitResult",
    "NonFiniteLossError",
    "Recipe",
    "SyntheticTask",
    "cifar_recipe",
    "fit",
    "imagenet_recipe",
    "learning_rate",
    "load_checkpoint",
    "state_digest",
]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the last checkpoint on disk is still good."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Recipe:
    """Everything about how a model is trained, as plain data (JSON round trip with ``to_dict``).

    The defaults are the paper's CIFAR-10 recipe (He et al. 2015, section 4.2).

    Args:
        data: ``"synthetic"``, ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        data_root: dataset folder (not needed for ``"synthetic"``).
        download: download CIFAR if it is missing.
        val_split: CIFAR only: train on 45k images and evaluate on the held-out 5k, as in the
            paper's tuning runs (``reszoo.data.paper_split``), instead of on the test set.
        batch_size: global batch (split evenly over the processes of a distributed run).
        lr: base learning rate.
        momentum: SGD momentum.
        weight_decay: L2 penalty applied by SGD to every parameter.
        nesterov: Nesterov momentum (the paper uses plain momentum).
        iterations: stop after this many iterations.
        schedule: ``"step"`` (divide by ``1/gamma`` at each milestone) or ``"plateau"`` (divide
            when the evaluation error has not improved for ``plateau_patience`` evaluations).
        milestones: iterations where the step schedule divides the learning rate.
        gamma: factor applied at each milestone or plateau.
        warmup_iters: iterations trained at ``warmup_lr`` before the schedule starts.
        warmup_lr: learning rate during warm-up.
        plateau_patience: evaluations without improvement before a plateau drop.
        plateau_threshold: smallest drop in error (absolute, 0-1) that counts as improvement.
        eval_every: evaluate every this many iterations (and at the end); 0 = only at the end.
        checkpoint_every: write ``checkpoint.pt`` every this many iterations (and at the end).
        log_every: record training loss, error and images/s every this many iterations.
        seed: seeds the data order, augmentation and synthetic data.
        device: ``"auto"`` (CUDA if present), ``"cpu"``, ``"cuda"`` or ``"mps"``.
        amp: bf16 autocast; ``None`` = on for CUDA, off elsewhere.
        channels_last: channels-last memory format; ``None`` = the measured faster choice per
            device type (``reszoo.bench.preferred_memory_format``).
        compile: wrap the model in ``torch.compile``.
        num_workers: DataLoader workers for ImageNet (``None`` = ``reszoo.data.default_num_workers``).
        eval_batch_size: batch per process for evaluation.
        synthetic_noise: standard deviation of the noise added to the synthetic class patterns.
        synthetic_eval_images: size of the synthetic evaluation set.
    """

    data: str = "cifar10"
    data_root: str | None = None
    download: bool = False
    val_split: bool = False
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    iterations: int = 64_000
    schedule: str = "step"
    milestones: tuple[int, ...] = (32_000, 48_000)
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_lr: float = 0.01
    plateau_patience: int = 3
    plateau_threshold: float = 1e-3
    eval_every: int = 2000
    checkpoint_every: int = 2000
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    num_workers: int | None = None
    eval_batch_size: int = 500
    synthetic_noise: float = 1.0
    synthetic_eval_images: int = 2000

    def __post_init__(self) -> None:
        if isinstance(self.milestones, list):  # JSON gives lists
            object.__setattr__(self, "milestones", tuple(self.milestones))
        if isinstance(self.data_root, os.PathLike):
            object.__setattr__(self, "data_root", os.fspath(self.data_root))
        self._validate()

    def _validate(self) -> None:
        def check(name: str, ok: bool, want: str) -> None:
            if not ok:
                raise ValueError(f"Recipe {name} must be {want}; received {name}={getattr(self, name)!r}.")

        for name, valid in (("data", DATASETS), ("schedule", SCHEDULES), ("device", DEVICES)):
            check(name, getattr(self, name) in valid, f"one of {list(valid)}")
        for name in ("batch_size", "iterations", "log_every", "checkpoint_every", "eval_batch_size"):
            check(name, _is_int(getattr(self, name)) and getattr(self, name) >= 1, "an integer >= 1")
        for name in ("eval_every", "warmup_iters", "plateau_patience", "seed", "synthetic_eval_images"):
            check(name, _is_int(getattr(self, name)) and getattr(self, name) >= 0, "an integer >= 0")
        check(
            "num_workers",
            self.num_workers is None or (_is_int(self.num_workers) and self.num_workers >= 0),
            "None or an integer >= 0",
        )
        for name in ("lr", "warmup_lr"):
            v = getattr(self, name)
            check(name, _is_number(v) and math.isfinite(v) and v > 0, "a finite number > 0")
        for name in ("momentum", "weight_decay", "synthetic_noise", "plateau_threshold"):
            v = getattr(self, name)
            check(name, _is_number(v) and math.isfinite(v) and v >= 0, "a finite number >= 0")
        check("gamma", _is_number(self.gamma) and 0 < self.gamma <= 1, "a number in (0, 1]")
        for name in ("download", "val_split", "nesterov", "compile"):
            check(name, isinstance(getattr(self, name), bool), "True or False")
        for name in ("amp", "channels_last"):
            check(name, getattr(self, name) is None or isinstance(getattr(self, name), bool), "None, True or False")
        check("data_root", self.data_root is None or isinstance(self.data_root, str), "None or a folder path")
        ms = self.milestones
        check(
            "milestones",
            isinstance(ms, tuple) and all(_is_int(m) and m > 0 for m in ms) and list(ms) == sorted(set(ms)),
            "strictly increasing positive integers",
        )
        if self.val_split and self.data not in ("cifar10", "cifar100"):
            raise ValueError(f"val_split=True needs CIFAR data; received data={self.data!r}.")
        if self.schedule == "plateau" and self.eval_every == 0:
            raise ValueError(
                "schedule='plateau' lowers the lr after evaluations, so it needs eval_every >= 1; "
                "received eval_every=0."
            )

    def replace(self, **overrides: Any) -> Recipe:
        """A copy with some fields changed; unknown names get a ValueError listing the valid ones."""
        unknown = sorted(set(overrides) - set(recipe_fields()))
        if unknown:
            raise ValueError(f"Unknown recipe field(s) {unknown}; valid fields: {list(recipe_fields())}.")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Inverse of :meth:`to_dict`."""
        return cls().replace(**data)


def recipe_fields() -> tuple[str, ...]:
    """Names of the fields of :class:`Recipe`."""
    return tuple(f.name for f in dataclasses.fields(Recipe))


def cifar_recipe(*, depth: int | None = None, **overrides: Any) -> Recipe:
    """The paper's CIFAR recipe (section 4.2).

    SGD with momentum 0.9 and weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k
    iterations, stop at 64k. For depth 110 and deeper the paper warms up at lr 0.01 "until the
    training error is below 80% (about 400 iterations)"; we use the fixed 400 iterations.

    Args:
        depth: the network's depth (``model.config.depth``); >= 110 adds the warm-up.
        **overrides: any :class:`Recipe` field, e.g. ``data_root="data/"``.

    Returns:
        A :class:`Recipe`.
    """
    if depth is not None and not (_is_int(depth) and depth >= 1):
        raise ValueError(f"depth must be None or an integer >= 1 (model.config.depth); received depth={depth!r}.")
    base: dict[str, Any] = {"data": "cifar10"}
    if depth is not None and depth >= 110:
        base.update(warmup_iters=400, warmup_lr=0.01)
    return Recipe().replace(**{**base, **overrides})


# ImageNet iterations per epoch at batch 256: ceil(1,281,167 / 256).
IMAGENET_ITERS_PER_EPOCH = 5005


def imagenet_recipe(*, schedule: str = "plateau", **overrides: Any) -> Recipe:
    """The paper's ImageNet recipe (section 3.4) and a fixed-step alternative.

    SGD, batch 256, lr 0.1, momentum 0.9, weight decay 1e-4, up to 60e4 iterations. ``"plateau"``
    is the paper's "divided by 10 when the error plateaus" (evaluated once an epoch, patience 3
    evaluations); ``"step"`` divides at epochs 30 and 60 and stops at 90 (torchvision's reference
    recipe), counted in iterations.

    Args:
        schedule: ``"plateau"`` or ``"step"``.
        **overrides: any :class:`Recipe` field.

    Returns:
        A :class:`Recipe`.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; valid choices: {list(SCHEDULES)}.")
    epoch = IMAGENET_ITERS_PER_EPOCH
    base: dict[str, Any] = dict(
        data="imagenet",
        batch_size=256,
        schedule=schedule,
        eval_every=epoch,
        checkpoint_every=epoch // 5,
        log_every=100,
        eval_batch_size=250,
    )
    if schedule == "plateau":
        base.update(iterations=600_000, milestones=())
    else:
        base.update(iterations=90 * epoch, milestones=(30 * epoch, 60 * epoch))
    return Recipe().replace(**{**base, **overrides})


def learning_rate(recipe: Recipe, iteration: int, *, plateau_drops: int = 0) -> float:
    """The learning rate of ``recipe`` at a (0-based) iteration.

    Args:
        recipe: the recipe.
        iteration: iterations already done.
        plateau_drops: how many plateaus were detected so far (``"plateau"`` schedule).

    Returns:
        The learning rate.
    """
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a reszoo.train.Recipe; received {type(recipe).__name__}.")
    for name, value in (("iteration", iteration), ("plateau_drops", plateau_drops)):
        if not (_is_int(value) and value >= 0):
            raise ValueError(f"{name} must be an integer >= 0; received {name}={value!r}.")
    if iteration < recipe.warmup_iters:
        return recipe.warmup_lr
    drops = sum(iteration >= m for m in recipe.milestones) if recipe.schedule == "step" else plateau_drops
    return recipe.lr * recipe.gamma**drops


# -- data --------------------------------------------------------------------------------------


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
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.seed = seed
        self.noise = noise
        self.device = torch.device(device)
        c, h, w = self.image_shape
        g = torch.Generator().manual_seed(seed)
        coarse = torch.randn(num_classes, c, 4, 4, generator=g)
        patterns = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        patterns = patterns / patterns.flatten(1).std(dim=1).view(-1, 1, 1, 1)
        self.patterns = patterns.to(self.device)
        self._generator = torch.Generator(device=self.device)  # reseeded per batch, made once

    def batch(self, index: int, batch_size: int, *, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number ``index`` of ``stream`` (rank for training; evaluation uses its own streams)."""
        g = self._generator
        # Plain arithmetic, not hash(): the same batches on every Python version and platform.
        g.manual_seed(((self.seed * 1_000_003 + stream + 1) * 2_147_483_647 + index) % 2**63)
        y = torch.randint(0, self.num_classes, (batch_size,), generator=g, device=self.device)
        noise = torch.randn((batch_size, *self.image_shape), generator=g, device=self.device)
        return self.patterns.index_select(0, y) + self.noise * noise, y


@dataclass
class _Data:
    train: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # start iteration -> batches
    evaluate: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    num_classes: int


def _epoch_batches(loader: Any, start: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    # The data order of epoch e depends only on (seed, e), so resuming at iteration `start` means:
    # replay epoch start // len(loader) and skip the batches already trained on.
    n = len(loader)
    if n == 0:
        raise ValueError(f"The training set is smaller than one batch (batch {getattr(loader, 'batch_size', '?')}).")
    epoch, skip = divmod(start, n)
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        else:
            sampler = getattr(loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            if loader.generator is not None:
                loader.generator.manual_seed(seed * 1_000_003 + epoch)
        yield from itertools.islice(loader, skip, None)
        skip = 0
        epoch += 1


def _make_data(recipe: Recipe, model: nn.Module, *, device: torch.device, rank: int, world: int, cl: bool) -> _Data:
    per_rank = recipe.batch_size // world
    fmt = torch.channels_last if cl else torch.contiguous_format
    if recipe.data == "synthetic":
        config = getattr(model, "config", None)
        shape = config.input_size if config is not None else (3, 32, 32)
        task = SyntheticTask(
            num_classes=_model_classes(model),
            image_shape=shape,
            seed=recipe.seed,
            noise=recipe.synthetic_noise,
            device=device,
        )

        def train(start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            it = start
            while True:
                x, y = task.batch(it, per_rank, stream=rank)
                yield x.contiguous(memory_format=fmt), y
                it += 1

        def evaluate() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            # Rank r takes evaluation chunks r, r + world, ...: every image is counted exactly once.
            size = recipe.eval_batch_size
            chunks = math.ceil(recipe.synthetic_eval_images / size)
            for i in range(rank, chunks, world):
                n = min(size, recipe.synthetic_eval_images - i * size)
                x, y = task.batch(i, n, stream=-1)
                yield x.contiguous(memory_format=fmt), y

        return _Data(train, evaluate, task.num_classes)

    from reszoo import data as rdata
    from reszoo import transforms as rt

    if recipe.data in ("cifar10", "cifar100"):
        mean, std = rt.normalization(recipe.data)
        images, labels = rdata.load_cifar_tensors(
            recipe.data_root, name=recipe.data, train=True, download=recipe.download
        )
        if recipe.val_split:
            from torch.utils.data import TensorDataset

            tr, va = rdata.paper_split(TensorDataset(labels), seed=recipe.seed)
            test_images, test_labels = images[va.indices], labels[va.indices]
            images, labels = images[tr.indices], labels[tr.indices]
        else:
            test_images, test_labels = rdata.load_cifar_tensors(recipe.data_root, name=recipe.data, train=False)
        # The whole set lives on the device and is augmented a batch at a time there, so a GPU
        # run is not bound by DataLoader workers (CIFAR is 150 MB as uint8).
        common = dict(
            mean=mean, std=std, seed=recipe.seed, device=device, channels_last=cl, rank=rank, world_size=world
        )
        train_loader = rdata.DeviceCifarLoader(images, labels, batch_size=per_rank, train=True, **common)
        eval_loader = rdata.DeviceCifarLoader(
            test_images, test_labels, batch_size=recipe.eval_batch_size, train=False, **common
        )
        return _Data(
            lambda s: _epoch_batches(train_loader, s, recipe.seed), lambda: iter(eval_loader), NUM_CLASSES[recipe.data]
        )

    train_ds = rdata.imagenet_dataset(recipe.data_root, split="train", transform=rt.imagenet_train_transform())
    val_ds = rdata.imagenet_dataset(recipe.data_root, split="val", transform=rt.imagenet_eval_transform())
    common = dict(num_workers=recipe.num_workers, distributed=world > 1, seed=recipe.seed)
    train_loader = rdata.make_loader(train_ds, batch_size=per_rank, train=True, **common)
    # Evaluation shards with DistributedSampler, which pads the last shard by repeating a few
    # images (at most world - 1 of 50,000): a negligible bias, noted in docs/training.md.
    val_loader = rdata.make_loader(val_ds, batch_size=recipe.eval_batch_size, train=False, **common)

    def to_device(it: Iterator[Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in it:
            yield x.to(device, non_blocking=True, memory_format=fmt), y.to(device, non_blocking=True)

    return _Data(
        lambda s: to_device(_epoch_batches(train_loader, s, recipe.seed)), lambda: to_device(iter(val_loader)), 1000
    )


def _model_classes(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc.out_features
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError(f"Cannot tell how many classes {type(model).__name__} predicts (no .fc or .config).")
    return config.num_classes


# -- checkpoints -------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    # A process killed mid-write leaves the old file intact; fsync so a crash does too.
    with atomic_path(path, fsync=True) as tmp:
        write(tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`fit` (a run folder or the file itself).

    Args:
        path: the run folder or its ``checkpoint.pt``.

    Returns:
        The checkpoint dict: ``iteration``, ``model``, ``optimizer``, ``plateau``, ``rng``,
        ``recipe``, ``format``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise FileNotFoundError(f"No checkpoint at {p}; a run writes one every checkpoint_every iterations.")
    # Only our own plain-data checkpoints are read, and never with pickle's full powers.
    ckpt = torch.load(p, weights_only=True, map_location="cpu")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{p} is not a reszoo training checkpoint (format {CHECKPOINT_FORMAT}).")
    return ckpt


def state_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, dtypes, shapes and bytes), for comparing replicas.

    Args:
        model: the model.

    Returns:
        The hex digest: ``reszoo.hub.tensors_digest`` of the state dict, the ``reszoo_digest`` that
        ``save_pretrained`` stores in ``model.safetensors``.
    """
    return tensors_digest(model.state_dict())


# -- the loop ----------------------------------------------------------------------------------


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the trained model (unwrapped, on its training device).
        iterations: iterations done in total.
        train_error: top-1 training error (0-1) over the last logging interval.
        test_error: top-1 error (0-1) of the last evaluation, or None.
        history: the records written to ``history.jsonl`` during this call.
        out: the run folder, or None.
    """

    model: nn.Module
    iterations: int
    train_error: float | None
    test_error: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None


def _resolve_device(recipe: Recipe, local_rank: int) -> torch.device:
    kind = recipe.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was asked for but torch.cuda.is_available() is False.")
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)  # NCCL and the default stream follow the current device
        return dev
    return torch.device(kind)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank): of the process group if one is initialised, else from torchrun's
    environment; (0, 1, 0) for a single process."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), local_rank
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, local_rank


def _accumulator(size: int, device: torch.device) -> torch.Tensor:
    # float64 sums stay exact over a long interval; MPS has no float64.
    return torch.zeros(size, dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)


def _sync_buffers(model: nn.Module, world: int) -> None:
    # DDP copies rank 0's buffers (BN running statistics) to the other ranks at the start of each
    # forward, so after the last step every rank holds statistics of its own last batch. Evaluation
    # and the final weights use rank 0's, the ones the next forward would have used.
    if world > 1:
        for buf in model.buffers():
            torch.distributed.broadcast(buf, src=0)


@torch.no_grad()
def _evaluate(model: nn.Module, batches: Iterator[Any], amp: torch.autocast, device: torch.device, world: int) -> float:
    was_training = model.training
    model.eval()
    counts = _accumulator(2, device)  # wrong, seen
    for x, y in batches:
        with amp:
            logits = model(x)
        counts[0] += (logits.argmax(1) != y).sum()
        counts[1] += y.numel()
    model.train(was_training)
    if world > 1:
        torch.distributed.all_reduce(counts)
    return (counts[0] / counts[1].clamp(min=1)).item()


def fit(
    model: nn.Module,
    recipe: Recipe,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> FitResult:
    """Train ``model`` with ``recipe``; resumable, distributed when launched by torchrun.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised here (NCCL on GPU,
    Gloo on CPU), the model is wrapped in ``DistributedDataParallel``, each process takes
    ``batch_size / world_size`` images per step (so the global batch is the recipe's), and only
    rank 0 logs and writes files.

    Args:
        model: the model (a reszoo ResNet for ``save_pretrained``; any classifier otherwise).
        recipe: how to train.
        out: run folder for the history, checkpoints and the final model; None writes nothing.
        resume: continue from ``out/checkpoint.pt`` (exactly: same data, RNG and optimizer state).
        progress: show a progress bar (rank 0 only).
        on_step: called with the number of iterations done after every step (for callers that
            want to stop a run or watch it).

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: a bad argument, or a recipe that does not fit the model or the process count.
        FileNotFoundError: ``resume=True`` and ``out`` holds no checkpoint.
        NonFiniteLossError: the loss became NaN or infinite (checked at every log, evaluation
            and checkpoint step; the last checkpoint written is from before).
    """
    _check_fit_args(model, recipe, out, resume, progress, on_step)
    rank, world, local_rank = _distributed()
    if recipe.batch_size % world:
        raise ValueError(
            f"batch_size={recipe.batch_size} must divide evenly over {world} processes "
            "(batch_size is the global batch, as in the paper)."
        )
    device = _resolve_device(recipe, local_rank)
    dist = torch.distributed
    own_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        result = _fit(model, recipe, out, resume, progress, on_step, rank, world, device)
        if world > 1:
            # Leave together: a rank that tears down Gloo while rank 0 is still writing the final
            # files can abort at exit ("terminate called without an active exception").
            dist.barrier()
        return result
    finally:
        if own_group:
            dist.destroy_process_group()


def _check_fit_args(model, recipe, out, resume, progress, on_step) -> None:
    # Everything that needs no device, checked before a process group or any file exists.
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; received {type(model).__name__}.")
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a reszoo.train.Recipe; received {type(recipe).__name__}.")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise ValueError(f"out must be None or a folder path; received out={out!r}.")
    for name, value in (("resume", resume), ("progress", progress)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False; received {name}={value!r}.")
    if on_step is not None and not callable(on_step):
        raise ValueError(f"on_step must be None or a callable taking the iteration; received on_step={on_step!r}.")
    if resume and out is None:
        raise ValueError("resume=True needs out (the run folder holding checkpoint.pt).")
    if recipe.data != "synthetic" and not recipe.data_root:
        raise ValueError(f"data={recipe.data!r} needs data_root (the dataset folder); received data_root=None.")
    expected = NUM_CLASSES.get(recipe.data)
    if expected is not None and _model_classes(model) != expected:
        raise ValueError(
            f"{recipe.data} has {expected} classes but the model predicts {_model_classes(model)}; "
            f"build it with num_classes={expected}."
        )


def _fit(model, recipe, out, resume, progress, on_step, rank, world, device) -> FitResult:
    main = rank == 0
    out_dir = Path(out) if out is not None else None
    if recipe.channels_last is None:
        memory_format = preferred_memory_format(device.type)
    else:
        memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    channels_last = memory_format == torch.channels_last
    use_amp = recipe.amp if recipe.amp is not None else device.type == "cuda"
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)

    model.to(device, memory_format=memory_format)
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=learning_rate(recipe, 0),
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.nesterov,
    )
    start = 0
    plateau = {"best": 2.0, "bad": 0, "drops": 0}
    # The last logged errors: a resumed run that has nothing left to do still reports them.
    errors: dict[str, float | None] = {"train_error": None, "test_error": None}
    torch.manual_seed(recipe.seed)
    if resume:
        ckpt = load_checkpoint(out_dir)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["iteration"])
        plateau = dict(ckpt["plateau"])
        errors.update(ckpt.get("errors", {}))
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    if main and out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(out_dir / "recipe.json", lambda p: p.write_text(json.dumps(recipe.to_dict(), indent=2) + "\n"))
        _trim_history(out_dir / HISTORY_NAME, start)

    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        net = torch.compile(net)
    data = _make_data(recipe, model, device=device, rank=rank, world=world, cl=channels_last)
    batches = data.train(start)

    history: list[dict[str, Any]] = []
    history_file = open(out_dir / HISTORY_NAME, "a", encoding="utf-8") if main and out_dir is not None else None  # noqa: SIM115
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=recipe.iterations, initial=start, unit="it", dynamic_ncols=True)

    def record(rec: dict[str, Any]) -> None:
        history.append(rec)
        if history_file is not None:
            history_file.write(json.dumps(rec) + "\n")
            history_file.flush()

    def save_checkpoint(iteration: int) -> None:
        if not main or out_dir is None:
            return
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "iteration": iteration,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "plateau": dict(plateau),
            "errors": dict(errors),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
            "recipe": recipe.to_dict(),
        }
        _atomic_write(out_dir / CHECKPOINT_NAME, lambda p: torch.save(ckpt, p))

    # Running sums stay on the device (loss, wrong, seen, non-finite steps) and are read only at
    # log/eval/checkpoint steps, so a GPU is never made to wait for the host every iteration.
    stats = _accumulator(4, device)
    t0, it0 = time.perf_counter(), start
    it = start
    try:
        while it < recipe.iterations:
            lr = learning_rate(recipe, it, plateau_drops=plateau["drops"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = next(batches)
            with amp:
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            it += 1
            with torch.no_grad():
                finite = torch.isfinite(loss)
                wrong = (logits.argmax(1) != y).sum()
                stats[0] += torch.where(finite, loss.detach(), 0.0)
                stats[1] += wrong
                stats[2] += y.numel()
                stats[3] += ~finite
            do_eval = it == recipe.iterations or (recipe.eval_every and it % recipe.eval_every == 0)
            do_ckpt = it == recipe.iterations or it % recipe.checkpoint_every == 0
            if it % recipe.log_every == 0 or do_eval or do_ckpt:
                if world > 1:
                    torch.distributed.all_reduce(stats)
                loss_sum, wrong, seen, bad = stats.tolist()
                if bad:
                    raise NonFiniteLossError(
                        f"The training loss became non-finite before iteration {it} (lr {lr:g}); stopping. "
                        + (f"The last good checkpoint is {out_dir / CHECKPOINT_NAME}." if out_dir else "")
                        + " Try a lower lr, a warm-up (warmup_iters) or amp=False."
                    )
                steps = it - it0
                elapsed = time.perf_counter() - t0
                errors["train_error"] = wrong / seen
                rec = {
                    "iteration": it,
                    "lr": lr,
                    "train_loss": loss_sum / (steps * world),
                    "train_error": errors["train_error"],
                    "images_per_s": seen / elapsed if elapsed > 0 else None,
                    "time": time.time(),
                }
                if do_eval:
                    _sync_buffers(model, world)
                    test_error = _evaluate(model, data.evaluate(), amp, device, world)
                    rec["test_error"] = errors["test_error"] = test_error
                    if recipe.schedule == "plateau":
                        if test_error < plateau["best"] - recipe.plateau_threshold:
                            plateau.update(best=test_error, bad=0)
                        else:
                            plateau["bad"] += 1
                            if plateau["bad"] >= recipe.plateau_patience:
                                plateau.update(bad=0, drops=plateau["drops"] + 1)
                if main:
                    record(rec)
                if bar is not None:
                    post = {"loss": f"{rec['train_loss']:.3f}", "err": f"{errors['train_error']:.3f}"}
                    if errors["test_error"] is not None:
                        post["test_err"] = f"{errors['test_error']:.3f}"
                    post["img/s"] = f"{rec['images_per_s']:.0f}"
                    bar.set_postfix(post, refresh=False)
                if do_ckpt:
                    save_checkpoint(it)
                stats.zero_()
                t0, it0 = time.perf_counter(), it
            if bar is not None:
                bar.update(1)
            if on_step is not None:
                on_step(it)
    finally:
        if bar is not None:
            bar.close()
        if history_file is not None:
            history_file.close()

    _sync_buffers(model, world)
    digests = [state_digest(model)]
    if world > 1:
        gathered: list[Any] = [None] * world
        torch.distributed.all_gather_object(gathered, digests[0])
        digests = gathered
        if len(set(digests)) != 1:
            raise RuntimeError(f"Replicas diverged: weight digests per rank {digests}.")
    if main and out_dir is not None:
        from reszoo.hub import save_pretrained

        save_pretrained(model, out_dir / "model")
        summary = {
            "iterations": it,
            **errors,
            "world_size": world,
            "device": str(device),
            "amp": use_amp,
            "channels_last": channels_last,
            "replica_digests": digests,
        }
        _atomic_write(out_dir / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
    return FitResult(model, it, errors["train_error"], errors["test_error"], history, out_dir)


def _trim_history(path: Path, iteration: int) -> None:
    # On resume, records after the checkpoint describe work that is being redone: drop them so the
    # history reads as one uninterrupted run.
    if not path.exists():
        return
    keep = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and json.loads(line)["iteration"] <= iteration
    ]
    _atomic_write(path, lambda p: p.write_text("".join(line + "\n" for line in keep), encoding="utf-8"))
