"""Training recipes as plain data: the paper's CIFAR and ImageNet recipes and their schedules.

Nothing here imports torch: a recipe can be made, checked, saved and read back anywhere (the
command line builds its options from :class:`Recipe`'s fields). Schedules count iterations, as
the paper does (He et al. 2015, section 4.2: "divide it by 10 at 32k and 48k iterations, and
terminate training at 64k iterations").

Example:
    >>> recipe = cifar_recipe(depth=110)
    >>> [learning_rate(recipe, i) for i in (0, 399, 400, 32_000, 48_000)]
    [0.01, 0.01, 0.1, 0.010000000000000002, 0.0010000000000000002]
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from reszoo.data.constants import NUM_CLASSES
from reszoo.errors import InvalidArgumentError
from reszoo.utils.checks import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_mean_std,
    check_number,
    check_positive,
    is_int,
    is_number,
    type_error,
    value_error,
)
from reszoo.utils.choices import DEVICES, SCHEDULES
from reszoo.utils.plaindata import PlainData

# "synthetic" needs no files (reszoo.train.batches.SyntheticTask); then reszoo.data.constants' ids; "folder" is
# an image folder at data_root (reszoo.data.imagefolder); "custom" the caller's own Dataset or DataLoader
# (reszoo.train.trainer.fit(..., train_data=...), Python only).
DATASETS = ("synthetic", *NUM_CLASSES, "folder", "custom")
# ImageNet iterations per epoch at batch 256: ceil(1,281,167 / 256).
IMAGENET_ITERS_PER_EPOCH = 5005
# CIFAR iterations per epoch at batch 128: 50,000 // 128 (the training loader drops the last partial batch).
CIFAR_ITERS_PER_EPOCH = 390

__all__ = [
    "CIFAR_ITERS_PER_EPOCH",
    "DATASETS",
    "FAMILY_RECIPES",
    "IMAGENET_ITERS_PER_EPOCH",
    "Recipe",
    "cifar_recipe",
    "finetune_recipe",
    "imagenet_recipe",
    "is_cifar_depth",
    "learning_rate",
    "paper_recipe",
    "preact_cifar_recipe",
    "recipe_fields",
    "resnext_cifar_recipe",
    "wrn_cifar_recipe",
]

_POSITIVE_INTS = ("batch_size", "iterations", "log_every", "checkpoint_every", "eval_batch_size")
_NATURAL_INTS = ("eval_every", "warmup_iters", "plateau_patience", "seed", "synthetic_eval_images")
_NON_NEGATIVE = ("weight_decay", "synthetic_noise", "plateau_threshold")
_BOOLS = ("download", "val_split", "nesterov", "compile", "freeze_backbone", "decay_norm_and_bias")
_AUTO_BOOLS = ("amp", "channels_last")  # None = decided per device


@dataclass(frozen=True)
class Recipe(PlainData):
    """Everything about how a model is trained, as plain data (JSON round trip with ``to_dict``).

    The defaults are the paper's CIFAR-10 recipe (He et al. 2015, section 4.2). Every field is
    checked when a recipe is made, types included: ``lr="0.1"`` or ``download="no"`` is an error.

    Args:
        data: ``"synthetic"``, ``"cifar10"``, ``"cifar100"``, ``"imagenet"``, ``"folder"`` (an
            image folder at ``data_root``: ``train/<class>/`` and ``val/<class>/``, or one tree of
            class folders with ``val_fraction`` held out; see :mod:`reszoo.data.imagefolder`) or
            ``"custom"`` (your own ``Dataset`` or ``DataLoader``, given to
            :func:`reszoo.train.trainer.fit` as ``train_data``; Python only).
        data_root: dataset folder (not needed for ``"synthetic"`` and ``"custom"``).
        download: download CIFAR if it is missing.
        val_split: CIFAR only: train on 45k images and evaluate on the held-out 5k, as in the
            paper's tuning runs (``reszoo.data.datasets.paper_split``), instead of on the test set.
        val_fraction: ``"folder"`` with one tree of class folders: the share of each class held
            out for evaluation (drawn with ``seed``); 0 evaluates nothing. Ignored when the folder
            has ``train/`` and ``val/``.
        mean: per-channel normalisation mean for ``"folder"`` (inputs in [0, 1]); ``None`` = the
            pretrained weights' (``model.pretrained_weights``) or, training from scratch, measured
            on up to 2,000 training images (``reszoo.data.transforms.channel_stats``). The value used
            is written into the run's ``recipe.json``.
        std: per-channel standard deviation, as ``mean`` (both or neither).
        batch_size: global batch (split evenly over the processes of a distributed run).
        lr: base learning rate.
        momentum: SGD momentum, in [0, 1).
        weight_decay: L2 penalty applied by SGD (to every parameter unless ``decay_norm_and_bias``
            is False).
        decay_norm_and_bias: apply ``weight_decay`` to norm weights and biases too (the paper's
            choice); False exempts every 1-D parameter, as timm and torchvision's recipes can.
        nesterov: Nesterov momentum (the paper uses plain momentum; needs momentum > 0).
        iterations: stop after this many iterations.
        epochs: train for this many passes over the training set instead: ``iterations`` is set
            from the training set's size when the run starts (and written so into ``recipe.json``).
        schedule: ``"step"`` (divide by ``1/gamma`` at each milestone), ``"plateau"`` (divide
            when the evaluation error has not improved for ``plateau_patience`` evaluations) or
            ``"cosine"`` (from ``lr`` down to 0 at ``iterations``, after the warm-up).
        milestones: iterations where the step schedule divides the learning rate.
        gamma: factor applied at each milestone or plateau.
        warmup_iters: iterations trained at ``warmup_lr`` before the schedule starts.
        warmup_lr: learning rate during warm-up.
        plateau_patience: evaluations without improvement before a plateau drop.
        plateau_threshold: smallest drop in error (absolute, 0-1) that counts as improvement.
        eval_every: evaluate every this many iterations (and at the end); 0 = only at the end.
        checkpoint_every: write ``checkpoint.pt`` every this many iterations (and at the end).
        log_every: record training loss, error and images/s every this many iterations.
        seed: seeds the starting weights (``reszoo.train.trainer.train_model``), the data order, the
            augmentation and the synthetic data.
        device: ``"auto"`` (``reszoo.utils.devices.default_device``: CUDA, then MPS, then CPU),
            ``"cpu"``, ``"cuda"`` or ``"mps"``.
        amp: bf16 autocast; ``None`` = on for CUDA, off elsewhere.
        channels_last: channels-last memory format; ``None`` = the measured faster choice per
            device type (``reszoo.utils.devices.preferred_memory_format``).
        compile: wrap the model in ``torch.compile``.
        num_workers: DataLoader workers for ImageNet (``None`` = ``reszoo.data.datasets.default_num_workers``).
        eval_batch_size: batch per process for evaluation.
        synthetic_noise: standard deviation of the noise added to the synthetic class patterns.
        synthetic_eval_images: size of the synthetic evaluation set.
        freeze_backbone: train the classifier (``model.fc``) only; the rest keeps its weights and
            its BatchNorm statistics (held in eval mode). For pretrained weights only:
            ``train_model`` refuses it without ``pretrained``, ``fit`` warns for a model without a
            weights record (``model.pretrained_weights``).
        backbone_lr_scale: the backbone's learning rate is ``lr * backbone_lr_scale`` (the
            classifier's is ``lr``); e.g. 0.1 when fine-tuning.
    """

    kind = "recipe"  # how PlainData's messages name an instance (a class attribute, not a field)

    data: str = "cifar10"
    data_root: str | None = None
    download: bool = False
    val_split: bool = False
    val_fraction: float = 0.1
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = True
    nesterov: bool = False
    iterations: int = 64_000
    epochs: int | None = None
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
    freeze_backbone: bool = False
    backbone_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("milestones", "mean", "std"):
            if isinstance(getattr(self, name), list):  # JSON gives lists
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.data_root, os.PathLike):
            object.__setattr__(self, "data_root", os.fspath(self.data_root))
        # Ranges first, with messages that say what each field means; then PlainData's strict
        # check of every field against its annotation (which also turns an int lr into a float).
        self._check_values()
        self._check_combinations()
        super().__post_init__()

    def _check_values(self) -> None:
        for name, valid in (("data", DATASETS), ("schedule", SCHEDULES), ("device", DEVICES)):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise type_error(name, value, f"one of {list(valid)}")
            if value not in valid:
                raise value_error(name, value, f"one of {list(valid)}")
        self._check_numbers()
        for name in _BOOLS:
            check_bool(name, getattr(self, name))
        for name in _AUTO_BOOLS:
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise type_error(name, getattr(self, name), "None, True or False")
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise type_error("data_root", self.data_root, "None or a folder path")
        ms, expected = self.milestones, "strictly increasing positive integers"
        if not isinstance(ms, tuple) or not all(is_int(m) for m in ms):
            raise type_error("milestones", ms, expected)
        if any(m < 1 for m in ms) or list(ms) != sorted(set(ms)):
            raise value_error("milestones", ms, expected)

    def _check_numbers(self) -> None:
        for name in _POSITIVE_INTS:
            check_int(name, getattr(self, name), minimum=1)
        for name in _NATURAL_INTS:
            check_int(name, getattr(self, name), minimum=0)
        check_int("num_workers", self.num_workers, minimum=0, optional=True)
        check_int("epochs", self.epochs, minimum=1, optional=True)
        for name in ("lr", "warmup_lr", "backbone_lr_scale"):
            check_positive(name, getattr(self, name))
        for name in _NON_NEGATIVE:
            check_number(name, getattr(self, name), minimum=0)
        # Interval ends that checks.check_number cannot say: momentum 1 never forgets a gradient,
        # gamma 0 would stop training at the first drop, val_fraction 1 would leave nothing to train on.
        for name, inside, expected in (
            ("momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
            ("gamma", lambda v: 0 < v <= 1, "a number in (0, 1]"),
            ("val_fraction", lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ):
            value = getattr(self, name)
            if not is_number(value):
                raise type_error(name, value, expected)
            if not (math.isfinite(value) and inside(value)):
                raise value_error(name, value, expected)

    def _check_combinations(self) -> None:
        if self.val_split and self.data not in ("cifar10", "cifar100"):
            raise InvalidArgumentError(f"val_split=True needs CIFAR data; received data={self.data!r}.")
        if self.schedule == "plateau" and self.eval_every == 0:
            raise InvalidArgumentError(
                "schedule='plateau' lowers the lr after evaluations, so it needs eval_every >= 1; "
                "received eval_every=0."
            )
        if self.nesterov and self.momentum == 0:
            raise InvalidArgumentError("nesterov=True needs momentum > 0; received momentum=0.")
        if (self.mean is None) != (self.std is None):
            raise InvalidArgumentError(
                f"mean and std go together (both or neither); received mean={self.mean}, std={self.std}."
            )
        if self.mean is not None:
            check_mean_std(self.mean, self.std)


def recipe_fields() -> tuple[str, ...]:
    """Names of the fields of :class:`Recipe`."""
    return Recipe.field_names()


def is_cifar_depth(depth: Any) -> bool:
    """True for the depth of one of the paper's CIFAR networks.

    6n + 2 with basic blocks (20, 32, 44, 56, 110, 1202; He et al. 2015, section 4.2) or 9n + 2
    with bottlenecks (164, 1001; He et al. 2016, "Identity Mappings"), n >= 1.
    """
    return is_int(depth) and depth >= 8 and ((depth - 2) % 6 == 0 or (depth - 2) % 9 == 0)


def cifar_recipe(*, depth: int | None = None, **overrides: Any) -> Recipe:
    """The paper's CIFAR recipe (section 4.2).

    SGD with momentum 0.9 and weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k
    iterations, stop at 64k. For depth 110 and deeper the paper warms up at lr 0.01 "until the
    training error is below 80% (about 400 iterations)"; we use the fixed 400 iterations.

    Args:
        depth: the network's depth (``model.config.depth``): 6n + 2, or 9n + 2 for bottleneck
            networks (:func:`is_cifar_depth`); >= 110 adds the warm-up.
        **overrides: any :class:`Recipe` field, e.g. ``data_root="data/"``.

    Returns:
        A :class:`Recipe`.
    """
    expected = "None or a CIFAR depth, 6n+2 or 9n+2 with n >= 1 (20, 56, 110, 164, ...; model.config.depth)"
    if depth is not None:
        if not is_int(depth):
            raise type_error("depth", depth, expected)
        if not is_cifar_depth(depth):
            raise value_error("depth", depth, expected)
    base: dict[str, Any] = {"data": "cifar10"}
    if depth is not None and depth >= 110:
        base.update(warmup_iters=400, warmup_lr=0.01)
    return Recipe().replace(**{**base, **overrides})


def imagenet_recipe(*, schedule: str = "plateau", **overrides: Any) -> Recipe:
    """The paper's ImageNet recipe (section 3.4) and a fixed-step alternative.

    SGD, batch 256, lr 0.1, momentum 0.9, weight decay 1e-4, up to 60e4 iterations. ``"plateau"``
    is the paper's "divided by 10 when the error plateaus" (evaluated once an epoch, patience 3
    evaluations); ``"step"`` divides at epochs 30 and 60 and stops at 90 (torchvision's reference
    recipe), counted in iterations.

    Args:
        schedule: ``"plateau"``, ``"step"`` or ``"cosine"`` (to 0 over 90 epochs).
        **overrides: any :class:`Recipe` field.

    Returns:
        A :class:`Recipe`.
    """
    check_choice("schedule", schedule, SCHEDULES)
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
    elif schedule == "cosine":
        base.update(iterations=90 * epoch, milestones=())
    else:
        base.update(iterations=90 * epoch, milestones=(30 * epoch, 60 * epoch))
    return Recipe().replace(**{**base, **overrides})


def _epochs(n: int) -> int:
    return n * CIFAR_ITERS_PER_EPOCH


def preact_cifar_recipe(**overrides: Any) -> Recipe:
    """The CIFAR recipe of the pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep
    Residual Networks", appendix): the 2015 recipe, warmed up for every depth.

    SGD with momentum 0.9 and weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k
    iterations, stop at 64k, as :func:`cifar_recipe`; the paper warms up at lr 0.01 for the first
    400 iterations in all its CIFAR experiments, remarking that its pre-activation unit does not
    need it.

    Args:
        **overrides: any :class:`Recipe` field.

    Returns:
        A :class:`Recipe`.
    """
    return cifar_recipe(**{"warmup_iters": 400, "warmup_lr": 0.01, **overrides})


def wrn_cifar_recipe(**overrides: Any) -> Recipe:
    """The CIFAR recipe of the Wide ResNets (Zagoruyko & Komodakis 2016, "Wide Residual Networks", section 4).

    SGD with Nesterov momentum 0.9 (dampening 0), weight decay 5e-4, batch 128, lr 0.1 multiplied by
    0.2 at epochs 60, 120 and 160, 200 epochs; as iterations at 390 per epoch (batch 128 on the
    50,000 training images; give ``milestones`` and ``iterations`` with another batch or
    ``val_split``). The paper's dropout (0.3 between the convolutions) is part of the network:
    ``create_model("wrn28_10", conv_dropout=0.3)``. The paper pads with reflections for its random
    crops; reszoo's CIFAR loader pads with zeros, as the 2015 recipe does.

    Example:
        >>> r = wrn_cifar_recipe()
        >>> r.iterations, r.milestones, r.gamma, r.nesterov, r.weight_decay
        (78000, (23400, 46800, 62400), 0.2, True, 0.0005)
    """
    base: dict[str, Any] = dict(
        data="cifar10",
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        iterations=_epochs(200),
        milestones=(_epochs(60), _epochs(120), _epochs(160)),
        gamma=0.2,
    )
    return Recipe().replace(**{**base, **overrides})


def resnext_cifar_recipe(**overrides: Any) -> Recipe:
    """The CIFAR recipe of the ResNeXts (Xie et al. 2017, "Aggregated Residual Transformations for
    Deep Neural Networks", section 5.3).

    SGD with momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 divided by 10 at epochs 150 and
    225, 300 epochs; as iterations at 390 per epoch (see :func:`wrn_cifar_recipe`).

    Example:
        >>> r = resnext_cifar_recipe()
        >>> r.iterations, r.milestones, r.weight_decay
        (117000, (58500, 87750), 0.0005)
    """
    base: dict[str, Any] = dict(
        data="cifar10",
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        iterations=_epochs(300),
        milestones=(_epochs(150), _epochs(225)),
        gamma=0.1,
    )
    return Recipe().replace(**{**base, **overrides})


# The CIFAR recipe of each registered network of the later papers, by name (the 2015 paper's networks
# and any other name use cifar_recipe). train_model and `reszoo train` start from it.
FAMILY_RECIPES: dict[str, str] = {
    **dict.fromkeys(("preresnet20", "preresnet56", "preresnet110", "preresnet164", "preresnet1001"), "preact"),
    **dict.fromkeys(("wrn16_10", "wrn28_10", "wrn40_8"), "wrn"),
    **dict.fromkeys(("resnext29_32x4d", "resnext29_16x64d"), "resnext"),
}
_FAMILY_RECIPE_FNS = {"preact": preact_cifar_recipe, "wrn": wrn_cifar_recipe, "resnext": resnext_cifar_recipe}


def paper_recipe(*, depth: int | None = None, model: str | None = None, **overrides: Any) -> Recipe:
    """The paper's recipe for the dataset in ``overrides`` (CIFAR-10 if none is named).

    ``data="imagenet"`` gives :func:`imagenet_recipe` (``schedule`` defaults to ``"plateau"``);
    any other dataset the CIFAR recipe of ``model``'s paper where it has its own
    (``FAMILY_RECIPES``: pre-activation, Wide ResNet, ResNeXt), else :func:`cifar_recipe` with
    ``depth``. This is what ``reszoo train`` and ``reszoo experiment`` start from before applying
    the options given.

    Args:
        depth: the network's depth, for the CIFAR warm-up (ignored for ImageNet).
        model: the registered model name, for the family's own CIFAR recipe.
        **overrides: any :class:`Recipe` field.

    Returns:
        A :class:`Recipe`.

    Example:
        >>> paper_recipe(model="wrn28_10").gamma, paper_recipe(model="resnet56").gamma
        (0.2, 0.1)
    """
    if overrides.get("data", "cifar10") == "imagenet":
        return imagenet_recipe(**overrides)
    if model is not None and model in FAMILY_RECIPES:
        return _FAMILY_RECIPE_FNS[FAMILY_RECIPES[model]](**overrides)
    return cifar_recipe(depth=depth, **overrides)


def finetune_recipe(**overrides: Any) -> Recipe:
    """A short recipe for fine-tuning pretrained weights on your own images (``data="folder"``).

    10 epochs, batch 64, SGD with momentum 0.9, lr 0.01 on a cosine schedule to 0, weight
    decay 1e-4 except on norm weights and biases, evaluation and a log record at the end of the
    run. Why these numbers:

    - lr 0.01 is a tenth of the paper's 0.1: fine-tuning starts near a good solution, and the
      usual practice (torchvision's transfer-learning tutorial: 0.001 at batch 4; timm's
      fine-tuning runs) takes about 1/10 of the from-scratch rate, scaled with the batch.
    - cosine to 0 needs no milestones to tune for a dataset of unknown size, and is what timm's
      and torchvision's current recipes use; ``epochs`` sets the length from the folder's size.
    - 10 epochs: torchvision's tutorial trains 25 (on 244 images), Kornblith et al. (2019, "Do
      Better ImageNet Models Transfer Better?") 20k steps at batch 256 on larger sets; a few
      thousand images converge in well under 10 epochs from pretrained features.
    - no decay on norms and biases (``decay_norm_and_bias=False``): decaying BatchNorm's scale
      pulls pretrained features towards zero for no regularisation benefit (timm's
      ``filter_bias_and_bn``, torchvision's ``--norm-weight-decay 0``).
    - ``backbone_lr_scale`` (e.g. 0.1) or ``freeze_backbone`` are left to you: small folders
      (hundreds of images) often do better with either.

    Args:
        **overrides: any :class:`Recipe` field, e.g. ``data_root="photos/"``, ``epochs=3``.

    Returns:
        A :class:`Recipe`.

    Example:
        >>> r = finetune_recipe(data_root="photos/")
        >>> r.schedule, r.lr, r.epochs, r.decay_norm_and_bias
        ('cosine', 0.01, 10, False)
    """
    base: dict[str, Any] = dict(
        data="folder",
        batch_size=64,
        lr=0.01,
        schedule="cosine",
        milestones=(),
        epochs=10,
        decay_norm_and_bias=False,
        eval_every=0,
        checkpoint_every=500,
        log_every=10,
        eval_batch_size=100,
    )
    if "iterations" in overrides and "epochs" not in overrides:
        base["epochs"] = None  # iterations given: they set the length
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
    check_instance("recipe", recipe, Recipe, what="a reszoo.train.recipes.Recipe")
    check_int("iteration", iteration, minimum=0)
    check_int("plateau_drops", plateau_drops, minimum=0)
    if iteration < recipe.warmup_iters:
        return recipe.warmup_lr
    if recipe.schedule == "cosine":
        done = (iteration - recipe.warmup_iters) / max(1, recipe.iterations - recipe.warmup_iters)
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    drops = sum(iteration >= m for m in recipe.milestones) if recipe.schedule == "step" else plateau_drops
    return recipe.lr * recipe.gamma**drops
