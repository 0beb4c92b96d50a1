"""reszoo: the ResNets of He et al. 2015 ("Deep Residual Learning for Image Recognition").

Example:
    >>> import reszoo
    >>> model = reszoo.create_model("resnet56")
    >>> sum(p.numel() for p in model.parameters())
    853018
"""

__version__ = "0.1.0"

from reszoo.blocks import BasicBlock, Bottleneck, conv1x1, conv3x3
from reszoo.registry import create_model, list_models, register_model
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
