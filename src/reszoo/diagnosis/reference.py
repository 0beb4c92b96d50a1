"""The reference a model is diagnosed against, with every value taken from reszoo itself.

The architecture comes from the registry (``default_config``, and a model built on the meta
device to be traced: no weights are initialised), the recipe from :mod:`reszoo.train.recipes`, the
normalisation constants from :mod:`reszoo.data.constants`, the pre-processing from
:mod:`reszoo.data.transforms`, the training-set sizes from :data:`reszoo.data.constants.DATASETS`.
Nothing here is typed a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reszoo.data.constants import DATASETS
from reszoo.models._factory import create_model
from reszoo.models.registry import default_config, get_model_fn
from reszoo.models.resnet import ResNetConfig
from reszoo.train.recipes import Recipe, imagenet_recipe, is_cifar_depth, paper_recipe
from reszoo.utils.checks import type_error

# Training images per dataset (CIFAR: 50,000, of which the paper tunes on a 45k/5k split,
# reszoo.data.datasets.paper_split; most reproductions train on all 50k. ImageNet: 1,281,167).
TRAIN_IMAGES = {name: info.train_images for name, info in DATASETS.items()}
# The paper's CIFAR runs: 64k iterations at batch 128 on the 45k training split (section 4.2).
PAPER_CIFAR_TRAIN_IMAGES = 45_000


@dataclass
class Reference:
    """What the user's model is compared with.

    Attributes:
        name: the registered name, or a description of the reference model.
        config: its :class:`~reszoo.models.resnet.ResNetConfig`.
        model: the network to trace (on the meta device when built from a name).
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        recipe: the paper's recipe for it (``reszoo.train.recipes.paper_recipe``).
        schedule: the recipe whose learning rate is compared step by step (for ImageNet the
            fixed-step variant, since "divide by 10 on plateau" has no fixed steps).
        train_images: the paper's training-set size for the schedule (45k for CIFAR).
    """

    name: str
    config: ResNetConfig
    model: nn.Module
    dataset: str
    recipe: Recipe
    schedule: Recipe
    train_images: int

    @property
    def cifar(self) -> bool:
        return self.dataset != "imagenet"

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        info = DATASETS[self.dataset]
        return info.mean, info.std

    def train_transform(self) -> Any:
        """reszoo's training pre-processing for the reference's dataset."""
        from reszoo.data.transforms import cifar_train_transform, imagenet_train_transform

        mean, std = self.mean_std
        if self.cifar:
            return cifar_train_transform(mean=mean, std=std)
        return imagenet_train_transform(mean=mean, std=std)

    def eval_transform(self) -> Any:
        """reszoo's evaluation pre-processing for the reference's dataset."""
        from reszoo.data.transforms import cifar_eval_transform, imagenet_eval_transform

        mean, std = self.mean_std
        return cifar_eval_transform(mean=mean, std=std) if self.cifar else imagenet_eval_transform(mean=mean, std=std)


def _dataset(config: ResNetConfig, num_classes: int | None) -> str:
    cifar = config.stem == "cifar" if isinstance(config.stem, str) else config.image_size <= 64
    if not cifar:
        return "imagenet"
    return "cifar100" if (num_classes or config.num_classes) == 100 else "cifar10"


def resolve_reference(reference: Any, *, num_classes: int | None = None) -> Reference:
    """A registered name or a reszoo model as a :class:`Reference`.

    Args:
        reference: ``"resnet56"``, ``"resnet50"``, ... (see ``reszoo.list_models()``), or a model
            with a reszoo ``config`` (``reszoo.create_model(...)``).
        num_classes: the user's number of classes (100 picks CIFAR-100's statistics for a CIFAR net).

    Raises:
        InvalidArgumentError: an unknown name (the message lists the closest names).
        ArgumentTypeError: anything else than a name or a reszoo model.
    """
    if isinstance(reference, str):
        get_model_fn(reference)  # unknown names: an error listing the closest
        config = default_config(reference)
        with torch.device("meta"):  # traced for its structure only: no weights to initialise
            model = create_model(reference)
        name = reference
    elif isinstance(reference, nn.Module) and isinstance(getattr(reference, "config", None), ResNetConfig):
        config, model = reference.config, reference
        name = f"{type(reference).__name__}(depth {config.depth}, shortcut {config.shortcut})"
    else:
        raise type_error(
            "reference",
            reference,
            "a registered model name (e.g. 'resnet56'; see reszoo.list_models()) or a reszoo model",
        )
    dataset = _dataset(config, num_classes)
    depth = config.depth if is_cifar_depth(config.depth) else None
    recipe = paper_recipe(depth=depth, data=dataset)
    schedule = imagenet_recipe(schedule="step") if dataset == "imagenet" else recipe
    train = PAPER_CIFAR_TRAIN_IMAGES if dataset != "imagenet" else TRAIN_IMAGES["imagenet"]
    return Reference(name, config, model, dataset, recipe, schedule, train)
