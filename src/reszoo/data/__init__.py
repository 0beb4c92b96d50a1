"""Data: the datasets' facts, the paper's pre-processing, datasets and loaders, image folders.

``constants`` (dataset ids, classes, mean/std), ``transforms`` and ``augment`` (the paper's
pre-processing on torchvision.transforms.v2; batch crop/flip on the device), ``datasets`` (CIFAR,
ImageNet, the paper's split, loaders, resumable samplers), ``imagefolder`` (your own images).

This face offers the datasets' names (``reszoo.data.cifar_dataset``, ``reszoo.data.paper_split``,
...) and the normalisation constants, each imported on first use.

Example:
    >>> from reszoo import data
    >>> data.CIFAR10_MEAN
    (0.4914, 0.4822, 0.4465)
"""

from reszoo.utils.lazy import lazy_face

_DATASETS = "reszoo.data.datasets"
_CONSTANTS = "reszoo.data.constants"
_NAMES = {
    **dict.fromkeys(
        (
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
        ),
        _DATASETS,
    ),
    **dict.fromkeys(
        (
            "CIFAR10_CLASSES",
            "CIFAR10_MEAN",
            "CIFAR10_STD",
            "CIFAR100_CLASSES",
            "CIFAR100_MEAN",
            "CIFAR100_STD",
            "IMAGENET_MEAN",
            "IMAGENET_STD",
        ),
        _CONSTANTS,
    ),
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_face(__name__, _NAMES)
