"""reszoo: the ResNets of He et al. 2015 ("Deep Residual Learning for Image Recognition").

Example:
    >>> import reszoo
    >>> model = reszoo.create_model("resnet56")
    >>> sum(p.numel() for p in model.parameters())
    853018
"""

__version__ = "0.1.0"

from reszoo import bench, train
from reszoo.blocks import BasicBlock, Bottleneck, conv1x1, conv3x3
from reszoo.hub import load_pretrained, push_to_hub, save_pretrained
from reszoo.optimize import optimize_for_inference
from reszoo.registry import create_model, list_models, register_model
from reszoo.resnet import ClassifierHead, ResNet, ResNetConfig, init_weights, make_stages
from reszoo.shortcuts import ZeroPadShortcut, make_shortcut, projection
from reszoo.stems import CifarStem, ImageNetStem
from reszoo.summary import count_flops, count_macs, count_params
from reszoo.weights import get_weights, list_pretrained
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
    # parts
    "BasicBlock",
    "Bottleneck",
    "CifarStem",
    "ClassifierHead",
    "ImageNetStem",
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
    # training
    "train",
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


def __getattr__(name: str):
    # `reszoo.data` / `reszoo.transforms` import torchvision (about a second), so they load on
    # first use; `from reszoo import data, transforms` works as for any submodule.
    if name in ("data", "transforms"):
        import importlib

        return importlib.import_module(f"reszoo.{name}")
    raise AttributeError(f"module 'reszoo' has no attribute {name!r}")
