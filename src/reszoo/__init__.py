"""reszoo: the ResNets of He et al. 2015 ("Deep Residual Learning for Image Recognition").

Example:
    >>> import reszoo
    >>> model = reszoo.create_model("resnet56")
    >>> sum(p.numel() for p in model.parameters())
    853018
"""

import importlib

from reszoo._version import __version__
from reszoo.blocks import BasicBlock, Bottleneck, ResidualBlock, conv1x1, conv3x3
from reszoo.errors import ReszooError
from reszoo.registry import create_model, default_config, list_models, register_model
from reszoo.resnet import ClassifierHead, ResNet, ResNetConfig, init_weights, make_stages
from reszoo.shortcuts import ZeroPadShortcut, make_shortcut, projection
from reszoo.stems import CifarStem, ImageNetStem
from reszoo.summary import count_flops, count_macs, count_params
from reszoo.zoo import (
    cifar_config,
    cifar_resnet,
    imagenet_config,
    imagenet_resnet,
    plain18,
    plain20,
    plain32,
    plain34,
    plain44,
    plain56,
    plain110,
    resnet18,
    resnet20,
    resnet32,
    resnet34,
    resnet44,
    resnet50,
    resnet56,
    resnet101,
    resnet110,
    resnet152,
    resnet1202,
)

__all__ = [
    "__version__",
    "ReszooError",
    # parts
    "BasicBlock",
    "Bottleneck",
    "CifarStem",
    "ClassifierHead",
    "ImageNetStem",
    "ResidualBlock",
    "ResNet",
    "ResNetConfig",
    "ZeroPadShortcut",
    "conv1x1",
    "conv3x3",
    "init_weights",
    "make_shortcut",
    "make_stages",
    "projection",
    # registry
    "create_model",
    "default_config",
    "list_models",
    "register_model",
    "count_flops",
    "count_macs",
    "count_params",
    # benchmarks and the inference fast path
    "bench",
    "optimize_for_inference",
    # pre-processing and data loading
    "data",
    "transforms",
    # training, fine-tuning, your own images
    "train",
    "finetune_recipe",
    "scan_folder",
    "find_images",
    # evaluate and predict
    "evaluate",
    "EvalResult",
    "load_for_evaluation",
    "predict",
    "Prediction",
    # pretrained weights
    "get_weights",
    "list_pretrained",
    "load_pretrained",
    "push_to_hub",
    "save_pretrained",
    # architectures
    "cifar_config",
    "cifar_resnet",
    "imagenet_config",
    "imagenet_resnet",
    "plain18",
    "plain20",
    "plain32",
    "plain34",
    "plain44",
    "plain56",
    "plain110",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet110",
    "resnet152",
    "resnet1202",
]


# Heavy parts load on first use (PEP 562), so `import reszoo` and `reszoo --help` cost little
# beyond importing torch: the trainer, the benchmark, the Hub client and torchvision wait until
# they are asked for. `from reszoo import train` works as for any submodule.
_LAZY_MODULES = ("bench", "data", "export", "train", "transforms")
_LAZY_ATTRS = {
    "optimize_for_inference": "reszoo.optimize",
    "load_pretrained": "reszoo.pretrained",
    "save_pretrained": "reszoo.hub",
    "push_to_hub": "reszoo.publish",
    "get_weights": "reszoo.weights",
    "list_pretrained": "reszoo.weights",
    "finetune_recipe": "reszoo.recipes",
    "scan_folder": "reszoo.imagefolder",
    "find_images": "reszoo.imagefolder",
    "evaluate": "reszoo.evaluation",
    "EvalResult": "reszoo.evaluation",
    "load_for_evaluation": "reszoo.loading",
    "predict": "reszoo.prediction",
    "Prediction": "reszoo.prediction",
}


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"reszoo.{name}")
    if name in _LAZY_ATTRS:
        value = getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reszoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
