"""The records of pretrained weights, as plain data: where a file comes from (``HubSource``,
``UrlSource``, ``LocalSource``), a published figure (``Metric``), what a set of weights is and
expects (``WeightsInfo``, what ``model.pretrained_weights`` holds) and a catalog entry (``Weights``:
a ``WeightsInfo`` plus its source, converter, config overrides and aliases). The entries
themselves are :mod:`reszoo.weights.catalog`'s.

Example:
    >>> info = WeightsInfo(name="mine", arch="resnet20", dataset="cifar10", num_classes=10,
    ...                    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_size=32)
    >>> info.class_names[:2], info.preprocessing()["resize_size"]
    (('airplane', 'automobile'), None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reszoo.data.constants import CIFAR10_CLASSES, CIFAR100_CLASSES

__all__ = ["HubSource", "LocalSource", "Metric", "Source", "UrlSource", "Weights", "WeightsInfo"]


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face Hub model repository (read with ``huggingface_hub``).

    Args:
        repo_id: ``"owner/name"``.
        filename: the file in the repo; only safetensors files are read from the network.
        revision: branch, tag or commit hash.
        sha256: the file's sha256 where known. Hub LFS files are also checked against the
            sha256 the Hub itself reports (their ETag), so this may be ``None``.
    """

    repo_id: str
    filename: str = "model.safetensors"
    revision: str = "main"
    sha256: str | None = None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/blob/{self.revision}/{self.filename}"


@dataclass(frozen=True)
class UrlSource:
    """A file at a plain URL (the original author's release), usually a legacy torch checkpoint.

    Args:
        url: where the file is published.
        sha256_prefix: the leading hex digits of the file's sha256, as embedded in its name
            (the ``torch.hub`` convention); checked on every download.
        sha256: the full sha256 where known.
        size: the size in bytes where known (gives a clearer message for a truncated file).
    """

    url: str
    sha256_prefix: str | None = None
    sha256: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LocalSource:
    """A local directory or file to read weights from (where :func:`reszoo.load_pretrained` reads a path)."""

    path: str

    @property
    def url(self) -> str:
        return self.path


@dataclass(frozen=True)
class Metric:
    """One published number: ``value`` of ``name`` (e.g. top-1 %) on ``dataset``, and who says so."""

    dataset: str
    name: str
    value: float
    source: str


Source = HubSource | UrlSource | LocalSource


@dataclass(frozen=True, kw_only=True)
class WeightsInfo:
    """What a set of weights is and what it expects: the record ``model.pretrained_weights`` holds.

    A catalog entry (:class:`Weights`) carries one, and so do a folder written by
    :func:`reszoo.save_pretrained`, a training run and a model trained on an image folder; none of
    these says where the file came from (that is the catalog's business).

    Args:
        name: the weights' name (a catalog name, a folder's or a run's name).
        arch: the registered architecture they fit (see :func:`reszoo.list_models`), or ``None``
            for a network no registered name describes.
        dataset: what the weights were trained on, where known.
        num_classes: outputs of the trained classifier.
        mean: per-channel mean the inputs were normalised with (RGB, inputs in [0, 1]).
        std: per-channel standard deviation.
        crop_size: the square evaluation input size.
        resize_size: shorter side to resize to before the center crop; ``None`` for no resize
            and no crop (CIFAR: the 32x32 image as is).
        interpolation: resize interpolation (``"bilinear"``, ``"bicubic"``, ``"nearest"``).
        metrics: published accuracy with its source.
        license: the weights' license (SPDX id, lower case as on the Hub).
        origin: the project that trained and published them.
        notes: anything a user should know (how it was trained, what differs from the paper).
        categories: explicit class names; ``None`` looks them up from ``dataset`` (which keeps
            the built-in entries small), see :attr:`class_names`.
    """

    name: str
    arch: str | None
    dataset: str | None
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_size: int
    resize_size: int | None = None
    interpolation: str = "bilinear"
    metrics: tuple[Metric, ...] = ()
    license: str | None = None
    origin: str | None = None
    notes: str = ""
    categories: tuple[str, ...] | None = field(default=None, repr=False)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The label of each output, in order, or ``None`` where unknown."""
        if self.categories is not None:
            return self.categories
        if self.dataset == "cifar10" and self.num_classes == 10:
            return CIFAR10_CLASSES
        if self.dataset == "cifar100" and self.num_classes == 100:
            return CIFAR100_CLASSES
        if self.dataset == "imagenet" and self.num_classes == 1000:
            from torchvision.models import ResNet50_Weights  # torchvision ships the 1000 ImageNet labels

            return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
        return None

    def transforms(self) -> Any:
        """The evaluation pre-processing these weights expect (a ``torchvision.transforms.v2`` pipeline)."""
        from reszoo.data.transforms import eval_transform

        return eval_transform(
            mean=self.mean,
            std=self.std,
            crop_size=self.crop_size,
            resize_size=self.resize_size,
            interpolation=self.interpolation,
        )

    def preprocessing(self) -> dict[str, Any]:
        """The pre-processing fields as a JSON-ready dict."""
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_size": self.crop_size,
            "resize_size": self.resize_size,
            "interpolation": self.interpolation,
        }


@dataclass(frozen=True, kw_only=True)
class Weights(WeightsInfo):
    """A catalog entry: where a set of published weights comes from and how to read it, with what
    they are (the :class:`WeightsInfo` fields).

    Args:
        source: where the file comes from, with its checksum where known.
        converter: the key-layout converter in :mod:`reszoo.weights.convert` (``"reszoo"``,
            ``"torchvision"``, ``"akamaster"``, ``"chenyaofo"``).
        config_overrides: config fields that differ from ``arch``'s defaults, as (name, value) pairs.
        aliases: other names that resolve to this entry.
    """

    arch: str
    dataset: str
    source: HubSource | UrlSource
    converter: str
    config_overrides: tuple[tuple[str, Any], ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def overrides(self) -> dict[str, Any]:
        """``config_overrides`` as a dict, for ``default_config(arch).replace(**overrides)``."""
        return dict(self.config_overrides)
